"""Generated avatars: a gradient disc with the character's initial, for cards that come without one."""

from __future__ import annotations

import colorsys
import hashlib
import io

from PIL import Image, ImageDraw, ImageFont

AVATAR_SIZE = 400
_SUPERSAMPLE = 3  # draw large and shrink: Pillow's shapes have no anti-aliasing of their own

RGB = tuple[int, int, int]


def name_colors(name: str) -> tuple[RGB, RGB]:
    """Two related colours picked from the name, so the same character always looks the same."""
    hue = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:2], "big") / 65536
    top = colorsys.hls_to_rgb(hue, 0.62, 0.65)
    bottom = colorsys.hls_to_rgb((hue + 0.12) % 1.0, 0.32, 0.7)
    return _rgb(top), _rgb(bottom)


def gradient_disc(top: RGB, bottom: RGB, size: int) -> Image.Image:
    """An RGBA image: a vertical ``top``-to-``bottom`` gradient clipped to a circle, transparent around it."""
    column = Image.linear_gradient("L").resize((1, size))
    gradient = Image.composite(
        Image.new("RGB", (1, size), bottom), Image.new("RGB", (1, size), top), column
    ).resize((size, size))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size - 1, size - 1), fill=255)
    disc = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    disc.paste(gradient, (0, 0), mask)
    return disc


def placeholder_avatar(name: str, *, size: int = AVATAR_SIZE) -> bytes:
    """A PNG avatar: the name's initial in white on a gradient disc."""
    big = size * _SUPERSAMPLE
    image = gradient_disc(*name_colors(name), big)
    initial = next((char.upper() for char in name if char.isalnum()), "?")
    font = ImageFont.load_default(size=big * 0.5)
    draw = ImageDraw.Draw(image)
    draw.text((big / 2, big / 2), initial, font=font, fill=(255, 255, 255, 255), anchor="mm")
    return png_bytes(image.resize((size, size), Image.Resampling.LANCZOS))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _rgb(color: tuple[float, float, float]) -> RGB:
    red, green, blue = (round(channel * 255) for channel in color)
    return red, green, blue
