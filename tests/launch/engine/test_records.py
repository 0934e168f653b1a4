"""Idempotent records (launch/engine/records.py): a retried append never duplicates a record."""


from launch.engine.records import upsert_jsonl

from tests.fault_helpers import _jsonl  # noqa: F401,F811


def test_upsert_keeps_one_record_per_key(tmp_path):
    path = str(tmp_path / "results.jsonl")
    upsert_jsonl(path, {"r": 0, "acc1": 1.0}, ["r"])
    upsert_jsonl(path, {"r": [4, 2], "acc1": 2.0}, ["r"])
    assert upsert_jsonl(path, {"r": 0, "acc1": 3.0}, ["r"]) is True
    assert _jsonl(path) == [{"r": 0, "acc1": 3.0}, {"r": [4, 2], "acc1": 2.0}]
    with open(path, "a") as f:
        f.write('{"r": 9, "acc')  # a torn line of a crash
    upsert_jsonl(path, {"r": 9, "acc1": 4.0}, ["r"])
    assert [row["r"] for row in _jsonl(path)] == [0, [4, 2], 9]
