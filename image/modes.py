"""Every PIL image mode to 8-bit RGB, by value; modes that cannot be converted raise with a reason.

``Image.convert("RGB")`` clips 16-bit grey (``I;16``, ``I;16B``, ``I``) at 255, so a 16-bit PNG
becomes almost all white. Here:
  * 16-bit grey (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) is scaled by value, 0..65535 to
    0..255 (``round(v / 257)``, so 257 * k maps exactly to k);
  * ``I`` (32-bit integer, how PIL opens some 16-bit PNG and TIFF files) is read the same way when
    its values lie in 0..65535, and is unreadable otherwise (no known white point);
  * transparent images (``RGBA``, ``LA``, ``PA``, ``P`` with a transparency entry, premultiplied
    ``RGBa``/``La``) are composited over white, the colour a viewer shows under transparency;
  * ``P``, ``1``, ``L``, ``CMYK`` (PIL undoes Adobe's inverted JPEG CMYK when decoding),
    ``YCbCr``, ``RGBX`` and ``RGB`` use PIL's own conversions.
Anything else (``F``, ``LAB``, ``HSV``, multi-channel 16-bit, ...) raises :class:`UnsupportedMode`,
which the dataset counts as an unreadable file with that reason.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

BACKGROUND = (255, 255, 255)
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
DIRECT = ("RGB", "L", "1", "CMYK", "YCbCr", "RGBX")
ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
HANDLED = DIRECT + ALPHA + SIXTEEN_BIT + ("P", "I")


class UnsupportedMode(ValueError):
    """An image mode with no defined conversion to 8-bit RGB."""


def _grey16_to_rgb(values: np.ndarray, mode: str) -> Image.Image:
    values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise UnsupportedMode(f"image mode {mode} with values {values.min()}..{values.max()} "
                              f"outside the 16-bit range 0..65535")
    grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")


def _over_background(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    base = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB (see the module docstring); raises UnsupportedMode."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in SIXTEEN_BIT or mode == "I":
        return _grey16_to_rgb(np.asarray(image), mode)
    if mode in ALPHA:
        return _over_background(image)
    if mode == "P":
        if "transparency" in image.info:
            return _over_background(image)
        return image.convert("RGB")
    if mode in DIRECT:
        return image.convert("RGB")
    raise UnsupportedMode(f"image mode {mode} is not supported (supported: {', '.join(HANDLED)})")
