"""Shared fixtures for the audio tests: a tiny demo set written once per test run."""

import pytest

from audio.data import write_demo_audio


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory):
    """Sixteen 0.5 s clips over four classes (12 train, 4 val)."""
    root = tmp_path_factory.mktemp("audio_demo")
    train_json, val_json, label_csv = write_demo_audio(root, num_classes=4, clips=16, seconds=0.5, seed=0)
    return {"root": root, "train": train_json, "val": val_json, "labels": label_csv}
