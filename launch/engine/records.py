"""JSON-lines files whose records are unique per key: a retried write replaces, never duplicates.

A run that is preempted after writing an epoch's record to ``log.jsonl`` but before saving the
checkpoint redoes that epoch after the requeue and writes its record again; an evaluation sweep
interrupted mid-way redoes the row it was writing. :func:`upsert_jsonl` keeps one record per key
(``epoch`` for ``log.jsonl``, ``r`` for ``results.jsonl``; a run directory is one stage, so ``r``
is unique per (stage, r)): the new record takes the old one's place, and the file is rewritten
atomically, so a crash mid-write leaves either the old or the new file, never a torn line.
"""
from __future__ import annotations

import json
import os
from typing import Sequence


def record_key(record: dict, key: Sequence[str]) -> str:
    return json.dumps([record.get(k) for k in key])


def upsert_jsonl(path: str, record: dict, key: Sequence[str]) -> bool:
    """Write ``record`` into ``path`` replacing any record with the same ``key`` fields.

    Returns True when an earlier record was replaced. Lines that are not valid JSON (a torn last
    line from a crash of an older version) are dropped.
    """
    wanted = record_key(record, key)
    kept, replaced, placed = [], False, False
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    old = json.loads(line)
                except ValueError:
                    continue
                if isinstance(old, dict) and record_key(old, key) == wanted:
                    replaced = True
                    if not placed:  # keep the file's order: the new record where the old one was
                        kept.append(json.dumps(record))
                        placed = True
                    continue
                kept.append(line.rstrip("\n"))
    if not placed:
        kept.append(json.dumps(record))
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return replaced
