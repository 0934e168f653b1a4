"""ImageNet-style image data: the ImageFolder dataset, transforms per model family, demo data.

The dataset reads root/<split>/<class>/<image> (the ImageNet-1k ImageFolder layout). Run
`python -m image.data demo ROOT` to write the small synthetic set the demo configs train on.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import functional as TF

from launch.engine.data import load_with_standins
from launch.engine.tasks import Sample, make_sample
from image.modes import to_rgb
from launch.engine.errors import ConfigError
from image.demo import CLASSES as DEMO_CLASSES  # noqa: F401  (re-exported)
from image.demo import DEFAULT_NUM_CLASSES, write_demo_images  # noqa: F401
from image.transforms import FAMILIES, eval_settings, eval_transform, train_transform  # noqa: F401

log = logging.getLogger(__name__)

# What PIL raises for a truncated, corrupt or non-image file.


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def scan_split(split_dir: Path) -> Tuple[List[str], List[Tuple[str, int]]]:
    """Sorted class folder names and (path, class index) pairs for every image below them.

    Empty class folders keep their index, so labels stay aligned between train and val.
    """
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    samples = []
    for idx, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(split_dir / name, followlinks=True):
            dirnames.sort()
            samples.extend((os.path.join(dirpath, f), idx) for f in sorted(filenames) if _is_image(f))
    return classes, samples


def load_rgb(path: str) -> Image.Image:
    """Decode fully (load forces it) so corrupt files fail here, not later in a transform; every
    mode is converted to 8-bit RGB by value (image/modes.py), or raises UnsupportedMode."""
    with open(path, "rb") as f:
        image = Image.open(f)
        image.load()
        return to_rgb(image)


def check_has_images(split_dir: str) -> None:
    """ConfigError unless some class folder of ``split_dir`` holds an image (stops at the first)."""
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    for name in classes:
        for _, dirnames, filenames in os.walk(os.path.join(split_dir, name), followlinks=True):
            if any(_is_image(f) for f in filenames):
                return
    raise ConfigError(f"no images found in {str(split_dir)!r} ({len(classes)} class folders); "
                      f"expected <class>/<image> files with one of the extensions {IMG_EXTENSIONS}")


class ImageFolderDataset(Dataset):
    """root/<split>/<class>/* images as :class:`launch.engine.tasks.Sample` dicts.

    A file that cannot be decoded is logged and replaced by a random other sample (up to
    max_retries times); "skipped" counts the failures behind each item so the training/eval
    loop can sum them over workers and processes. "index" is the requested index, "group" the
    image actually read (the stand-in's, whose class is the target).
    """

    def __init__(self, root, split: str = "train", transform: Optional[Callable] = None,
                 max_retries: int = 10):
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"image data root {str(root)!r} is not a directory; expected a folder "
                              "holding train/ and val/ in the ImageFolder layout")
        split_dir = root / split
        if not split_dir.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise ConfigError(f"split {split!r} not found under {str(root)!r}; expected "
                              f"{str(split_dir)!r} (sub-folders found: {found})")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries={max_retries!r} is not valid; expected an integer >= 0")
        self.root, self.split, self.split_dir = root, split, split_dir
        self.classes, self.samples = scan_split(split_dir)
        if not self.samples:
            raise ConfigError(f"no images found in {str(split_dir)!r}; expected <class>/<image> files "
                              f"with one of the extensions {IMG_EXTENSIONS}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.targets = [t for _, t in self.samples]
        self.transform = transform
        self.max_retries = max_retries

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> Tuple[Image.Image, int, int, list]:
        """The image at index, or a random stand-in after failures; returns (image, target, the
        index read, failures)."""
        # torch's RNG is seeded per sample by the engine, so stand-ins are reproducible
        image, used, failures = load_with_standins(
            lambda i: load_rgb(self.samples[i][0]), lambda i: self.samples[i][0], index,
            lambda i, attempt: int(torch.randint(len(self.samples), ()).item()),
            self.max_retries, "image", log)
        return image, self.samples[used][1], used, failures

    def __getitem__(self, index: int) -> Sample:
        img, target, used, failures = self._load(index)
        x = self.transform(img) if self.transform is not None else TF.to_tensor(img)
        return make_sample(x, target, index, used, failures)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic demo dataset to ROOT")
    demo.add_argument("root")
    demo.add_argument("--num-classes", type=int, default=DEFAULT_NUM_CLASSES)
    demo.add_argument("--train-per-class", type=int, default=60)
    demo.add_argument("--val-per-class", type=int, default=20)
    demo.add_argument("--size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--format", choices=("png", "jpeg"), default="png")
    pic = sub.add_parser("picture", help="write the ToMe visualisation picture (tome.vis.synthetic_picture) to PATH")
    pic.add_argument("path")
    pic.add_argument("--size", type=int, default=224)
    pic.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            root = write_demo_images(args.root, num_classes=args.num_classes,
                                     train_per_class=args.train_per_class,
                                     val_per_class=args.val_per_class, size=args.size,
                                     seed=args.seed, image_format=args.format)
            print(f"demo images in {root}")
        else:
            from tome.vis import synthetic_picture
            synthetic_picture(args.size, args.seed).save(args.path)
            print(f"demo picture at {args.path}")
    except ValueError as err:  # ConfigError, or synthetic_picture's ValueError
        parser.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    main()
