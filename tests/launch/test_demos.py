"""The video and audio demo configs end to end in debug mode at tiny size, and their pictures."""
import json
import os

import pytest

from launch import submit, vis

from tests.repo import REPO  # noqa: E402


@pytest.mark.parametrize("config, overrides, metric, picture", [
    ("video/configs/demo.yaml",
     ["data.root={tmp}/videos", "data.train_list={tmp}/videos/train.csv",
      "data.val_list={tmp}/videos/val.csv", "model.variant=micro", "data.num_frames=4",
      "data.crop_size=32", "tome.eval_r=[0,4]", "train.batch_size=8"], "acc1", "groups.gif"),
    ("audio/configs/demo.yaml",
     ["data.root={tmp}/audio", "data.train_list={tmp}/audio/train.json",
      "data.val_list={tmp}/audio/val.json", "data.label_csv={tmp}/audio/class_labels_indices.csv",
      "data.demo_clips=40", "model.variant=micro", "data.target_length=64", "data.time_mask=8",
      "tome.eval_r=[0,4]", "train.batch_size=8"], "map", "groups.png"),
])
def test_video_and_audio_demo_configs_train_both_stages_in_debug_mode(config, overrides, metric, picture, tmp_path):
    overrides = [o.format(tmp=tmp_path) for o in overrides] + [
        f"launch.out_dir={tmp_path}/runs", "train.epochs=1", "eval.throughput_iters=1",
        "eval.throughput_warmup=1", "launch.num_workers=0"]
    submit.submit(os.path.join(REPO, config), overrides, cluster="debug")
    exp = next((tmp_path / "runs").iterdir())
    for stage in ("pretrain", "merge_ft"):
        rows = [json.loads(l) for l in open(exp / stage / "results.jsonl")]
        assert [r["r"] for r in rows] == [0, 4]
        assert rows[1]["tokens_out"] < rows[0]["tokens_out"]
        assert 0 <= rows[0][metric] <= 100
        assert rows[0][f"{metric}_se"] >= 0 and rows[0]["speedup"] > 0 and rows[0]["baseline_throughput"] > 0
    assert (exp / "compare.md").read_text().count(f"| {metric} |") == 4
    out = vis.draw(str(exp / "merge_ft"), 4, 0, str(tmp_path / picture))
    assert os.path.getsize(out) > 500
