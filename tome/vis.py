"""The paper's picture: which input patches ended up merged together.

Each group of patches that became one token is painted with the group's mean colour and outlined.

    python -m tome.vis --out merged.png                      # a generated picture, random ViT-S/16
    python -m tome.vis --image cat.jpg --model vit_base_patch16_224 --checkpoint vit_b.pth --r 16

For video and audio, fold the source map to (frames, rows, cols) or (time, freq) first
(:mod:`tome.patch.spatiotemporal`, :mod:`tome.patch.spectrogram`) and paint each 2-D slice with
:func:`paint_groups`.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw

from .paint import groups_on_grid, paint_groups


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Min-max scale a normalised input (any shape) to uint8 for display."""
    x = x.float()
    x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
    return (x * 255).round().byte().numpy()


def synthetic_picture(size: int = 224, seed: int = 0) -> Image.Image:
    """The project's one generated scene: sky, ground, sun, a house and a ball, plus pixel noise
    (``seed``), ``size`` x ``size`` RGB. Large uniform regions should collapse into few merged
    groups while the objects keep their own. Used by ``tome.vis`` when no image is given and by
    ``python -m image.data picture``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size={size!r} is not valid; expected an integer >= 32")
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (110, 160, 220))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, int(size * 0.65), size, size], fill=(70, 140, 60))
    draw.ellipse([int(size * .70), int(size * .08), int(size * .90), int(size * .28)], fill=(250, 220, 60))
    draw.rectangle([int(size * .12), int(size * .35), int(size * .42), int(size * .75)], fill=(180, 40, 40))
    draw.polygon([(int(size * .08), int(size * .35)), (int(size * .27), int(size * .18)),
                  (int(size * .46), int(size * .35))], fill=(90, 50, 30))
    draw.ellipse([int(size * .55), int(size * .5), int(size * .85), int(size * .8)], fill=(240, 240, 240))
    arr = np.asarray(img).astype(np.float64) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def visualize(model: torch.nn.Module, image: Image.Image, r, mean=(0.5, 0.5, 0.5),
              std=(0.5, 0.5, 0.5)) -> Image.Image:
    """Run a patched timm ViT with source tracing on one image and paint the merged groups.

    Returns the picture and the call's :class:`tome.CallInfo` (sizes, tokens, source)."""
    from .state import tome_info, trace

    info = tome_info(model)
    model.r = r
    size = model.patch_embed.img_size
    image = image.convert("RGB").resize((size[1], size[0]), Image.BICUBIC)
    arr = np.asarray(image)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    model.eval()
    with torch.no_grad(), trace(source=True) as t:
        model(x[None])
    groups = groups_on_grid(t.source[0], model.patch_embed.grid_size, info.protected)
    return Image.fromarray(paint_groups(arr, groups.numpy())), t.last()


def main(argv=None) -> None:
    import timm

    from .patch import timm as patch_timm

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="input image (default: a generated picture)")
    parser.add_argument("--model", default="vit_small_patch16_224", help="timm model name")
    parser.add_argument("--checkpoint", help="weights for the model (a state dict or {'model': ...})")
    parser.add_argument("--r", type=int, default=16, help="tokens merged per layer")
    parser.add_argument("--out", default="tome_vis.png", help="output PNG")
    args = parser.parse_args(argv)
    model = timm.create_model(args.model, pretrained=False)
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    patch_timm(model)
    image = Image.open(args.image) if args.image else synthetic_picture(model.patch_embed.img_size[0])
    side_by_side, call = visualize(model, image, args.r)
    original = image.convert("RGB").resize(side_by_side.size, Image.BICUBIC)
    canvas = Image.new("RGB", (side_by_side.width * 2 + 8, side_by_side.height), (255, 255, 255))
    canvas.paste(original, (0, 0))
    canvas.paste(side_by_side, (side_by_side.width + 8, 0))
    canvas.save(args.out)
    print(f"wrote {args.out}: {call.tokens[-1]} tokens left of "
          f"{call.source.shape[-1]} after {len(model.blocks)} layers at r={args.r}")


if __name__ == "__main__":
    main()
