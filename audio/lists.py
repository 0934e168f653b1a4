"""Reading clip lists: AudioSet segment CSVs and Audio-MAE/AST JSON lists, plus the label map.

Two list formats are accepted (picked by the file's suffix):

* AudioSet segment CSV (``balanced_train_segments.csv``, ``eval_segments.csv``, ...)::

      # comment lines ...
      YTID, start_seconds, end_seconds, "mid1,mid2"

  The audio for a row is looked up in ``root`` under the first name that exists among
  (``.wav`` then ``.flac`` for each stem)::

      {YTID}            e.g. --PJHxphWEs.wav        (AST / Audio-MAE style downloads)
      Y{YTID}           e.g. Y--PJHxphWEs.wav       (PANNs' download script)
      {YTID}_{s}        e.g. --PJHxphWEs_30.wav     (start in whole seconds)
      {YTID}_{s}_{e}    e.g. --PJHxphWEs_30_40.wav
      {YTID}_{ms}       e.g. --PJHxphWEs_30000.wav  (start in milliseconds)
      {YTID}_{ms}_{ms}  e.g. --PJHxphWEs_30000_40000.wav

  Rows whose clip is not on disk are dropped with one warning (YouTube videos vanish, so every
  AudioSet copy is incomplete); a list with no clip on disk at all is a ConfigError.

* Audio-MAE / AST JSON: ``{"data": [{"wav": path, "labels": "mid1,mid2"}, ...]}``. A relative
  ``wav`` path is taken relative to ``root`` when given, else to the JSON file's folder. Files
  are not checked here: the dataset replaces unreadable ones at load time.

The label map is AudioSet's ``class_labels_indices.csv`` (``index,mid,display_name``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from launch.engine.errors import ConfigError, DataError

log = logging.getLogger(__name__)

LABEL_CSV_NAME = "class_labels_indices.csv"
AUDIO_EXTENSIONS = (".wav", ".flac")

Item = tuple[str, list[int]]


def read_label_csv(label_csv: str | os.PathLike) -> tuple[dict[str, int], list[str]]:
    """Return ({mid: index}, display names in index order) from ``index,mid,display_name``."""
    path = Path(label_csv)
    if not path.is_file():
        raise ConfigError(f"label csv {str(path)!r} does not exist; expected a file like AudioSet's "
                          f"{LABEL_CSV_NAME} with columns index,mid,display_name")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"index", "mid", "display_name"} <= set(reader.fieldnames):
            raise DataError(f"label csv {str(path)!r} has header {reader.fieldnames}; "
                              "expected columns index,mid,display_name")
        by_index: dict[int, tuple[str, str]] = {}
        for row in reader:
            line = reader.line_num
            try:
                index = int(row["index"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line}: index {row['index']!r} is not an integer") from None
            mid = (row["mid"] or "").strip()
            if not mid or index in by_index or index < 0:
                raise DataError(f"{path}:{line}: bad or repeated entry index={index} mid={mid!r}; "
                                  "each row needs a unique index >= 0 and a non-empty mid")
            by_index[index] = (mid, row["display_name"] or mid)
    if not by_index:
        raise DataError(f"label csv {str(path)!r} has no rows; expected one row per class")
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"label csv {str(path)!r} indices are not 0..{len(by_index) - 1} without gaps")
    mids = [by_index[i][0] for i in range(len(by_index))]
    if len(set(mids)) != len(mids):
        raise DataError(f"label csv {str(path)!r} repeats a mid; each mid must map to one index")
    return {mid: i for i, mid in enumerate(mids)}, [by_index[i][1] for i in range(len(by_index))]


def resolve_label_csv(list_path, root=None, label_csv=None) -> Path:
    """The label csv to use: the given one, else class_labels_indices.csv beside the list or in root."""
    if label_csv is not None:
        return Path(label_csv)
    list_path, root = Path(list_path), Path(root) if root is not None else None
    # The AudioSet download keeps the label map beside the segment CSVs.
    for folder in (list_path.parent, root):
        if folder is not None and (folder / LABEL_CSV_NAME).is_file():
            return folder / LABEL_CSV_NAME
    raise ConfigError(f"no label csv given for {str(list_path)!r} and no {LABEL_CSV_NAME} beside it "
                      "or in root; pass label_csv=PATH")


def _labels_to_indices(labels, mid_to_index: dict[str, int], where: str) -> list[int]:
    if isinstance(labels, str):
        mids = [m.strip() for m in labels.split(",")]
    elif isinstance(labels, list) and all(isinstance(m, str) for m in labels):
        mids = [m.strip() for m in labels]
    else:
        raise DataError(f"{where}: labels {labels!r} must be a 'mid1,mid2' string or a list of mids")
    mids = [m for m in mids if m]
    if not mids:
        raise DataError(f"{where}: no labels; every clip needs at least one mid")
    indices = []
    for mid in mids:
        if mid not in mid_to_index:
            raise DataError(f"{where}: unknown mid {mid!r}; valid mids are those in the label csv "
                              f"(e.g. {', '.join(list(mid_to_index)[:3])})")
        indices.append(mid_to_index[mid])
    return sorted(set(indices))


def _candidate_names(ytid: str, start: float, end: float) -> list[str]:
    s, e = int(round(start)), int(round(end))
    s_ms, e_ms = int(round(start * 1000)), int(round(end * 1000))
    stems = [ytid, "Y" + ytid, f"{ytid}_{s}", f"{ytid}_{s}_{e}", f"{ytid}_{s_ms}", f"{ytid}_{s_ms}_{e_ms}"]
    return [stem + ext for stem in stems for ext in AUDIO_EXTENSIONS]


def _read_segment_csv(path: Path, root: Path, mid_to_index: dict[str, int]) -> list[Item]:
    if root is None or not root.is_dir():
        raise ConfigError(f"audio root {str(root)!r} is not a folder; an AudioSet segment csv needs "
                          "root=FOLDER holding the {YTID}.wav/.flac clips")
    # One listing instead of a stat per candidate name: AudioSet has ~2M clips.
    on_disk = {entry.name for entry in os.scandir(root) if entry.is_file()}
    items: list[Item] = []
    missing = 0
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, skipinitialspace=True)
        for row in reader:
            line = reader.line_num
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            where = f"{path}:{line}"
            if len(row) != 4:
                raise DataError(f"{where}: expected 4 fields 'YTID, start_seconds, end_seconds, "
                                  f"\"mid1,mid2\"', got {len(row)}: {row!r}")
            ytid = row[0].strip()
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError:
                raise DataError(f"{where}: start/end {row[1]!r}, {row[2]!r} are not numbers") from None
            labels = _labels_to_indices(row[3], mid_to_index, where)
            name = next((n for n in _candidate_names(ytid, start, end) if n in on_disk), None)
            if name is None:
                missing += 1
                continue
            items.append((str(root / name), labels))
    if missing:
        log.warning("%s: %d of %d listed clips not found under %s (tried {YTID}, Y{YTID}, "
                    "{YTID}_{start}[_{end}] as .wav/.flac); they are left out",
                    path, missing, missing + len(items), root)
    if not items:
        raise ConfigError(f"none of the clips in {str(path)!r} were found under root {str(root)!r}; "
                          "expected files named {YTID}.wav or .flac (see audio/lists.py)")
    return items


def _read_json_list(path: Path, root: Path | None, mid_to_index: dict[str, int]) -> list[Item]:
    if root is not None and not root.is_dir():
        raise ConfigError(f"audio root {str(root)!r} is not a folder; pass an existing folder or None")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); expected "
                          '{"data": [{"wav": path, "labels": "mid1,mid2"}, ...]}') from None
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON object with a 'data' list of "
                          '{"wav": path, "labels": "mid1,mid2"} entries')
    base = root if root is not None else path.parent
    items: list[Item] = []
    for i, entry in enumerate(entries):
        where = f"{path}: data[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("wav"), str) or "labels" not in entry:
            raise DataError(f"{where}: {entry!r} needs a 'wav' path string and 'labels'")
        wav = Path(entry["wav"])
        items.append((str(wav if wav.is_absolute() else base / wav),
                      _labels_to_indices(entry["labels"], mid_to_index, where)))
    if not items:
        raise DataError(f"{path}: the 'data' list is empty; expected at least one clip")
    return items


def load_audio_list(list_path, root=None, label_csv=None) -> tuple[list[Item], int]:
    """Read a clip list into ([(audio_path, sorted class indices)], num_classes).

    ``list_path`` ending in ``.csv`` is read as an AudioSet segment CSV, ``.json`` as an Audio-MAE
    list. ``label_csv`` defaults to ``class_labels_indices.csv`` beside the list or in ``root``.
    """
    path = Path(list_path)
    if not path.is_file():
        raise ConfigError(f"clip list {str(path)!r} does not exist; expected an AudioSet segment "
                          ".csv or an Audio-MAE .json list")
    root_path = Path(root) if root is not None else None
    mid_to_index, _ = read_label_csv(resolve_label_csv(path, root_path, label_csv))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        items = _read_segment_csv(path, root_path, mid_to_index)
    elif suffix == ".json":
        items = _read_json_list(path, root_path, mid_to_index)
    else:
        raise ConfigError(f"clip list {str(path)!r} has suffix {suffix!r}; valid: .csv (AudioSet "
                          "segments) or .json (Audio-MAE list)")
    return items, len(mid_to_index)
