"""One rule for generated demo data: a folder holds the data of exactly one set of settings.

The generator's settings are written last, to ``<root>/demo_meta.json``, and mark a complete set.
A later call with the same settings does nothing; with other settings (or an interrupted write)
the generator's own files are removed and written again. A folder holding such files but no
metadata is regenerated only when every file there has a name the generator would write (data
of an older generator); anything else may be real data and is refused.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import ConfigError

META_FILE = "demo_meta.json"


def _files(root: Path, owned: Sequence[str]):
    for name in owned:
        path = root / name
        if path.is_dir():
            for dirpath, _, filenames in os.walk(path):
                for f in filenames:
                    yield (Path(dirpath) / f).relative_to(root).as_posix()
        elif path.exists():
            yield name


def regenerate(root, settings: dict, owned: Sequence[str], write: Callable[[], None], writer: str,
               ours: Optional[str] = None) -> bool:
    """Run ``write()`` unless ``root`` already holds the data of ``settings``; return whether it ran.

    ``owned``: the files and folders (relative to root) the generator writes, removed before it
    writes again. ``ours``: a regular expression every such file of a metadata-less folder must
    match to count as the generator's (None: a metadata-less folder is always refused).
    ``writer`` names the generator in the error message."""
    root = Path(root)
    meta_path = root / META_FILE
    settings = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
    if meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()) == settings:
                return False
        except ValueError:
            pass
    else:
        if ours is None:
            foreign = [name for name in owned if (root / name).exists()]
        else:
            foreign = [f for f in _files(root, owned) if not re.fullmatch(ours, f)]
        if foreign:
            raise ConfigError(f"{root} already holds {foreign[0]!r} and other files not written by "
                              f"{writer} (no {META_FILE}); pick an empty directory")
    meta_path.unlink(missing_ok=True)
    for name in owned:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    write()
    meta_path.write_text(json.dumps(settings, indent=1))  # written last: marks a complete set
    return True
