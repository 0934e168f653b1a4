"""The image, video and audio demo configs end to end in debug mode at tiny size, and their pictures;
the image one at micro size learns its generated textures, the audio one its sound events, and the
video one its generated motions, well above chance.

Chance and its noise come from the evaluation set alone: for top-1 over k balanced classes, 1/k and
the binomial standard error of that accuracy on n samples; for multi-label mAP, the mean and spread
of the mAP of random scores on the evaluation set's own labels (a seeded simulation, independent of
audio/metrics.py)."""
import json
import math
import os

import numpy as np
import pytest
import torch

from launch import submit, vis

from tests.repo import REPO

MARGIN = 4  # standard errors above chance


@pytest.fixture(autouse=True)
def _one_thread():
    """Micro models gain nothing from a second thread, and on a shared CPU lose much to it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def accuracy_chance(classes: int, n: int) -> tuple:
    """(chance top-1 in percent, its binomial standard error on n samples)."""
    p = 1 / classes
    return 100 * p, 100 * math.sqrt(p * (1 - p) / n)


def test_binomial_noise_at_chance_matches_hand_worked_values():
    assert accuracy_chance(4, 100) == pytest.approx((25.0, 4.330127))  # sqrt(0.25 * 0.75 / 100)
    assert accuracy_chance(2, 25) == pytest.approx((50.0, 10.0))


def demo_rows(exp) -> dict:
    """Per stage of a demo experiment, its result rows: r=0 then r=4 with fewer tokens out, timed
    on one thread by its CPU clock (the demo configs' throughput settings)."""
    out = {}
    for stage in ("pretrain", "merge_ft"):
        rows = [json.loads(l) for l in open(exp / stage / "results.jsonl")]
        assert [r["r"] for r in rows] == [0, 4] and rows[1]["tokens_out"] < rows[0]["tokens_out"]
        assert rows[0]["throughput_clock"] == "cpu" and rows[0]["throughput_threads"] == 1
        out[stage] = rows
    return out


def test_image_demo_learns_textures_well_above_chance(tmp_path):
    classes, val_per_class = 4, 25
    overrides = [f"data.root={tmp_path}/images", f"data.demo_classes={classes}", "data.demo_size=32",
                 "data.img_size=32", "data.demo_train_per_class=40", f"data.demo_val_per_class={val_per_class}",
                 f"model.num_classes={classes}", "model.kwargs={patch_size: 4, embed_dim: 64, depth: 2, num_heads: 2}",
                 "tome.eval_r=[0,4]", "train.batch_size=16", "train.epochs=10", "train.lr=2e-3",
                 "train.warmup_epochs=1", "train.eval_every=0", "train.seed=0", f"launch.out_dir={tmp_path}/runs",
                 "eval.throughput_iters=1", "eval.throughput_warmup=1", "launch.num_workers=0"]
    submit.submit(os.path.join(REPO, "image/configs/demo.yaml"), overrides, cluster="debug")
    exp = next((tmp_path / "runs").iterdir())
    chance, se = accuracy_chance(classes, classes * val_per_class)
    for stage, rows in demo_rows(exp).items():
        assert rows[0]["n"] == classes * val_per_class
        for row in rows:  # merging 4 of 65 tokens a layer must not undo the learning either
            assert row["acc1"] > chance + MARGIN * se, (stage, row["r"], row["acc1"], chance, se)
    out = vis.draw(str(exp / "merge_ft"), 4, 0, str(tmp_path / "groups.png"))
    assert os.path.getsize(out) > 500


def average_precision(scores, positive) -> float:
    """AP as the mean, over the positives, of the precision at each positive's rank (no ties)."""
    order = np.argsort(-np.asarray(scores))
    hits = np.asarray(positive, dtype=bool)[order]
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def map_chance(targets, draws: int = 2000, seed: int = 0) -> tuple:
    """(mean, standard deviation) in percent of the macro mAP of uniformly random scores on these
    multi-hot targets, over classes with a positive: a seeded simulation."""
    targets = np.asarray(targets, dtype=bool)
    targets = targets[:, targets.any(0)]
    rng = np.random.default_rng(seed)
    maps = [np.mean([average_precision(rng.random(len(targets)), t) for t in targets.T]) for _ in range(draws)]
    return 100 * float(np.mean(maps)), 100 * float(np.std(maps))


def test_average_precision_and_its_chance_level_match_hand_worked_values():
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 / 1 + 2 / 3) / 2)
    # One positive among n at a uniformly random rank: E[AP] = (1/n) * sum 1/i (= 25/48 for n = 4).
    mean, sd = map_chance([[1], [0], [0], [0]], draws=20000)
    assert mean == pytest.approx(100 * 25 / 48, abs=0.6)
    assert sd == pytest.approx(100 * math.sqrt((1 + 1 / 4 + 1 / 9 + 1 / 16) / 4 - (25 / 48) ** 2), abs=0.6)


