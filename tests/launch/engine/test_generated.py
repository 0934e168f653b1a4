"""Generated demo data follows one rule (launch/engine/generated.py): rewritten exactly when its settings
change, never over files it did not write."""
import json
import os

import pytest

from audio.demo import write_demo_audio
from launch.engine.errors import ConfigError
from launch.engine.generated import META_FILE, regenerate
from video.demo import write_demo_videos


def _writer(root, calls):
    def write():
        calls.append(1)
        (root / "data").mkdir()
        (root / "data" / "a_001.txt").write_text("x")
    return write


def test_rule_writes_once_per_settings_and_refuses_foreign_files(tmp_path):
    calls = []
    args = (("data",), _writer(tmp_path, calls), "the test writer")
    assert regenerate(tmp_path, {"n": 1}, *args, ours=r"data/a_\d{3}\.txt")
    assert not regenerate(tmp_path, {"n": 1}, *args)              # same settings: nothing to do
    assert json.loads((tmp_path / META_FILE).read_text()) == {"n": 1}
    assert regenerate(tmp_path, {"n": 2}, *args) and len(calls) == 2  # new settings: rewritten
    (tmp_path / META_FILE).unlink()                          # an older generator's folder ...
    assert regenerate(tmp_path, {"n": 2}, *args, ours=r"data/a_\d{3}\.txt")  # ... is rewritten
    (tmp_path / META_FILE).unlink()
    (tmp_path / "data" / "mine.jpg").write_text("real data")
    with pytest.raises(ConfigError, match="'data/mine.jpg' and other files not written by the test writer"):
        regenerate(tmp_path, {"n": 2}, *args, ours=r"data/a_\d{3}\.txt")
    assert (tmp_path / "data" / "mine.jpg").exists()


def test_video_demo_is_rewritten_when_its_settings_change(tmp_path):
    small = dict(num_classes=2, frames=4, size=16)
    train, val = write_demo_videos(tmp_path, videos_per_class=(1, 1), **small)
    stamp = os.stat(train).st_mtime_ns
    write_demo_videos(tmp_path, videos_per_class=(1, 1), **small)
    assert os.stat(train).st_mtime_ns == stamp
    write_demo_videos(tmp_path, videos_per_class=(1, 3), **small)
    assert len(val.read_text().split("\n")) - 1 == 6 and len(list((tmp_path / "videos" / "val").iterdir())) == 6


def test_audio_demo_is_rewritten_when_its_settings_change(tmp_path):
    train, val, _ = write_demo_audio(tmp_path, num_classes=3, clips=4, seconds=0.1)
    stamp = os.stat(train).st_mtime_ns
    write_demo_audio(tmp_path, num_classes=3, clips=4, seconds=0.1)
    assert os.stat(train).st_mtime_ns == stamp
    write_demo_audio(tmp_path, num_classes=3, clips=8, seconds=0.1)
    assert len(json.loads(val.read_text())["data"]) == 2 and len(list((tmp_path / "audio").iterdir())) == 8
