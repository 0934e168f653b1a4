"""Image modes (image/modes.py): 16-bit, palette, CMYK, LA and unknown modes read by value, or counted unreadable."""

import numpy as np
from PIL import Image


def test_16bit_png_is_scaled_by_value(tmp_path):
    from image.data import load_rgb
    values = np.array([[0, 257, 1000, 25700], [32768, 60000, 65278, 65535]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = np.asarray(load_rgb(str(path)))
    # by hand: round(v / 257)
    expected = np.array([[0, 1, 4, 100], [128, 233, 254, 255]], dtype=np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], expected)


def test_other_image_modes_convert_by_value_over_white():
    from image.modes import to_rgb
    big = Image.fromarray(np.array([[0, 514, 65535]], dtype=">u2"))
    assert big.mode == "I;16B"
    assert np.asarray(to_rgb(big))[0, :, 0].tolist() == [0, 2, 255]
    i32 = Image.fromarray(np.array([[0, 771, 65535]], dtype=np.int32))
    assert i32.mode == "I" and np.asarray(to_rgb(i32))[0, :, 0].tolist() == [0, 3, 255]
    # palette with a transparent entry: transparent pixels show the white background
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    assert np.asarray(to_rgb(pal)).tolist() == [[[255, 255, 255], [200, 100, 50]]]
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((0, 0), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (255, 0, 0, 0))
    assert np.asarray(to_rgb(cmyk)).tolist() == [[[255, 255, 255], [0, 255, 255]]]
    la = Image.new("LA", (3, 1))
    for x, px in enumerate([(100, 255), (100, 0), (100, 128)]):
        la.putpixel((x, 0), px)
    out = np.asarray(to_rgb(la))[0, :, 0].astype(int).tolist()
    # over white: 100 * a + 255 * (1 - a), a = 1, 0, 128/255 -> 100, 255, 177.8
    assert out[:2] == [100, 255] and abs(out[2] - 178) <= 1


def test_unhandled_mode_is_counted_unreadable_with_its_reason(tmp_path):
    from image.data import ImageFolderDataset
    for split in ("val",):
        d = tmp_path / split / "a"
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.float32)).save(d / "0_float.tiff")
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(d / "1_ok.png")
    ds = ImageFolderDataset(tmp_path, "val")
    item = ds[0]
    assert item["skipped"] >= 1 and "image mode F is not supported" in item["unreadable"]
    assert "0_float.tiff" in item["unreadable"]
