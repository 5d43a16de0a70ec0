"""The pictures of a locally rendered video: a small animation derived from the prompt.

Everything (colours, the background pattern, where the glowing shapes start and how they
move) comes from a hash of the prompt, so one prompt always gives the same video and two
prompts give visibly different ones. The prompt itself is shown on a caption panel.

Drawing is cheap per frame: the background and the caption are drawn once, and each frame
is a window slid across the background plus a few small precomputed sprites blended on top
with integer numpy arithmetic.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Rgb = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

BLOB_COUNT = 5
WAVE_DOWNSCALE = 4  # the background pattern is computed at 1/4 size, then scaled up
CAPTION_MAX_LINES = 4
# Longer prompts are cut before wrapping, which keeps wrapping cheap; 600 characters never
# fit in CAPTION_MAX_LINES at our font size, so the cut always ends up behind the ellipsis.
CAPTION_MAX_CHARS = 600
ELLIPSIS = "…"


class Scene:
    """The frames of one prompt's video at one size; `frame(i)` is frame number i."""

    def __init__(
        self,
        prompt: str,
        width: int,
        height: int,
        fps: int,
        frame_count: int,
        font_path: Path | None = None,
    ) -> None:
        self.width, self.height, self.fps, self.frame_count = width, height, fps, frame_count
        rng = prompt_rng(prompt)
        palette = Palette.from_rng(rng)
        self._background = Background.from_rng(rng, palette, width, height)
        self._blobs = [Blob.from_rng(rng, colour, width, height) for colour in palette.lights]
        font = load_font(font_path, width, height)
        self._caption = caption_sprite(prompt, width, font)
        self._bar_colour = np.array(palette.lights[0], dtype=np.uint8)

    def frame(self, index: int) -> np.ndarray:
        """An RGB (height, width, 3) uint8 array, a new one on each call."""
        progress = index / max(self.frame_count - 1, 1)
        seconds = index / self.fps
        picture = self._background.window(progress)
        for blob in self._blobs:
            x, y = blob.position(seconds)
            blob.sprite.blend_centred(picture, x, y)
        if self._caption is not None:
            self._draw_caption(picture, self._caption)
        self._draw_time_bar(picture, progress)
        return picture

    def _draw_caption(self, picture: np.ndarray, caption: Sprite) -> None:
        """Centred horizontally, its bottom edge a little above the frame's."""
        bottom = int(self.height * 0.94)
        caption.blend_at(picture, (self.width - caption.width) // 2, bottom - caption.height)

    def _draw_time_bar(self, picture: np.ndarray, progress: float) -> None:
        bar_height = max(self.height // 120, 3)
        picture[-bar_height:, : round(self.width * progress)] = self._bar_colour


def prompt_rng(prompt: str) -> np.random.Generator:
    """A random generator seeded by the prompt's SHA-256, so it is reproducible."""
    digest = hashlib.sha256(prompt.encode("utf-8", errors="surrogatepass")).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


# --- colours ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Palette:
    darks: tuple[Rgb, Rgb, Rgb]  # background gradient stops: dim enough for white text
    lights: tuple[Rgb, ...]  # one bright colour per glowing shape

    @staticmethod
    def from_rng(rng: np.random.Generator) -> Palette:
        hue = rng.random()
        darks = tuple(
            _hsv(hue + offset, rng.uniform(0.55, 0.9), rng.uniform(0.18, 0.5))
            for offset in (0.0, rng.uniform(0.08, 0.2), rng.uniform(0.4, 0.6))
        )
        lights = tuple(
            _hsv(hue + rng.uniform(-0.25, 0.45), rng.uniform(0.45, 0.85), rng.uniform(0.8, 1.0))
            for _ in range(BLOB_COUNT)
        )
        return Palette(darks=darks, lights=lights)  # type: ignore[arg-type]


def _hsv(hue: float, saturation: float, value: float) -> Rgb:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


# --- background -------------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    """A soft wave pattern larger than the frame; the frame's window pans across it."""

    canvas: np.ndarray  # (height + pan_y, width + pan_x, 3) uint8
    width: int
    height: int
    start: tuple[int, int]  # window's top-left at the first frame
    end: tuple[int, int]  # ... and at the last

    @staticmethod
    def from_rng(rng: np.random.Generator, palette: Palette, width: int, height: int) -> Background:
        pan_x, pan_y = width // 4, height // 4
        canvas = _wave_pattern(rng, palette.darks, width + pan_x, height + pan_y)
        start = (int(rng.integers(0, pan_x + 1)), int(rng.integers(0, pan_y + 1)))
        end = (pan_x - start[0], pan_y - start[1])  # the opposite corner region
        return Background(canvas, width, height, start, end)

    def window(self, progress: float) -> np.ndarray:
        eased = 0.5 - 0.5 * math.cos(math.pi * progress)
        x = round(self.start[0] + (self.end[0] - self.start[0]) * eased)
        y = round(self.start[1] + (self.end[1] - self.start[1]) * eased)
        return self.canvas[y : y + self.height, x : x + self.width].copy()


def _wave_pattern(
    rng: np.random.Generator, stops: tuple[Rgb, Rgb, Rgb], width: int, height: int
) -> np.ndarray:
    """A sum of three slanted low-frequency sine waves, coloured through three stops.

    So smooth a pattern loses nothing by being computed at a quarter of the size and scaled
    up, which makes it about 16 times cheaper."""
    small_width, small_height = -(-width // WAVE_DOWNSCALE), -(-height // WAVE_DOWNSCALE)
    scale = max(small_width, small_height)
    ys, xs = np.mgrid[0:small_height, 0:small_width].astype(np.float32) / scale
    field = np.zeros((small_height, small_width), dtype=np.float32)
    for _ in range(3):
        angle = rng.uniform(0, 2 * math.pi)
        frequency = rng.uniform(0.6, 1.8)
        phase = rng.uniform(0, 2 * math.pi)
        field += np.sin(
            2 * math.pi * frequency * (xs * math.cos(angle) + ys * math.sin(angle)) + phase
        )
    field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    low, mid, high = (np.array(stop, dtype=np.float32) for stop in stops)
    lower = field[..., None] * 2
    upper = lower - 1
    picture = np.where(
        field[..., None] < 0.5, low + (mid - low) * lower, mid + (high - mid) * upper
    )
    small = Image.fromarray(np.clip(picture + 0.5, 0, 255).astype(np.uint8))
    return np.array(small.resize((width, height), Image.Resampling.BILINEAR))


# --- sprites ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sprite:
    """A precomputed RGBA patch, stored ready for integer blending:
    out = (under * keep + paint) >> 8, with keep = 256 - alpha and paint = colour * alpha."""

    keep: np.ndarray  # (h, w, 1) uint16, 0..256
    paint: np.ndarray  # (h, w, 3) uint16, colour * alpha

    @property
    def width(self) -> int:
        return self.keep.shape[1]

    @property
    def height(self) -> int:
        return self.keep.shape[0]

    @staticmethod
    def from_rgba(rgba: np.ndarray) -> Sprite:
        alpha = rgba[..., 3:4].astype(np.uint16)
        alpha += alpha >> 7  # 0..255 -> 0..256 so that opaque really is opaque
        return Sprite(keep=256 - alpha, paint=rgba[..., :3].astype(np.uint16) * alpha)

    def blend_centred(self, picture: np.ndarray, x: float, y: float) -> None:
        self.blend_at(picture, round(x) - self.width // 2, round(y) - self.height // 2)

    def blend_at(self, picture: np.ndarray, left: int, top: int) -> None:
        """Blend in place with the sprite's top-left at (left, top); clipped to the picture."""
        x0, y0 = max(left, 0), max(top, 0)
        x1 = min(left + self.width, picture.shape[1])
        y1 = min(top + self.height, picture.shape[0])
        if x0 >= x1 or y0 >= y1:
            return
        sx, sy = slice(x0 - left, x1 - left), slice(y0 - top, y1 - top)
        under = picture[y0:y1, x0:x1]
        mixed = under * self.keep[sy, sx]  # uint8 * uint16 -> uint16; max 255 * 256 fits
        mixed += self.paint[sy, sx]
        mixed >>= 8
        under[...] = mixed


@dataclass(frozen=True)
class Blob:
    """A glowing disc drifting along a Lissajous curve."""

    sprite: Sprite
    centre: tuple[float, float]
    amplitude: tuple[float, float]
    cycles_per_second: tuple[float, float]
    phase: tuple[float, float]

    @staticmethod
    def from_rng(rng: np.random.Generator, colour: Rgb, width: int, height: int) -> Blob:
        radius = int(min(width, height) * rng.uniform(0.1, 0.25))
        return Blob(
            sprite=_glow_sprite(colour, radius, peak=rng.uniform(0.55, 0.85)),
            centre=(width * rng.uniform(0.25, 0.75), height * rng.uniform(0.25, 0.75)),
            amplitude=(width * rng.uniform(0.1, 0.35), height * rng.uniform(0.1, 0.35)),
            cycles_per_second=(rng.uniform(0.04, 0.2), rng.uniform(0.04, 0.2)),
            phase=(rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)),
        )

    def position(self, seconds: float) -> tuple[float, float]:
        return tuple(  # type: ignore[return-value]
            c + a * math.sin(2 * math.pi * f * seconds + p)
            for c, a, f, p in zip(
                self.centre, self.amplitude, self.cycles_per_second, self.phase, strict=True
            )
        )


def _glow_sprite(colour: Rgb, radius: int, peak: float) -> Sprite:
    """A disc whose opacity falls smoothly from `peak` at the centre to 0 at `radius`."""
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float32)
    distance = np.sqrt(xs * xs + ys * ys) / radius
    opacity = peak * np.clip(1 - distance, 0, 1) ** 1.3
    rgba = np.empty((*distance.shape, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.round(opacity * 255).astype(np.uint8)
    return Sprite.from_rgba(rgba)


# --- caption ----------------------------------------------------------------------------


def load_font(font_path: Path | None, frame_width: int, frame_height: int) -> Font:
    """The given TrueType font, else Pillow's bundled default, sized for the frame."""
    size = max(round(min(frame_width, frame_height) / 20), 12)
    if font_path is not None:
        return ImageFont.truetype(str(font_path), size=size)
    return ImageFont.load_default(size=size)


def caption_sprite(prompt: str, frame_width: int, font: Font) -> Sprite | None:
    """The prompt, wrapped and truncated, white on a translucent dark panel (None if blank)."""
    text = displayable(prompt)[:CAPTION_MAX_CHARS]
    padding = max(frame_width // 40, 8)
    text_width = int(frame_width * 0.86) - 2 * padding
    lines = wrap_text(text, lambda line: font.getlength(line) <= text_width, CAPTION_MAX_LINES)
    if not lines:
        return None
    line_height = _line_height(font)
    panel_width = int(max(font.getlength(line) for line in lines)) + 2 * padding
    panel = Image.new("RGBA", (panel_width, line_height * len(lines) + 2 * padding), (0, 0, 0, 0))
    draw = ImageDraw.Draw(panel)
    draw.rounded_rectangle(
        (0, 0, panel.width - 1, panel.height - 1), radius=padding, fill=(10, 10, 16, 150)
    )
    for number, line in enumerate(lines):
        xy = (padding, padding + number * line_height)
        draw.text(xy, line, font=font, fill=(255, 255, 255, 255))
    return Sprite.from_rgba(np.asarray(panel))


def _line_height(font: Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return round((ascent + descent) * 1.15)
    return font.getbbox("Ag")[3] + 4  # Pillow's bitmap fallback font, without FreeType


def displayable(text: str) -> str:
    """The text on one line: whitespace runs become one space; control, format,
    surrogate and private-use characters (Unicode category C*) are dropped."""
    kept = (ch for ch in text if ch.isspace() or not unicodedata.category(ch).startswith("C"))
    return " ".join("".join(kept).split())


def wrap_text(text: str, fits: Callable[[str], bool], max_lines: int) -> list[str]:
    """Greedy word wrap: break between words, inside a word only if it alone is too wide
    (as with Chinese, which has no spaces); end with an ellipsis if it runs past max_lines."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if fits(candidate):
            line = candidate
            continue
        if line:
            lines.append(line)
        while len(word) > 1 and len(lines) <= max_lines and not fits(word):
            cut = _longest_fitting_prefix(word, fits)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
        if len(lines) > max_lines:
            break
    if line:
        lines.append(line)
    if len(lines) <= max_lines:
        return lines
    return [*lines[: max_lines - 1], _ellipsize(lines[max_lines - 1], fits)]


def _longest_fitting_prefix(word: str, fits: Callable[[str], bool]) -> int:
    """Length of the longest prefix of `word` that fits, at least 1 (binary search)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(word[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _ellipsize(line: str, fits: Callable[[str], bool]) -> str:
    while line and not fits(line + ELLIPSIS):
        line = line[:-1]
    return line.rstrip() + ELLIPSIS
