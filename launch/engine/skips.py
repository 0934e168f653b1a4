"""Honest counts of unreadable files: distinct files, plus how many samples stand-ins replaced.

A dataset item says what was passed over to build it: ``"skipped"`` (how many reads failed) and
``"unreadable"`` (one ``index<TAB>path<TAB>reason`` line per failed file, "" when none). One bad
video read for 3 temporal clips fails 3 times but is one file; a stand-in that is itself bad is
another file. :class:`SkipCounter` sums a pass (an epoch, an evaluation) over batches, loader
workers and processes into ``skipped_files`` (distinct files) and ``standins`` (items built from a
stand-in), and names each file once in the run's log.
"""
from __future__ import annotations

from typing import Iterable


def unreadable_field(failures: Iterable[tuple]) -> str:
    """The ``"unreadable"`` item field for ``(index, path, reason)`` failures."""
    return "\n".join(f"{index}\t{path}\t{reason}".replace("\r", " ")
                     for index, path, reason in failures)


def skip_fields(failures: list) -> dict:
    return {"skipped": len(failures), "unreadable": unreadable_field(failures)}


class SkipCounter:
    def __init__(self):
        self.files: dict = {}   # path -> reason
        self.standins = 0

    def add(self, batch: dict) -> None:
        skipped = batch.get("skipped")
        if skipped is not None:
            self.standins += int((skipped > 0).sum()) if hasattr(skipped, "sum") else int(skipped > 0)
        texts = batch.get("unreadable") or []
        for text in [texts] if isinstance(texts, str) else texts:
            for line in text.splitlines():
                parts = line.split("\t", 2)
                if len(parts) == 3:
                    self.files.setdefault(parts[1], parts[2])

    def report(self, log=None, named: set = None) -> dict:
        """Totals over every process (call on all of them); logs each file not in ``named``."""
        import torch.distributed as dist
        files, standins = dict(self.files), self.standins
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, (files, standins))
            files, standins = {}, 0
            for part_files, part_standins in parts:
                for path, reason in part_files.items():
                    files.setdefault(path, reason)
                standins += part_standins
        if log is not None:
            for path in sorted(files):
                if named is None or path not in named:
                    log(f"skipped unreadable file {path} ({files[path]})")
                    if named is not None:
                        named.add(path)
        return {"skipped_files": len(files), "standins": standins}
