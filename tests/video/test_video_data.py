"""Video data pipeline: lists, clip sampling, augmentation, bad files, view aggregation, demo data."""
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from launch.errors import ConfigError
from video import transforms as T
from video.decode import read_frames
from video.data import VideoClipDataset, aggregate_views, load_video_list, main, write_demo_videos

SMALL = dict(num_frames=4, sampling_rate=2, crop_size=32)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    train_csv, val_csv = write_demo_videos(root, num_classes=4, videos_per_class=(2, 1), frames=16,
                                           size=(32, 48), seed=0)
    return root, train_csv, val_csv


def _write_video(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())


# -- lists --------------------------------------------------------------------------------------

def test_list_formats(tmp_path):
    (tmp_path / "a b.mp4").touch()
    lst = tmp_path / "l.csv"
    lst.write_text(f"x/v1.mp4 3\nx/v2.mp4,0\n\n{tmp_path}/abs.mp4 , 7\na b.mp4 1\n")
    got = load_video_list(lst, tmp_path)
    assert got == [(str(tmp_path / "x/v1.mp4"), 3), (str(tmp_path / "x/v2.mp4"), 0),
                   (f"{tmp_path}/abs.mp4", 7), (str(tmp_path / "a b.mp4"), 1)]


@pytest.mark.parametrize("content,needle", [("ok.mp4 1\nnolabel\n", ":2:"), ("v.mp4 cat\n", ":1:"),
                                            ("v.mp4 -1\n", ":1:"), ("\n\n", "empty")])
def test_list_bad_lines(tmp_path, content, needle):
    lst = tmp_path / "l.csv"
    lst.write_text(content)
    with pytest.raises(ConfigError, match=needle) as err:
        load_video_list(lst, tmp_path)
    assert str(lst) in str(err.value) and "\n" not in str(err.value)


