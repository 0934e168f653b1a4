"""launch/bench.py --official PATH: the official ToMe, loaded from a checkout the user supplies,
timed beside ours in the same rounds. A fake checkout checks the loading and the report without
the real code; with TOME_OFFICIAL=/path/to/ToMe the real one must give our outputs."""
import copy
import os
import sys

import pytest
import timm
import torch

import tome
from launch import bench
from launch.runs.official_tome import load_official_timm_patch

FAKE_FILES = {
    # modules that import each other as `tome.*`, as the official ones do
    "tome/merge.py": "def marker():\n    return 'official merge'\n",
    "tome/utils.py": "def schedule(r):\n    return list(r)\n",
    "tome/patch/timm.py": ("from tome.merge import marker\nfrom tome.utils import schedule\n\n"
                           "def apply_patch(model, trace_source=False, prop_attn=True):\n"
                           "    model.patched_by = marker()\n"),
}


@pytest.fixture
def fake_checkout(tmp_path):
    for name, text in FAKE_FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_official_checkout_loads_beside_our_tome_package(fake_checkout):
    ours = sys.modules["tome"]
    apply_patch = load_official_timm_patch(str(fake_checkout))
    model = torch.nn.Linear(2, 2)
    apply_patch(model)
    assert model.patched_by == "official merge"  # its own tome.merge, not ours
    assert sys.modules["tome"] is ours and sys.modules["tome.merge"].__file__ == tome.merge.__file__
    assert not hasattr(tome.merge, "marker")


def test_bad_official_path_is_refused_naming_it_and_what_it_needs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--model", "vit_tiny_patch16_224", "--official", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "nowhere" in err and "tome/patch/timm.py" in err and "facebookresearch/ToMe" in err
    with pytest.raises(SystemExit):
        bench.main(["--model", "audio_vit_b", "--official", str(tmp_path)])
    assert "audio_vit_b" in capsys.readouterr().err


def test_bench_times_the_official_model_in_the_same_rounds(fake_checkout):
    # the fake patch leaves the model unmerged: a fourth model timed in every round
    result = bench.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                         "--batch", "1", "--runs", "2", "--warmup", "0", "--device", "cpu",
                         "--official", str(fake_checkout)])
    assert set(result["throughput"]) == {"unmerged", "official", "merged", "limit"}
    per_round = result["merged_over_official_per_round"]
    assert len(per_round) == 2 and result["merged_over_official"] == pytest.approx(sum(per_round) / 2)
    interval = result["merged_over_official_interval"]
    assert (interval["lo"], interval["hi"]) == (min(per_round), max(per_round))
    lo, hi = result["merged_over_unmerged_interval"]["lo"], result["merged_over_unmerged_interval"]["hi"]
    assert lo <= result["merged_over_unmerged"] <= hi


OFFICIAL = os.environ.get("TOME_OFFICIAL")


@pytest.mark.skipif(not OFFICIAL, reason="set TOME_OFFICIAL to a facebookresearch/ToMe checkout")
@pytest.mark.parametrize("r", [3, [4, 0, 2, 5]])
def test_official_code_gives_our_outputs(r):
    base = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=64, depth=4).eval()
    ours = tome.patch.timm(copy.deepcopy(base))
    ours.r = r
    official = copy.deepcopy(base)
    load_official_timm_patch(OFFICIAL)(official)
    official.r = tome.parse_r(r, 4)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), official(x), atol=1e-5, rtol=1e-4)
