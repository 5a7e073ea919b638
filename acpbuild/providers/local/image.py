"""Images drawn and transformed with Pillow.

``text_to_image`` draws the prompt over a gradient whose colours come from a
hash of (prompt, seed): a draft that shows what the step was asked for and
changes visibly when the prompt does. ``image_to_image`` applies one of a few
plain transforms. Both are deterministic, so a draft rebuild is byte-stable.
"""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acpbuild.provider import Job, Outcome, ProviderError, RequestRejected
from acpbuild.provider.media import input_file
from acpbuild.providers.local.models import IMAGE_SIZES

if TYPE_CHECKING:
    from PIL import Image, ImageFont

_PROVIDER = "local"

# Pillow format names by output suffix, with the save options we want for each.
_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {"optimize": False}),
    ".jpg": ("JPEG", {"quality": 92}),
    ".jpeg": ("JPEG", {"quality": 92}),
    ".webp": ("WEBP", {"quality": 90, "method": 4}),
}

# Share of the card the text may cover.
_TEXT_WIDTH = 0.86
_TEXT_HEIGHT = 0.80
_LINE_SPACING = 1.25


def save_image(img: Image.Image, path: Path) -> None:
    """Save ``img`` in the format ``path``'s suffix names."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RequestRejected(
            f"cannot write an image as {path.suffix or 'a file without a suffix'}; "
            f"use one of {', '.join(sorted(_FORMATS))}",
            provider=_PROVIDER,
        )
    name, options = fmt
    if name == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # JPEG has no alpha or palette
    elif img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    img.save(path, name, **options)


def open_image(path: str | Path) -> Image.Image:
    """The image at ``path``, loaded and turned upright per its EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = input_file(path, "image")
    try:
        with Image.open(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise ProviderError(
            f"cannot read {path} as an image ({exc}); pass a PNG, JPEG or WebP file",
            provider=_PROVIDER,
        ) from exc
    return upright


def _hash_bytes(prompt: str, seed: int) -> bytes:
    return hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()


def _palette(prompt: str, seed: int) -> tuple[tuple[int, int, int], tuple[int, int, int], int]:
    """Two gradient colours and a gradient style, all from a hash of (prompt, seed)."""
    h = _hash_bytes(prompt, seed)
    hue = h[0] / 255
    # A second hue 60-180 degrees away keeps the pair distinct but not garish.
    hue2 = (hue + (60 + h[1] % 121) / 360) % 1.0
    light1 = 0.25 + h[2] / 255 * 0.25
    light2 = 0.45 + h[3] / 255 * 0.30
    sat = 0.45 + h[4] / 255 * 0.45

    def rgb(hh: float, ll: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hls_to_rgb(hh, ll, sat)
        return round(r * 255), round(g * 255), round(b * 255)

    return rgb(hue, light1), rgb(hue2, light2), h[5] % 3


def _gradient(
    size: tuple[int, int], c1: tuple[int, int, int], c2: tuple[int, int, int], style: int
) -> Image.Image:
    from PIL import Image

    if style == 2:
        mask = Image.radial_gradient("L")
    else:
        mask = Image.linear_gradient("L")
        if style == 1:
            mask = mask.transpose(Image.Transpose.ROTATE_90)
    mask = mask.resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, c2), Image.new("RGB", size, c1), mask)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    # Without FreeType Pillow returns its fixed bitmap font; text is then small
    # but still drawn.
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: Any, max_width: float) -> list[str]:
    """Greedy word wrap; a word wider than the line is split between characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:
                if line and font.getlength(line + ch) > max_width:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def _layout(text: str, width: int, height: int) -> tuple[Any, list[str], int]:
    """The largest font size at which ``text`` fits the card, and its lines."""
    size = max(10, height // 9)
    while True:
        font = _font(size)
        lines = _wrap(text, font, width * _TEXT_WIDTH)
        line_h = round(size * _LINE_SPACING)
        if len(lines) * line_h <= height * _TEXT_HEIGHT or size <= 10:
            break
        size = max(10, int(size * 0.85))
    fit = max(1, int(height * _TEXT_HEIGHT // line_h))
    if len(lines) > fit:
        lines = lines[:fit]
        lines[-1] = lines[-1].rstrip() + "…"
    return font, lines, line_h


def render_card(prompt: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """A ``width`` x ``height`` RGB card: a seeded gradient with ``prompt`` on it."""
    from PIL import ImageDraw

    c1, c2, style = _palette(prompt, seed)
    img = _gradient((width, height), c1, c2, style)
    text = " ".join(prompt.split())
    if not text:
        return img
    font, lines, line_h = _layout(text, width, height)
    # Light text with a dark outline (or the reverse) stays legible on either end
    # of the gradient.
    luma = sum(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] for c in (c1, c2)) / 2
    dark, light = (20, 20, 20), (245, 245, 245)
    fill, outline = (dark, light) if luma > 150 else (light, dark)
    stroke = max(1, line_h // 18)
    draw = ImageDraw.Draw(img)
    top = (height - len(lines) * line_h) / 2
    for i, line in enumerate(lines):
        draw.text(
            (width / 2, top + i * line_h + line_h / 2),
            line,
            font=font,
            fill=fill,
            anchor="mm",
            stroke_width=stroke,
            stroke_fill=outline,
        )
    return img


def card_size(params: dict[str, Any]) -> tuple[int, int]:
    """Width and height for text_to_image: both given, one given, or the named size."""
    base_w, base_h = IMAGE_SIZES[params.get("image_size") or "landscape_4_3"]
    width, height = params.get("width"), params.get("height")
    if width and height:
        return int(width), int(height)
    if width:
        return int(width), max(1, round(int(width) * base_h / base_w))
    if height:
        return max(1, round(int(height) * base_w / base_h)), int(height)
    return base_w, base_h


def generate_text_to_image(job: Job, params: dict[str, Any]) -> Outcome:
    prompt = params.get("prompt")
    if prompt is None:
        raise RequestRejected("text_to_image needs a prompt", provider=_PROVIDER)
    width, height = card_size(params)
    img = render_card(prompt, width, height, int(params.get("seed") or 0))
    save_image(img, job.output)
    return Outcome(
        usage={"images": 1, "megapixels": width * height / 1e6},
        meta={"width": width, "height": height},
    )


def _transform(img: Image.Image, operation: str) -> Image.Image:
    from PIL import ImageFilter, ImageOps

    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    if operation == "grayscale":
        return ImageOps.grayscale(img)
    if operation == "mirror":
        return ImageOps.mirror(img)
    if operation == "blur":
        # Scale the radius with the image so the effect looks alike at any size.
        return img.filter(ImageFilter.GaussianBlur(max(1.0, min(img.size) / 100)))
    if operation == "sharpen":
        return img.filter(ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2))
    if operation == "posterize":
        if img.mode == "RGBA":  # posterize takes no alpha; keep it aside
            alpha = img.getchannel("A")
            out = ImageOps.posterize(img.convert("RGB"), 3)
            out.putalpha(alpha)
            return out
        return ImageOps.posterize(img, 3)
    raise RequestRejected(f"unknown operation {operation!r}", provider=_PROVIDER)


def _resize(img: Image.Image, width: int | None, height: int | None) -> Image.Image:
    from PIL import Image

    if not width and not height:
        return img
    if width and not height:
        height = max(1, round(width * img.height / img.width))
    elif height and not width:
        width = max(1, round(height * img.width / img.height))
    assert width and height
    return img.resize((int(width), int(height)), Image.Resampling.LANCZOS)


def generate_image_to_image(job: Job, params: dict[str, Any]) -> Outcome:
    img = open_image(params["image"])
    out = _transform(img, params.get("operation") or "grayscale")
    out = _resize(out, params.get("width"), params.get("height"))
    save_image(out, job.output)
    return Outcome(
        usage={"images": 1, "megapixels": out.width * out.height / 1e6},
        meta={"width": out.width, "height": out.height, "operation": params.get("operation")},
    )