def test_audio_demo_learns_its_sound_events_well_above_chance(tmp_path):
    # The whole 2.5 s clip (248 fbank frames, padded to 256), so every labelled event is heard.
    overrides = [f"data.root={tmp_path}/audio", f"data.train_list={tmp_path}/audio/train.json",
                 f"data.val_list={tmp_path}/audio/val.json",
                 f"data.label_csv={tmp_path}/audio/class_labels_indices.csv", "data.demo_clips=240",
                 "data.target_length=256", "data.time_mask=24", "model.variant=micro", "tome.eval_r=[0,4]",
                 "train.batch_size=16", "train.epochs=30", "train.lr=2e-3", "train.warmup_epochs=2",
                 "train.eval_every=0", "train.seed=0", f"launch.out_dir={tmp_path}/runs",
                 "eval.throughput_iters=1", "eval.throughput_warmup=1", "launch.num_workers=0"]
    submit.submit(os.path.join(REPO, "audio/configs/demo.yaml"), overrides, cluster="debug")
    exp = next((tmp_path / "runs").iterdir())
    val = json.loads((tmp_path / "audio" / "val.json").read_text())["data"]
    mids = sorted({m for clip in val for m in clip["labels"].split(",")})
    targets = [[m in clip["labels"].split(",") for m in mids] for clip in val]
    chance, sd = map_chance(targets)
    for stage, rows in demo_rows(exp).items():
        assert rows[0]["n"] == len(val) == 60
        for row in rows:
            assert row["map"] > chance + MARGIN * sd, (stage, row["r"], row["map"], chance, sd)
            assert row["map_se"] > 0
        assert rows[0]["speedup"] > 0 and rows[0]["baseline_throughput"] > 0
    assert (exp / "compare.md").read_text().count("| map |") == 4
    out = vis.draw(str(exp / "merge_ft"), 4, 0, str(tmp_path / "groups.png"))
    assert os.path.getsize(out) > 500


def test_video_demo_learns_motion_well_above_chance(tmp_path):
    """Up versus down: no single frame tells them apart (tests/video/test_video_demo_frames.py), so
    beating chance needs the motion. The training crop keeps 80-100% of the frame (the default
    8-100% often crops the moving actor out at this size), patches are 8 px so the 32 px crop has a
    4x4 grid, and the fine-tuning stage is one epoch so the test stays near a minute on one thread.
    Three standard errors, not four: over train.seed 0, 1, 2 the pretrained top-1 was 87, 78, 71
    (the bar is 65); the test runs seed 0 only, which is deterministic."""
    classes, val_per_class = 2, 50
    stages = ('[{name: pretrain, set: {tome.r: 0}, sweep: {}}, {name: merge_ft, set: {tome.r: 4, '
              'train.epochs: 1, train.lr: 3.0e-4, train.warmup_epochs: 0, '
              'model.checkpoint: "${stage:pretrain}/checkpoint.pth"}}]')
    overrides = [f"data.root={tmp_path}/videos", f"data.train_list={tmp_path}/videos/train.csv",
                 f"data.val_list={tmp_path}/videos/val.csv", f"data.demo_classes={classes}",
                 "data.demo_train_per_class=64", f"data.demo_val_per_class={val_per_class}",
                 "data.num_frames=8", "data.sampling_rate=4", "data.crop_size=32", "data.crop_scale=[0.8,1.0]",
                 "data.num_temporal_clips=1", f"model.num_classes={classes}", "model.variant=micro",
                 "model.patch=8", "tome.eval_r=[0,4]", "train.batch_size=8", "train.epochs=15", "train.lr=3e-3",
                 "train.warmup_epochs=1", "train.eval_every=0", "train.seed=0", f"stages={stages}",
                 f"launch.out_dir={tmp_path}/runs", "eval.throughput_iters=1", "eval.throughput_warmup=1",
                 "launch.num_workers=0"]
    submit.submit(os.path.join(REPO, "video/configs/demo.yaml"), overrides, cluster="debug")
    exp = next((tmp_path / "runs").iterdir())
    chance, se = accuracy_chance(classes, classes * val_per_class)
    for stage, rows in demo_rows(exp).items():
        assert rows[0]["videos"] == classes * val_per_class
        for row in rows:  # merging 4 of 65 tokens a layer must not undo the learning either
            assert row["acc1"] > chance + 3 * se, (stage, row["r"], row["acc1"], chance, se)
        assert rows[0]["acc1_se"] >= 0 and rows[0]["speedup"] > 0 and rows[0]["baseline_throughput"] > 0
    assert (exp / "compare.md").read_text().count("| acc1 |") == 4
    out = vis.draw(str(exp / "merge_ft"), 4, 0, str(tmp_path / "groups.gif"))
    assert os.path.getsize(out) > 500