def test_list_missing_paths(tmp_path):
    lst = tmp_path / "l.csv"
    lst.write_text("v.mp4 1\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_video_list(tmp_path / "nope.csv", tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_video_list(lst, tmp_path / "nope")
    with pytest.raises(ConfigError, match="does not exist"):
        VideoClipDataset(tmp_path / "nope.csv", tmp_path, train=True)


# -- sampling helpers ---------------------------------------------------------------------------

def test_clip_indices_eval_and_short_video():
    first = T.clip_indices(100, 8, 4, clip_idx=0, num_clips=3)
    last = T.clip_indices(100, 8, 4, clip_idx=2, num_clips=3)
    assert first[0] == 0 and last[-1] == 99 and torch.all(first.diff() == 4)
    centre = T.clip_indices(100, 8, 4, clip_idx=0, num_clips=1)
    assert centre[0] == 35
    short = T.clip_indices(10, 8, 4, clip_idx=-1)
    assert short.min() >= 0 and short.max() == 9  # clamped: the last frame repeats
    # A 60 fps source spans twice the frames for the same 30 fps clip.
    assert T.clip_indices(1000, 4, 2, 0, 1, fps=60, target_fps=30).diff().tolist() == [4, 4, 4]


def test_rand_augment_spec():
    ra = T.ClipRandAugment("rand-m7-n4-mstd0.5-inc1")
    assert (ra.magnitude, ra.num_ops, ra.mstd) == (7.0, 4, 0.5)
    clip = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert ra(clip).shape == clip.shape
    for bad in ("m7-n2", "rand-x3", "rand-m12", "rand-n0"):
        with pytest.raises(ConfigError):
            T.ClipRandAugment(bad)


# -- dataset ------------------------------------------------------------------------------------

def test_train_item(demo):
    root, train_csv, _ = demo
    ds = VideoClipDataset(train_csv, root, train=True, rand_augment="rand-m7-n2-mstd0.5", **SMALL)
    assert len(ds) == 8
    item = ds[3]
    assert item["input"].shape == (3, 4, 32, 32) and item["input"].dtype == torch.float32
    assert (item["target"], item["index"], item["skipped"]) == (3, 3, 0)
    assert isinstance(item["target"], int)


def test_repeat_aug_stacks_independent_clips(demo):
    root, train_csv, _ = demo
    torch.manual_seed(0)
    ds = VideoClipDataset(train_csv, root, train=True, repeat_aug=3, **SMALL)
    x = ds[0]["input"]
    assert x.shape == (3, 3, 4, 32, 32)
    assert not torch.allclose(x[0], x[1]) and not torch.allclose(x[1], x[2])


def test_eval_views(demo):
    root, _, val_csv = demo
    ds = VideoClipDataset(val_csv, root, train=False, num_temporal_clips=2, num_spatial_crops=3, **SMALL)
    assert len(ds) == 4 * 6
    items = [ds[i] for i in (0, 5, 6, 23)]
    assert [it["index"] for it in items] == [0, 0, 1, 3]
    assert all(it["input"].shape == (3, 4, 32, 32) for it in items)
    # Deterministic: the same view twice is identical.
    assert torch.equal(ds[7]["input"], ds[7]["input"])
    single = VideoClipDataset(val_csv, root, train=False, short_side=40, **SMALL)
    assert len(single) == 4 and single[1]["input"].shape == (3, 4, 32, 32)


@pytest.mark.parametrize("h,w", [(32, 64), (64, 32)])
def test_eval_crop_positions(tmp_path, h, w):
    ramp = np.linspace(0, 250, max(h, w)).astype(np.uint8)
    frame = np.zeros((h, w, 3), np.uint8)
    frame[..., 0] = ramp[None, :] if w > h else ramp[:, None]  # red grows along the long side
    _write_video(tmp_path / "v.mp4", np.repeat(frame[None], 8, axis=0))
    (tmp_path / "l.csv").write_text("v.mp4 0\n")
    ds = VideoClipDataset(tmp_path / "l.csv", tmp_path, train=False, num_spatial_crops=3,
                          mean=(0, 0, 0), std=(1, 1, 1), **SMALL)
    red = [ds[i]["input"][0].mean().item() * 255 for i in range(3)]
    # Long side 64, crop 32: crops cover [0, 32), [16, 48), [32, 64) of a 0..250 ramp.
    assert red == pytest.approx([61, 123, 186], abs=8)


def test_corrupt_file_is_replaced(demo, tmp_path, caplog):
    root, train_csv, _ = demo
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    lst = tmp_path / "l.csv"
    lst.write_text(f"{bad} 9\n" + train_csv.read_text())
    for train in (True, False):
        ds = VideoClipDataset(lst, root, train=train, **SMALL)
        with caplog.at_level(logging.WARNING, logger="video.data"):
            caplog.clear()
            item = ds[0]
        assert item["skipped"] == 1 and item["index"] != 0 and item["target"] != 9
        assert item["input"].shape == (3, 4, 32, 32)
        assert any("broken.mp4" in r.getMessage() for r in caplog.records)
        assert ds[1]["skipped"] == 0


def test_all_corrupt_raises(tmp_path):
    for i in range(2):
        (tmp_path / f"b{i}.mp4").write_bytes(b"junk")
    (tmp_path / "l.csv").write_text("b0.mp4 0\nb1.mp4 1\n")
    ds = VideoClipDataset(tmp_path / "l.csv", tmp_path, train=True, max_retries=3, **SMALL)
    with pytest.raises(RuntimeError, match="4 video files in a row could not be read"):
        ds[0]


@pytest.mark.parametrize("kwargs", [dict(num_spatial_crops=2), dict(num_frames=0), dict(short_side=16),
                                    dict(repeat_aug=0), dict(scale=(0.5, 2.0)), dict(rand_augment="augmix")])
def test_bad_settings(demo, kwargs):
    root, train_csv, _ = demo
    args = dict(SMALL, **kwargs)
    with pytest.raises(ConfigError):
        VideoClipDataset(train_csv, root, train=True, **args)


# -- aggregation --------------------------------------------------------------------------------

def test_aggregate_views_by_hand():
    ln2, ln3 = float(np.log(2.0)), float(np.log(3.0))
    # softmax rows: (3/4, 1/4), (2/3, 1/3), (1/2, 1/2), (1/4, 3/4), (1/2, 1/2)
    scores = torch.tensor([[ln3, 0.0], [ln2, 0.0], [0.0, 0.0], [0.0, ln3], [0.0, 0.0]])
    video = torch.tensor([7, 2, 7, 2, 2])
    probs, ids = aggregate_views(scores, video)
    assert ids.tolist() == [2, 7]
    # video 2: ((2/3 + 1/4 + 1/2) / 3, (1/3 + 3/4 + 1/2) / 3) = (17/36, 19/36); video 7: (5/8, 3/8)
    torch.testing.assert_close(probs, torch.tensor([[17 / 36, 19 / 36], [5 / 8, 3 / 8]]))
    with pytest.raises(ConfigError):
        aggregate_views(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


# -- demo data ----------------------------------------------------------------------------------

def test_demo_deterministic_and_cli(tmp_path, demo):
    root, train_csv, val_csv = demo
    assert len(train_csv.read_text().splitlines()) == 8 and len(val_csv.read_text().splitlines()) == 4
    again = tmp_path / "again"
    write_demo_videos(again, num_classes=4, videos_per_class=(2, 1), frames=16, size=(32, 48), seed=0)
    name = "videos/train/move_up_001.mp4"
    every = lambda n, fps: torch.arange(n)  # noqa: E731
    a = read_frames(str(root / name), every)[1].numpy()
    b = read_frames(str(again / name), every)[1].numpy()
    assert a.shape == (16, 3, 32, 48) and np.array_equal(a, b)
    main(["demo", str(tmp_path / "cli"), "--num-classes", "2"])
    assert (tmp_path / "cli" / "train.csv").read_text().count("\n") == 32
    with pytest.raises(ConfigError):
        write_demo_videos(tmp_path / "x", num_classes=9)


def test_read_frames_falls_back_to_pyav(tmp_path):
    # decord 0.6.0 cannot return frames of 48-pixel-wide videos; PyAV reads them instead.
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    frames[:, :, :, 1] = (np.arange(6) * 40)[:, None, None]
    _write_video(tmp_path / "w48.mp4", frames)
    wanted, got = read_frames(str(tmp_path / "w48.mp4"), lambda n, fps: torch.tensor([5, 1, 5]))
    assert wanted.tolist() == [1, 5] and got.shape == (2, 3, 32, 48)
    assert got[:, 1].float().mean(dim=(1, 2)).tolist() == pytest.approx([40, 200], abs=6)


def test_hflip_off_keeps_direction(tmp_path):
    # With hflip=False and a full-frame crop, a left-bright clip stays left-bright every time.
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :32] = 220
    _write_video(tmp_path / "v.mp4", np.repeat(frame[None], 8, axis=0))
    (tmp_path / "l.csv").write_text("v.mp4 0\n")
    ds = VideoClipDataset(tmp_path / "l.csv", tmp_path, train=True, hflip=False, scale=(1.0, 1.0),
                          aspect=(2.0, 2.0), **SMALL)
    for _ in range(6):
        x = ds[0]["input"]
        assert x[..., :8].mean() > x[..., -8:].mean()
