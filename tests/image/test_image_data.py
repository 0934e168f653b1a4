"""Image data pipeline: demo images through the real loader, transforms, corrupt-file handling."""

import logging
import os

import pytest
import torch
from PIL import Image

from image.data import (DEMO_CLASSES, FAMILIES, ImageFolderDataset, eval_settings, eval_transform, main,
                        train_transform, write_demo_images)
from launch.engine.errors import ConfigError, DataError
from tome.vis import synthetic_picture

SMALL = dict(num_classes=3, train_per_class=4, val_per_class=2, size=32)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return write_demo_images(tmp_path_factory.mktemp("image_demo") / "demo", **SMALL)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_demo_images_are_read_by_the_loader_as_labelled_samples(demo_root):
    train = ImageFolderDataset(demo_root, "train")
    val = ImageFolderDataset(demo_root, "val")
    assert len(train) == 12 and len(val) == 6
    assert train.classes == val.classes == ["00_hstripes", "01_vstripes", "02_checker"]
    item = train[5]
    assert set(item) == {"input", "target", "index", "group", "skipped", "unreadable"}
    assert item["input"].shape == (3, 32, 32) and item["input"].dtype == torch.float32
    assert item["target"] == 1 and item["index"] == 5 and item["skipped"] == 0
    with Image.open(train.samples[0][0]) as img:
        assert img.format == "PNG" and img.size == (32, 32)


def test_demo_images_are_deterministic_and_rewritten_only_when_settings_change(tmp_path, demo_root):
    again = write_demo_images(tmp_path / "again", **SMALL)
    for rel in _files(demo_root):
        if rel.endswith(".png"):
            assert (again / rel).read_bytes() == (demo_root / rel).read_bytes()
    other = write_demo_images(tmp_path / "other", **dict(SMALL, seed=1))
    first = "train/00_hstripes/00000.png"
    assert (other / first).read_bytes() != (demo_root / first).read_bytes()
    stamp = os.stat(again / first).st_mtime_ns
    write_demo_images(again, **SMALL)  # same settings: nothing rewritten
    assert os.stat(again / first).st_mtime_ns == stamp
    write_demo_images(again, **dict(SMALL, train_per_class=2))  # new settings: rewritten
    assert len(ImageFolderDataset(again, "train")) == 6


def test_demo_writer_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not written by write_demo_images"):
        write_demo_images(tmp_path, **SMALL)


def test_demo_with_more_classes_than_defined_is_a_config_error():
    with pytest.raises(ConfigError, match="num_classes"):
        write_demo_images("/nonexistent", num_classes=len(DEMO_CLASSES) + 1)


def test_corrupt_file_is_replaced_counted_and_logged(tmp_path, caplog):
    root = write_demo_images(tmp_path / "d", **SMALL)
    bad = root / "train" / "01_vstripes" / "00002.png"
    bad.write_bytes(b"not an image at all")
    ds = ImageFolderDataset(root, "train")
    index = [p for p, _ in ds.samples].index(str(bad))
    with caplog.at_level(logging.WARNING, logger="image.data"):
        item = ds[index]
    assert item["skipped"] >= 1 and item["index"] == index
    assert item["input"].shape == (3, 32, 32)
    assert str(bad) in caplog.text


def test_all_files_corrupt_is_a_clear_error(tmp_path):
    cls = tmp_path / "val" / "a"
    cls.mkdir(parents=True)
    (cls / "x.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match="image files in a row could not be read"):
        ImageFolderDataset(tmp_path, "val", max_retries=2)[0]


def test_missing_or_empty_dirs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        ImageFolderDataset(tmp_path / "nope", "train")
    with pytest.raises(ConfigError, match="split 'val' not found"):
        ImageFolderDataset(tmp_path, "val")
    (tmp_path / "train" / "cls").mkdir(parents=True)
    (tmp_path / "train" / "cls" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="no images found"):
        ImageFolderDataset(tmp_path, "train")


@pytest.mark.parametrize("family,size,resize", [
    ("augreg", 224, 248), ("augreg", 384, 384), ("deit", 224, 256), ("mae", 224, 256),
    ("swag", 384, 384), ("swag", 518, 518), ("demo", 64, 64)])
def test_eval_transform_resizes_per_family_then_crops_to_size(family, size, resize):
    assert eval_settings(family, size)["resize"] == resize
    out = eval_transform(family, size)(Image.new("RGB", (size + 40, size + 10), (90, 120, 200)))
    assert out.shape == (3, size, size)


def test_swag_matches_torchvision_weights_transform():
    from torchvision.models import ViT_B_16_Weights

    ref = ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1.transforms()
    s = eval_settings("swag", 384)
    assert ref.resize_size == [s["resize"]] and ref.crop_size == [s["img_size"]]
    assert ref.interpolation.value == s["interpolation"]
    assert tuple(ref.mean) == s["mean"] and tuple(ref.std) == s["std"]
    img = synthetic_picture(size=200)
    assert torch.allclose(ref(img), eval_transform("swag", 384)(img), atol=1e-5)


def test_augreg_matches_timm_eval_transform():
    import timm.data

    cfg = dict(input_size=(3, 224, 224), interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=0.9)
    ref = timm.data.create_transform(**cfg)
    img = synthetic_picture(size=300)
    assert torch.allclose(ref(img), eval_transform("augreg", 224)(img), atol=1e-5)


def test_bad_eval_transform_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown image model family 'vgg'.*augreg"):
        eval_transform("vgg", 224)
    with pytest.raises(ConfigError, match="interpolation"):
        eval_transform("deit", 224, interpolation="lanczos9")
    with pytest.raises(ConfigError, match="crop_pct"):
        eval_transform("deit", 224, crop_pct=1.5)
    assert set(FAMILIES) == {"augreg", "deit", "mae", "swag", "demo"}


def test_train_transform_gives_a_float_crop_and_refuses_unknown_rand_augment():
    tf = train_transform(32, re_prob=0.25, scale=(0.5, 1.0))
    out = tf(synthetic_picture(size=64))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert train_transform(32, rand_augment=None)(synthetic_picture(size=48)).shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="rand_augment"):
        train_transform(32, rand_augment="autoaug-v9")


def test_scene_picture_is_deterministic_and_the_cli_writes_demo_data_and_picture(tmp_path):
    pic = synthetic_picture(size=96, seed=0)
    assert pic.size == (96, 96) and pic.mode == "RGB"
    assert pic.tobytes() == synthetic_picture(size=96, seed=0).tobytes()
    main(["demo", str(tmp_path / "cli"), "--num-classes", "2", "--train-per-class", "1",
           "--val-per-class", "1", "--size", "32"])
    assert len(ImageFolderDataset(tmp_path / "cli", "val")) == 2
    main(["picture", str(tmp_path / "pic.png"), "--size", "64"])
    assert Image.open(tmp_path / "pic.png").size == (64, 64)


def test_every_demo_class_renders_and_an_unknown_class_is_refused():
    import numpy as np

    from image.demo import render_sample

    for i, name in enumerate(DEMO_CLASSES):
        img = render_sample(name, 32, np.random.default_rng([0, i]))
        assert img.size == (32, 32) and img.mode == "RGB"
    with pytest.raises(ConfigError, match="unknown demo class"):
        render_sample("hexagon", 32, np.random.default_rng(0))
