"""Video data pipeline: lists, clip sampling, augmentation, bad files, view aggregation, demo data."""
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from launch.engine.errors import ConfigError, DataError
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

def test_video_list_reads_space_and_comma_separated_relative_and_absolute_paths(tmp_path):
    (tmp_path / "a b.mp4").touch()
    lst = tmp_path / "l.csv"
    lst.write_text(f"x/v1.mp4 3\nx/v2.mp4,0\n\n{tmp_path}/abs.mp4 , 7\na b.mp4 1\n")
    got = load_video_list(lst, tmp_path)
    assert got == [(str(tmp_path / "x/v1.mp4"), 3), (str(tmp_path / "x/v2.mp4"), 0),
                   (f"{tmp_path}/abs.mp4", 7), (str(tmp_path / "a b.mp4"), 1)]


@pytest.mark.parametrize("content,needle", [("ok.mp4 1\nnolabel\n", ":2:"), ("v.mp4 cat\n", ":1:"),
                                            ("v.mp4 -1\n", ":1:"), ("\n\n", "empty")])
def test_bad_list_lines_are_one_line_data_errors_naming_the_line(tmp_path, content, needle):
    lst = tmp_path / "l.csv"
    lst.write_text(content)
    with pytest.raises(DataError, match=needle) as err:
        load_video_list(lst, tmp_path)
    assert str(lst) in str(err.value) and "\n" not in str(err.value)


