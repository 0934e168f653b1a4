"""Every modality's dataset returns the engine's one sample contract (launch.engine.tasks.Sample).

``index`` is the item asked for, ``group`` the record of the data list the input and target came
from; a stand-in for an unreadable file keeps ``index`` and moves ``group`` (and the target) to
the stand-in's record. The expected keys and meanings are written out by hand here.
"""
import json

import pytest
import torch

KEYS = {"input", "target", "index", "group", "skipped", "unreadable"}


def test_sample_typed_dict_names_exactly_the_contract_keys():
    from launch.engine.tasks import SAMPLE_KEYS, Sample, make_sample
    assert set(Sample.__annotations__) == KEYS and SAMPLE_KEYS == KEYS
    s = make_sample(torch.zeros(1), 3, 7, 2, [(7, "bad.png", "OSError")])
    assert set(s) == KEYS
    assert (s["index"], s["group"], s["skipped"], s["unreadable"]) == (7, 2, 1, "7\tbad.png\tOSError")


def _check_standin(item, asked, bad_record, label_of):
    assert set(item) == KEYS
    assert item["index"] == asked and item["skipped"] >= 1  # a random stand-in may be the same file
    assert item["group"] != bad_record
    target = item["target"]
    assert (target.tolist() if torch.is_tensor(target) else target) == label_of(item["group"])
    assert item["unreadable"].startswith(f"{bad_record}\t")


def test_image_sample_index_is_the_item_group_the_file_read(tmp_path):
    from image.data import ImageFolderDataset, write_demo_images
    root = write_demo_images(tmp_path / "d", num_classes=2, train_per_class=2, val_per_class=1, size=16)
    ds = ImageFolderDataset(root, "train")
    # sorted folders: 00_hstripes/0, 00_hstripes/1, 01_vstripes/0, 01_vstripes/1
    item = ds[2]
    assert set(item) == KEYS and (item["index"], item["group"], item["target"], item["skipped"]) == (2, 2, 1, 0)
    (root / "train" / "01_vstripes" / "00001.png").write_bytes(b"not an image")
    torch.manual_seed(0)
    _check_standin(ds[3], 3, 3, lambda g: [0, 0, 1, 1][g])


def test_audio_sample_index_is_the_item_group_the_clip_read(tmp_path):
    from audio.data import AudioClipDataset, write_demo_audio
    train_json, _, labels = write_demo_audio(tmp_path, num_classes=4, clips=8, seconds=0.2, seed=0)
    entries = json.loads(train_json.read_text())["data"]
    (tmp_path / "broken.wav").write_bytes(b"RIFF not a wave")
    entries = entries[:2] + [{"wav": str(tmp_path / "broken.wav"), "labels": entries[0]["labels"]}]
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"data": entries}))
    ds = AudioClipDataset(listing, tmp_path, labels, train=False, target_length=16)
    item = ds[1]
    assert set(item) == KEYS and (item["index"], item["group"], item["skipped"]) == (1, 1, 0)
    mids = [e["labels"] for e in entries]
    order = [line.split(",")[1] for line in labels.read_text().splitlines()[1:]]
    multi_hot = [[float(m in mids[g].split(",")) for m in order] for g in range(3)]
    assert item["target"].tolist() == multi_hot[1]
    torch.manual_seed(0)
    _check_standin(ds[2], 2, 2, lambda g: multi_hot[g])


def test_video_sample_index_is_the_view_group_the_video(tmp_path):
    from video.data import VideoClipDataset, write_demo_videos
    _, val_csv = write_demo_videos(tmp_path, num_classes=2, videos_per_class=(1, 2), frames=8,
                                   size=(32, 32), seed=0)
    lines = val_csv.read_text().splitlines()
    labels = [int(line.split()[1]) for line in lines]
    small = dict(num_frames=2, sampling_rate=2, crop_size=32, num_temporal_clips=2)
    ds = VideoClipDataset(val_csv, tmp_path, train=False, **small)
    item = ds[3]  # views per video: 2, so item 3 is the second view of video 1
    assert set(item) == KEYS and (item["index"], item["group"], item["skipped"]) == (3, 1, 0)
    assert item["target"] == labels[1]
    (tmp_path / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines + ["broken.mp4 0"]) + "\n")
    labels = labels + [0]
    ds = VideoClipDataset(bad, tmp_path, train=False, **small)
    _check_standin(ds[len(lines) * 2 + 1], len(lines) * 2 + 1, len(lines), lambda g: labels[g])


@pytest.mark.parametrize("task", ["image", "video", "audio"])
def test_task_metrics_take_groups(task):
    import inspect

    from launch.engine.tasks import get_task
    assert list(inspect.signature(get_task(task).metrics).parameters) == ["scores", "targets", "groups"]
