"""A small synthetic image-classification set, written as real image files in the ImageFolder layout.

Each image is one object on a smooth, noisy background. Texture classes are told apart by the
pattern inside a region of random outline, shape classes by outline (circle, square, ...). Colours,
positions, sizes and rotations are random, so a model has to look at the object; the background
covers most of the image and is self-similar, which is exactly what token merging should exploit.

Textures come first in CLASSES because a tiny ViT learns them within a few hundred steps; shape
classes need global reasoning and take a tiny ViT far longer, so the default 8 classes hold only
two of them (ring, circle).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

from launch.engine.errors import ConfigError
from launch.engine.generated import META_FILE, regenerate  # noqa: F401  (META_FILE: the settings file)

SHAPES = ("circle", "square", "triangle", "cross", "ring", "star")
TEXTURES = ("hstripes", "vstripes", "checker", "dots", "grid", "noise")
CLASSES = ("hstripes", "vstripes", "checker", "dots", "grid", "noise", "ring", "circle",
           "square", "triangle", "cross", "star")
DEFAULT_NUM_CLASSES = 8
SUPERSAMPLE = 2  # render at 2x and box-filter down for anti-aliased edges
SPLITS = ("train", "val")


def class_dir_names(num_classes: int) -> list:
    """Folder names; the numeric prefix keeps ImageFolder's alphabetical order equal to CLASSES."""
    return [f"{i:02d}_{CLASSES[i]}" for i in range(num_classes)]


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=3).astype(np.float32)


def _contrasting(rng: np.random.Generator, against: np.ndarray, min_dist: float = 0.45) -> np.ndarray:
    """A random colour far enough from `against` that the object is always visible."""
    for _ in range(100):
        c = _colour(rng)
        if np.linalg.norm(c - against) >= min_dist:
            return c
    return (1.0 - against).astype(np.float32)


@lru_cache(maxsize=8)
def _grid(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) of an n x n canvas, shared by every image of that size."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return yy, xx


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """A gentle two-colour gradient plus a faint blob (pixel noise comes later).

    Kept low-contrast on purpose: background patches should look alike (what merging exploits)
    and never hide the object.
    """
    a = _colour(rng)
    b = np.clip(a + rng.uniform(-0.25, 0.25, size=3), 0.0, 1.0).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = _grid(n)
    yy, xx = yy / max(n - 1, 1), xx / max(n - 1, 1)
    t = (math.cos(angle) * (xx - 0.5) + math.sin(angle) * (yy - 0.5)) + 0.5
    t = np.clip(t, 0.0, 1.0)[..., None]
    img = a * (1 - t) + b * t
    # a soft blob so backgrounds are not perfectly planar
    cy, cx = rng.uniform(0, 1, size=2)
    width = 2 * rng.uniform(0.05, 0.2) ** 2
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / width)
    return img + rng.uniform(-0.1, 0.1, size=3).astype(np.float32) * blob[..., None]


def _polygon(cx, cy, radius, angle, points) -> list:
    """Vertices (x, y) of a polygon given in unit polar coordinates (r, theta)."""
    return [(cx + radius * r * math.cos(angle + t), cy + radius * r * math.sin(angle + t))
            for r, t in points]


def _regular(k: int) -> list:
    return [(1.0, 2 * math.pi * i / k) for i in range(k)]


def _star(k: int = 5, inner: float = 0.45) -> list:
    return [((1.0 if i % 2 == 0 else inner), math.pi * i / k) for i in range(2 * k)]


def _cross(arm: float = 0.36) -> list:
    # plus sign with half-width `arm` (in units of the radius), as polar vertices
    pts = [(arm, 1), (arm, arm), (1, arm), (1, -arm), (arm, -arm), (arm, -1),
           (-arm, -1), (-arm, -arm), (-1, -arm), (-1, arm), (-arm, arm), (-arm, 1)]
    return [(math.hypot(x, y), math.atan2(y, x)) for x, y in pts]