def test_missing_list_or_root_is_a_config_error(tmp_path):
    lst = tmp_path / "l.csv"
    lst.write_text("v.mp4 1\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_video_list(tmp_path / "nope.csv", tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_video_list(lst, tmp_path / "nope")
    with pytest.raises(ConfigError, match="does not exist"):
        VideoClipDataset(tmp_path / "nope.csv", tmp_path, train=True)


# -- sampling helpers ---------------------------------------------------------------------------

# The offsets of a 16-frame, rate-4 clip: linspace(0, 63, 16) truncated, i.e. floor(4.2 * i).
OFFSETS_16x4 = [0, 4, 8, 12, 16, 21, 25, 29, 33, 37, 42, 46, 50, 54, 58, 63]


def test_clip_indices_300_frame_video_10_views_match_mae_st_by_hand():
    # 300 frames, span 16 * 4 = 64, delta = 236; offset sampling starts view k at
    # k * floor(236 / 9) = 26 k; the last view ends at 234 + 63 = 297.
    for k in range(10):
        assert T.clip_indices(300, 16, 4, clip_idx=k, num_clips=10).tolist() == \
            [26 * k + o for o in OFFSETS_16x4]
    # 7 views: floor(236 / 6) = 39 apart.
    assert T.clip_indices(300, 16, 4, clip_idx=6, num_clips=7)[0] == 234
    assert T.clip_indices(300, 16, 4, clip_idx=1, num_clips=7)[0] == 39
    # One view: the centre, floor(236 / 2) = 118.
    assert T.clip_indices(300, 16, 4, clip_idx=0, num_clips=1).tolist() == [118 + o for o in OFFSETS_16x4]


def test_clip_indices_floor_the_view_spacing():
    # 101 frames, span 32: delta 69, 3 views start at k * floor(69 / 2) = 0, 34, 68 (not 69).
    # linspace(start, start + 31, 8) steps 31 / 7: offsets 0, 4, 8, 13, 17, 22, 26, 31.
    offsets = [0, 4, 8, 13, 17, 22, 26, 31]
    assert T.clip_indices(101, 8, 4, clip_idx=1, num_clips=3).tolist() == [34 + o for o in offsets]
    assert T.clip_indices(101, 8, 4, clip_idx=2, num_clips=3).tolist() == [68 + o for o in offsets]


def test_clip_indices_clamp_short_videos_follow_the_frame_rate_and_start_randomly():
    short = T.clip_indices(10, 8, 4, clip_idx=-1)
    # span 32 > 10 frames: delta 0, so linspace(0, 31, 8) clamped to the last frame 9.
    assert short.tolist() == [0, 4, 8, 9, 9, 9, 9, 9]
    # A 60 fps source spans 2 x 4 x 2 = 16 frames for the same 30 fps clip: linspace(s, s + 15, 4).
    assert T.clip_indices(1000, 4, 2, 0, 1, fps=60, target_fps=30).diff().tolist() == [5, 5, 5]
    torch.manual_seed(0)
    starts = [int(T.clip_indices(300, 16, 4)[0]) for _ in range(200)]
    assert min(starts) >= 0 and max(starts) <= 236 and len(set(starts)) > 50


def test_training_jitter_resize_floors_the_long_side_and_centre_crop_ceils():
    assert T.short_side_shape(240, 320, 224) == (224, 298)   # 298.67 floored (rounding gives 299)
    assert T.short_side_shape(256, 456, 224) == (224, 399)
    assert T.short_side_shape(320, 240, 224) == (298, 224)
    # 456 x 256 at 224 leaves a 175-pixel margin: the official centre crop starts at ceil(87.5) = 88.
    cols = torch.arange(399).view(1, 1, 1, 399).expand(1, 1, 224, 399)
    assert T.uniform_crop(cols, 224, 1)[0, 0, 0, [0, -1]].tolist() == [88, 311]
    rows = torch.arange(7).view(1, 1, 7, 1).expand(1, 1, 7, 4)
    assert T.uniform_crop(rows, 4, 1)[0, 0, :, 0].tolist() == [2, 3, 4, 5]    # ceil(3 / 2) = 2
    assert T.uniform_crop(rows, 4, 2)[0, 0, :, 0].tolist() == [3, 4, 5, 6]


# Test views as MAE-ST's decoder sizes them (round(long * short_target / short), worked by hand),
# then left / centre / right offsets 0, ceil(margin / 2), margin:
# (height, width, short side) -> (resized height, width, the three crop offsets along the long side)
TEST_VIEWS = [
    (256, 340, 224, 224, 298, (0, 37, 74)),   # 297.5 -> 298, margin 74
    (240, 320, 224, 224, 299, (0, 38, 75)),   # 298.67 -> 299, margin 75
    (360, 480, 224, 224, 299, (0, 38, 75)),   # 298.67 -> 299
    (340, 256, 224, 298, 224, (0, 37, 74)),   # portrait: top / centre / bottom
    (320, 240, 224, 299, 224, (0, 38, 75)),
    (240, 320, 256, 256, 341, (0, 59, 117)),  # one centre crop at short side 256: 341.33 -> 341
    (256, 340, 256, 256, 340, (0, 58, 116)),  # already at 256: not resized
]


@pytest.mark.parametrize("h, w, short, new_h, new_w, offsets", TEST_VIEWS)
def test_test_views_take_mae_st_decoder_sizes_and_crop_offsets(h, w, short, new_h, new_w, offsets):
    assert T.decoded_short_side_shape(h, w, short) == (new_h, new_w)
    clip = torch.zeros(1, 1, h, w)
    resized = T.resize_short_side_float(clip, short)
    assert resized.shape[-2:] == (new_h, new_w)
    # where each crop starts: crop a position ramp along the long side
    long_axis = -1 if new_w > new_h else -2
    ramp = torch.arange(max(new_h, new_w)).view(*((1, 1, 1, -1) if long_axis == -1 else (1, 1, -1, 1)))
    ramp = ramp.expand(1, 1, new_h, new_w)
    starts = tuple(int(T.uniform_crop(ramp, 224, i).flatten()[0]) for i in range(3))
    assert starts == offsets


def test_test_view_resize_is_bilinear_without_antialiasing():
    # A 2 x 4 ramp resized to short side 4 (8 x 16 by bilinear, align_corners=False, no
    # antialiasing): column j samples source x = (j + 0.5) / 2 - 0.5, clamped at the edges.
    ramp = torch.tensor([0., 4., 8., 12.]).view(1, 1, 1, 4).expand(1, 1, 2, 4)
    out = T.resize_short_side_float(ramp, 4)
    assert out.shape == (1, 1, 4, 8)
    assert out[0, 0, 0].tolist() == pytest.approx([0, 1, 3, 5, 7, 9, 11, 12])


def test_random_erasing_one_box_through_all_frames_pixel_noise():
    torch.manual_seed(0)
    erase = T.ClipRandomErasing(1.0, "pixel")
    for _ in range(20):
        clip = torch.full((3, 4, 32, 40), 7.0)
        out = erase(clip)
        hit = out != 7.0
        box = hit[0, 0]
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        # One rectangle, the same in every frame and channel, strictly smaller than the frame.
        assert box.sum() == h * w and 0 < h < 32 and 0 < w < 40
        assert (hit == box).all()
        # Area in [0.02, 1/3] of the frame up to rounding of h and w.
        assert 0.02 * 1280 * 0.8 <= h * w <= 1280 / 3 * 1.2
        # Fresh noise per frame, standard normal-ish.
        assert not torch.equal(out[:, 0][hit[:, 0]], out[:, 1][hit[:, 1]])
    assert T.ClipRandomErasing(0.0)(torch.ones(3, 2, 8, 8)).eq(1).all()
    const = T.ClipRandomErasing(1.0, "const")(torch.ones(3, 2, 16, 16))
    assert (const == 0).any() and set(const.unique().tolist()) == {0.0, 1.0}
    torch.manual_seed(1)
    rate = sum(bool((T.ClipRandomErasing(0.25)(torch.ones(3, 1, 16, 16)) != 1).any())
               for _ in range(2000)) / 2000
    assert rate == pytest.approx(0.25, abs=0.03)
    for bad in (dict(prob=1.5), dict(prob=0.2, mode="noise"), dict(prob=0.2, count=0)):
        with pytest.raises(ConfigError):
            T.ClipRandomErasing(**bad)


def test_rand_augment_spec_is_parsed_and_bad_specs_are_refused():
    ra = T.ClipRandAugment("rand-m7-n4-mstd0.5-inc1")
    assert (ra.magnitude, ra.num_ops, ra.mstd) == (7.0, 4, 0.5)
    clip = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    out = ra(clip)
    assert out.shape == clip.shape and out.dtype == torch.uint8
    for bad in ("m7-n2", "rand-x3", "rand-m12", "rand-n0"):
        with pytest.raises(ConfigError):
            T.ClipRandAugment(bad)


# mae_st util/decoder/rand_augment.py _RAND_INCREASING_TRANSFORMS, the ops "inc1" selects.
MAE_ST_INC_OPS = ["AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                  "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                  "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                  "TranslateYRel"]


def test_mae_st_rand_augment_is_two_ops_at_half_probability_from_the_increasing_set():
    ra = T.ClipRandAugment("rand-m7-mstd0.5-inc1")
    assert ra.num_ops == 2  # no n field: timm's / MAE-ST's default of 2 ops, not 4
    aug = ra.transform(224, 224)
    assert aug.num_layers == 2 and aug.choice_weights is None  # drawn with replacement
    assert [op.name for op in aug.ops] == MAE_ST_INC_OPS
    for op in aug.ops:
        assert (op.prob, op.magnitude, op.magnitude_std) == (0.5, 7, 0.5)
        assert op.kwargs["fillcolor"] == (128, 128, 128) and op.kwargs["resample"] == 3  # bicubic


def test_rand_augment_gives_every_frame_the_same_ops():
    import random
    from PIL import Image
    ra = T.ClipRandAugment("rand-m9-mstd0.5-inc1")
    gen = torch.Generator().manual_seed(0)
    changed = 0
    for seed in range(12):
        clip = torch.randint(0, 256, (3, 3, 20, 24), dtype=torch.uint8, generator=gen)
        random.seed(seed)
        np.random.seed(seed)
        out = ra(clip)
        # Oracle: timm's transform on each frame alone, from the same random state.
        for t in range(3):
            random.seed(seed)
            np.random.seed(seed)
            alone = np.array(ra.transform(20, 24)(Image.fromarray(clip[t].permute(1, 2, 0).numpy())))
            assert torch.equal(out[t], torch.from_numpy(alone).permute(2, 0, 1))
        changed += int(not torch.equal(out, clip))
        # Identical frames stay identical: one set of ops and magnitudes for the whole clip.
        same = ra(clip[:1].expand(4, -1, -1, -1))
        assert all(torch.equal(same[0], same[t]) for t in range(1, 4))
    assert changed >= 6  # with two ops at p = 0.5, most clips change


# -- dataset ------------------------------------------------------------------------------------

def test_train_item_is_a_float_clip_with_its_target_and_index(demo):
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


def test_eval_views_enumerate_temporal_clips_times_spatial_crops_per_video(demo):
    root, _, val_csv = demo
    ds = VideoClipDataset(val_csv, root, train=False, num_temporal_clips=2, num_spatial_crops=3, **SMALL)
    assert len(ds) == 4 * 6
    items = [ds[i] for i in (0, 5, 6, 23)]
    assert [it["group"] for it in items] == [0, 0, 1, 3]
    assert all(it["input"].shape == (3, 4, 32, 32) for it in items)
    # Deterministic: the same view twice is identical.
    assert torch.equal(ds[7]["input"], ds[7]["input"])
    single = VideoClipDataset(val_csv, root, train=False, short_side=40, **SMALL)
    assert len(single) == 4 and single[1]["input"].shape == (3, 4, 32, 32)


@pytest.mark.parametrize("h,w", [(32, 64), (64, 32)])
def test_eval_crops_cover_the_start_centre_and_end_of_the_long_side(tmp_path, h, w):
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


def test_corrupt_file_is_replaced_by_another_video_counted_and_logged(demo, tmp_path, caplog):
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
        assert item["skipped"] == 1 and item["group"] != 0 and item["target"] != 9
        assert item["input"].shape == (3, 4, 32, 32)
        assert any("broken.mp4" in r.getMessage() for r in caplog.records)
        assert ds[1]["skipped"] == 0


def test_all_files_corrupt_is_a_clear_error_after_the_retries(tmp_path):
    for i in range(2):
        (tmp_path / f"b{i}.mp4").write_bytes(b"junk")
    (tmp_path / "l.csv").write_text("b0.mp4 0\nb1.mp4 1\n")
    ds = VideoClipDataset(tmp_path / "l.csv", tmp_path, train=True, max_retries=3, **SMALL)
    with pytest.raises(DataError, match="4 video files in a row could not be read"):
        ds[0]


@pytest.mark.parametrize("kwargs", [dict(num_spatial_crops=2), dict(num_frames=0), dict(short_side=16),
                                    dict(repeat_aug=0), dict(scale=(0.5, 2.0)), dict(rand_augment="augmix")])
def test_bad_dataset_settings_are_config_errors(demo, kwargs):
    root, train_csv, _ = demo
    args = dict(SMALL, **kwargs)
    with pytest.raises(ConfigError):
        VideoClipDataset(train_csv, root, train=True, **args)


# -- aggregation --------------------------------------------------------------------------------

def test_aggregate_views_averages_softmax_per_video_as_worked_by_hand():
    ln2, ln3 = float(np.log(2.0)), float(np.log(3.0))
    # softmax rows: (3/4, 1/4), (2/3, 1/3), (1/2, 1/2), (1/4, 3/4), (1/2, 1/2)
    scores = torch.tensor([[ln3, 0.0], [ln2, 0.0], [0.0, 0.0], [0.0, ln3], [0.0, 0.0]])
    video = torch.tensor([7, 2, 7, 2, 2])
    probs, ids = aggregate_views(scores, video)
    assert ids.tolist() == [2, 7]
    # video 2: ((2/3 + 1/4 + 1/2) / 3, (1/3 + 3/4 + 1/2) / 3) = (17/36, 19/36); video 7: (5/8, 3/8)
    torch.testing.assert_close(probs, torch.tensor([[17 / 36, 19 / 36], [5 / 8, 3 / 8]]))
    with pytest.raises(DataError):
        aggregate_views(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


# -- demo data ----------------------------------------------------------------------------------

def test_demo_videos_are_deterministic_and_the_cli_writes_them(tmp_path, demo):
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


def test_hflip_off_keeps_the_left_right_direction(tmp_path):
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
