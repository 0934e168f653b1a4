"""Read Kinetics-style video lists: one ``path label`` per line (space or comma separated)."""
from __future__ import annotations

import re
from pathlib import Path

from launch.engine.errors import ConfigError, DataError

# The label is the last field, so paths may contain spaces; either separator style is accepted.
_LINE = re.compile(r"(?P<path>.+?)[\s,]+(?P<label>[^\s,]+)")


def load_video_list(list_path, root) -> list[tuple[str, int]]:
    """Return ``[(absolute video path, label), ...]``; relative paths are resolved against ``root``.

    Blank lines are skipped. Video files are not opened here: a missing or corrupt video is handled
    when it is read, so a list of 240k videos loads instantly.
    """
    list_path, root = Path(list_path), Path(root)
    if not list_path.is_file():
        raise ConfigError(f"video list {list_path} does not exist; give a CSV with one 'path label' per line")
    if not root.is_dir():
        raise ConfigError(f"video root {root} is not a directory; give the folder the list's paths are under")
    videos = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            m = _LINE.fullmatch(line)
            if m is None or not re.fullmatch(r"\d+", m["label"]):
                raise DataError(f"{list_path}:{lineno}: {line[:80]!r} is not 'path label' with a "
                                  f"non-negative integer label")
            path = Path(m["path"].strip())
            videos.append((str(path if path.is_absolute() else root / path), int(m["label"])))
    if not videos:
        raise DataError(f"video list {list_path} is empty; it needs at least one 'path label' line")
    return videos