def _shape_mask(kind: str, n: int, cx: float, cy: float, r: float, angle: float,
                aspect: float = 1.0) -> np.ndarray:
    """A 0/1 mask of the named shape, drawn with PIL on an n x n canvas."""
    canvas = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif kind == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        ri = r * 0.55
        draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r, angle, _regular(4)), fill=255)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.1, angle, _regular(3)), fill=255)
    elif kind == "cross":
        draw.polygon(_polygon(cx, cy, r, angle, _cross()), fill=255)
    elif kind == "star":
        draw.polygon(_polygon(cx, cy, r * 1.1, angle, _star()), fill=255)
    elif kind == "rect":
        draw.rectangle((cx - r, cy - r * aspect, cx + r, cy + r * aspect), fill=255)
    else:
        raise ConfigError(f"unknown demo shape {kind!r}; expected one of {list(SHAPES) + ['rect']}")
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _pattern(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 texture over the whole canvas; the period scales with the canvas (n pixels)."""
    yy, xx = _grid(n)
    unit = n / 64.0  # periods are defined for a 64-pixel image
    if kind in ("hstripes", "vstripes"):
        period = rng.uniform(3.5, 5.5) * unit  # two or more periods inside an 8-pixel patch
        coord = yy if kind == "hstripes" else xx
        return (((coord + rng.uniform(0, period)) % period) < period / 2).astype(np.float32)
    if kind == "checker":
        cell = rng.uniform(2, 3) * unit
        ox, oy = rng.uniform(0, 2 * cell, size=2)
        return (((np.floor((xx + ox) / cell) + np.floor((yy + oy) / cell)) % 2) == 0).astype(np.float32)
    if kind == "dots":
        period = rng.uniform(4, 6) * unit
        ox, oy = rng.uniform(0, period, size=2)
        dx = (xx + ox) % period - period / 2
        dy = (yy + oy) % period - period / 2
        return ((dx * dx + dy * dy) < (0.33 * period) ** 2).astype(np.float32)
    if kind == "grid":
        period = rng.uniform(4.5, 6) * unit
        ox, oy = rng.uniform(0, period, size=2)
        return ((((xx + ox) % period) < 1.25 * unit) | (((yy + oy) % period) < 1.25 * unit)).astype(np.float32)
    if kind == "noise":
        # random two-colour pixels at the output resolution
        block = max(1, int(round(unit)))
        cells = rng.uniform(size=(-(-n // block),) * 2) < 0.5
        return np.kron(cells, np.ones((block, block)))[:n, :n].astype(np.float32)
    raise ConfigError(f"unknown demo texture {kind!r}; expected one of {list(TEXTURES)}")


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter an (n, n[, c]) array by an integer factor."""
    h, w = img.shape[:2]
    return img.reshape(h // factor, factor, w // factor, factor, *img.shape[2:]).mean(axis=(1, 3))


def _to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float) -> Image.Image:
    """Add sensor-like noise at the final resolution and convert to 8-bit RGB."""
    return _to_pil(img + noise * rng.standard_normal(img.shape, dtype=np.float32))


def render_sample(class_name: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of the given class: an object with random placement on a random background."""
    # The smooth background is drawn at the final size; only the object, whose edges need
    # anti-aliasing, is drawn supersampled and box-filtered into a coverage mask.
    img = _background(rng, size)
    bg_mean = img.reshape(-1, 3).mean(axis=0)
    n = size * SUPERSAMPLE
    r = rng.uniform(0.24, 0.36) * n
    cx, cy = rng.uniform(r, n - r, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    if class_name in SHAPES:
        mask = _shape_mask(class_name, n, cx, cy, r, angle)
        coverage = _downsample(mask, SUPERSAMPLE)[..., None]
        painted = coverage * _contrasting(rng, bg_mean)
    elif class_name in TEXTURES:
        # the region outline is random so only the pattern identifies the class
        outline = "circle" if rng.uniform() < 0.5 else "rect"
        mask = _shape_mask(outline, n, cx, cy, r * 1.1, angle, aspect=rng.uniform(0.6, 1.0))
        # a dark and a bright tint: hue-only contrast made textures far slower for a ViT to learn
        c1 = rng.uniform(0.0, 0.3, size=3).astype(np.float32)
        c2 = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
        p = (_pattern(class_name, n, rng) * mask)[..., None]
        coverage = _downsample(mask, SUPERSAMPLE)[..., None]
        painted = _downsample(p * c1 + (mask[..., None] - p) * c2, SUPERSAMPLE)
    else:
        raise ConfigError(f"unknown demo class {class_name!r}; expected one of {list(CLASSES)}")
    return _finish(img * (1.0 - coverage) + painted, rng, noise=rng.uniform(0.02, 0.05))


def _check_int(name: str, value, low: int, high: int = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    if not ok:
        bound = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ConfigError(f"{name}={value!r} is not valid; expected {bound}")
    return value


def write_demo_images(root, num_classes: int = DEFAULT_NUM_CLASSES, train_per_class: int = 60,
                      val_per_class: int = 20, size: int = 64, seed: int = 0,
                      image_format: str = "png") -> Path:
    """Write root/{train,val}/<NN_class>/<i>.<ext> and return root.

    Every image is seeded from (seed, split, class, index), so the set is identical whatever
    order it is produced in. A second call with the same settings finds the metadata file and
    returns at once; a call with different settings rewrites the demo folders.
    """
    _check_int("num_classes", num_classes, 2, len(CLASSES))
    _check_int("train_per_class", train_per_class, 1)
    _check_int("val_per_class", val_per_class, 1)
    _check_int("size", size, 16)
    _check_int("seed", seed, 0)
    formats = {"png": "PNG", "jpeg": "JPEG"}
    if image_format not in formats:
        raise ConfigError(f"image_format={image_format!r} is not valid; expected one of {sorted(formats)}")
    root = Path(root)
    meta = {"num_classes": num_classes, "train_per_class": train_per_class,
            "val_per_class": val_per_class, "size": size, "seed": seed, "image_format": image_format,
            "classes": class_dir_names(num_classes)}

    def write():
        _write_images(root, meta, image_format, seed)
    regenerate(root, meta, SPLITS, write, "write_demo_images")
    return root


def _write_images(root: Path, meta: dict, image_format: str, seed: int) -> None:
    formats = {"png": "PNG", "jpeg": "JPEG"}
    train_per_class, val_per_class = meta["train_per_class"], meta["val_per_class"]
    ext = "png" if image_format == "png" else "jpg"
    for split_id, (split, per_class) in enumerate(zip(SPLITS, (train_per_class, val_per_class))):
        for c, dir_name in enumerate(meta["classes"]):
            out = root / split / dir_name
            out.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([seed, split_id, c, i])
                img = render_sample(CLASSES[c], meta["size"], rng)
                img.save(out / f"{i:05d}.{ext}", formats[image_format],
                         **({"quality": 95} if image_format == "jpeg" else {}))
