"""tome.r_for_flops: the smallest r whose analytic FLOPs are a given fraction of the unmerged
model's, checked against FLOP counts worked by hand on a model small enough to count."""
import pytest
import timm
import torch
import transformers

import tome
from tome.budget import useful_r_max
from video.model import build_video_vit


def _counted_model():
    """16 px images, 8 px patches: 4 patches + the class token = 5 tokens; width 8, 2 heads
    (head_dim 4, the width of the key metric), MLP 16, 2 blocks, 3 classes."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=8,
                              embed_dim=8, num_heads=2, mlp_ratio=2.0, depth=2, num_classes=3)
    return tome.patch.timm(model)


# MACs by hand (one multiply-add = one FLOP, fvcore's convention as in the paper):
#   patch embedding 4 patches x (8 x 3 x 8 x 8 = 1536) = 6144; head 8 x 3 = 24; together 6168.
#   A block with n tokens in and m out: qkv 24n + attention 2 * 8 * n^2 + projection 8n
#   = 256n + 16n^2; MLP 2 * 8 * 16 * m = 256m; matching |A| x |B| x 4 when it merges.
#   |A|, |B| of the even/odd split after the class token: n=5: 2, 2; n=3: 1, 1.
UNMERGED = 6168 + 2 * (256 * 5 + 16 * 25 + 256 * 5)                     # 12088
R1 = 6168 + (256 * 5 + 400 + 256 * 4 + 16) + (256 * 4 + 256 + 256 * 3 + 8)  # 5 -> 4 -> 3: 10944
R2 = 6168 + (256 * 5 + 400 + 256 * 3 + 16) + (256 * 3 + 144 + 256 * 2 + 4)  # 5 -> 3 -> 2: 10060
DECREASING_1 = 6168 + (256 * 5 + 400 + 256 * 3 + 16) + (256 * 3 + 144 + 256 * 3)  # (1, -1) = [2, 0]: 10312


def test_hand_worked_counts_are_what_they_say():
    assert (UNMERGED, R1, R2, DECREASING_1) == (12088, 10944, 10060, 10312)


@pytest.mark.parametrize("fraction, r, macs, tokens", [
    (1.0, 0, UNMERGED, [5, 5]),
    (0.95, 1, R1, [4, 3]),          # 10944 / 12088 = 0.905
    (0.905, 2, R2, [3, 2]),         # just below r=1's fraction: r=1 no longer does
    (0.85, 2, R2, [3, 2]),          # 10060 / 12088 = 0.832
])
def test_constant_r_for_a_flop_fraction_matches_hand_count(fraction, r, macs, tokens):
    found = tome.r_for_flops(_counted_model(), fraction)
    assert (found.r, found.schedule, found.tokens) == (r, r, tokens)
    assert found.gflops == pytest.approx(macs / 1e9, rel=1e-12)
    assert found.unmerged_gflops == pytest.approx(UNMERGED / 1e9, rel=1e-12)
    assert found.fraction == pytest.approx(macs / UNMERGED, rel=1e-12)


def test_decreasing_schedule_for_a_flop_fraction_matches_hand_count():
    found = tome.r_for_flops(_counted_model(), 0.86, kind="decreasing")
    assert (found.r, found.schedule, found.tokens) == (1, (1, -1.0), [3, 3])
    assert found.gflops == pytest.approx(DECREASING_1 / 1e9, rel=1e-12)


def test_unreachable_fraction_names_the_fewest_flops_merging_reaches():
    with pytest.raises(ValueError, match=r"FLOP fraction 0.8 cannot be reached .*0\.832 .*r=2"):
        tome.r_for_flops(_counted_model(), 0.8)
    with pytest.raises(ValueError, match=r"decreasing schedule: the fewest FLOPs are 0\.853"):
        tome.r_for_flops(_counted_model(), 0.84, kind="decreasing")


@pytest.mark.parametrize("bad", [0, 1.5, -0.2, "half", True])
def test_bad_fraction_is_a_one_line_error_naming_it(bad):
    with pytest.raises(ValueError, match=r"FLOP fraction must be a number in \(0, 1\].*got"):
        tome.r_for_flops(_counted_model(), bad)
    with pytest.raises(ValueError, match="schedule kind must be one of"):
        tome.r_for_flops(_counted_model(), 0.5, kind="linear")


def test_useful_r_max_is_where_token_counts_stop_changing():
    # 17 tokens (one protected): a layer merges at most 8, so r = 8 saturates the first layer and
    # every later one; r = 7 leaves 10 tokens after it instead of 9.
    assert useful_r_max(17, 1, 12, "constant") == 8
    assert useful_r_max(5, 1, 2, "constant") == 2
    assert useful_r_max(5, 1, 2, "decreasing") == 1  # (1, -1) asks [2, 0]: the first layer's most


def test_video_and_transformers_models_get_a_schedule_that_a_forward_confirms():
    """Any patched model: the tokens the answer counts are those a real forward leaves."""
    video = tome.patch.video(build_video_vit("micro", num_classes=5))  # 16 x 224 clips: 1569 tokens
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=3,
                                    num_attention_heads=3, intermediate_size=96, num_labels=7)
    hf = tome.patch.transformers(transformers.ViTForImageClassification(config))
    for model, x, found in (
            (video, torch.randn(1, 3, 16, 224, 224), tome.r_for_flops(video, 0.8)),
            (hf, torch.randn(1, 3, 32, 32), tome.r_for_flops(hf, 0.7, example=torch.randn(1, 3, 32, 32)))):
        assert found.fraction <= 0.8 and found.r > 0
        model.r = found.schedule
        with torch.no_grad(), tome.trace() as t:
            model.eval()(x)
        assert t.tokens == found.tokens
    with pytest.raises(ValueError, match="pass tokens_in= or example="):
        tome.r_for_flops(hf, 0.7)
