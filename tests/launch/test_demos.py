"""The image, video and audio demo configs end to end in debug mode at tiny size, and their pictures;
the image one at micro size learns its generated textures, and the video one its generated motions,
well above chance.

Chance and its noise come from the evaluation set's size alone: for top-1 over k balanced classes,
1/k and the binomial standard error of that accuracy on n samples."""
import json
import math
import os

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
    for stage in ("pretrain", "merge_ft"):
        rows = [json.loads(l) for l in open(exp / stage / "results.jsonl")]
        assert [r["r"] for r in rows] == [0, 4] and rows[1]["tokens_out"] < rows[0]["tokens_out"]
        assert rows[0]["n"] == classes * val_per_class
        for row in rows:  # merging 4 of 65 tokens a layer must not undo the learning either
            assert row["acc1"] > chance + MARGIN * se, (stage, row["r"], row["acc1"], chance, se)
        assert rows[0]["throughput_clock"] == "cpu" and rows[0]["throughput_threads"] == 1
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
    for stage in ("pretrain", "merge_ft"):
        rows = [json.loads(l) for l in open(exp / stage / "results.jsonl")]
        assert [r["r"] for r in rows] == [0, 4] and rows[1]["tokens_out"] < rows[0]["tokens_out"]
        assert rows[0]["videos"] == classes * val_per_class
        for row in rows:  # merging 4 of 65 tokens a layer must not undo the learning either
            assert row["acc1"] > chance + 3 * se, (stage, row["r"], row["acc1"], chance, se)
        assert rows[0]["acc1_se"] >= 0 and rows[0]["speedup"] > 0 and rows[0]["baseline_throughput"] > 0
        assert rows[0]["throughput_clock"] == "cpu" and rows[0]["throughput_threads"] == 1
    assert (exp / "compare.md").read_text().count("| acc1 |") == 4
    out = vis.draw(str(exp / "merge_ft"), 4, 0, str(tmp_path / "groups.gif"))
    assert os.path.getsize(out) > 500


@pytest.mark.parametrize("config, overrides, metric, picture", [
    ("audio/configs/demo.yaml",
     ["data.root={tmp}/audio", "data.train_list={tmp}/audio/train.json",
      "data.val_list={tmp}/audio/val.json", "data.label_csv={tmp}/audio/class_labels_indices.csv",
      "data.demo_clips=40", "model.variant=micro", "data.target_length=64", "data.time_mask=8",
      "tome.eval_r=[0,4]", "train.batch_size=8"], "map", "groups.png"),
])
def test_audio_demo_config_trains_both_stages_in_debug_mode(config, overrides, metric, picture, tmp_path):
    overrides = [o.format(tmp=tmp_path) for o in overrides] + [
        f"launch.out_dir={tmp_path}/runs", "train.epochs=1", "eval.throughput_iters=1",
        "eval.throughput_warmup=1", "launch.num_workers=0"]
    submit.submit(os.path.join(REPO, config), overrides, cluster="debug")
    exp = next((tmp_path / "runs").iterdir())
    for stage in ("pretrain", "merge_ft"):
        rows = [json.loads(l) for l in open(exp / stage / "results.jsonl")]
        assert [r["r"] for r in rows] == [0, 4]
        assert rows[1]["tokens_out"] < rows[0]["tokens_out"]
        assert 0 <= rows[0][metric] <= 100  # learning above chance at this size: not yet (issue #12)
        assert rows[0][f"{metric}_se"] >= 0 and rows[0]["speedup"] > 0 and rows[0]["baseline_throughput"] > 0
        assert rows[0]["throughput_clock"] == "cpu" and rows[0]["throughput_threads"] == 1
    assert (exp / "compare.md").read_text().count(f"| {metric} |") == 4
    out = vis.draw(str(exp / "merge_ft"), 4, 0, str(tmp_path / picture))
    assert os.path.getsize(out) > 500
