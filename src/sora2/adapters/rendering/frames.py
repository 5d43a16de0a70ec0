"""The pictures of a locally rendered video: a small animation derived from the prompt.

Everything (colours, the background pattern, where the glowing shapes start and how they
move) comes from a hash of the prompt, so one prompt always gives the same video and two
prompts give visibly different ones. The prompt itself is shown on a caption panel.

Drawing is cheap per frame: the background and the caption are drawn once, and each frame
is a window slid across the background plus a few small precomputed sprites blended on top
with integer numpy arithmetic. All of it is kept and drawn in the encoder's own picture
format, BT.709 YUV 4:2:0 (full-size luma, half-size chroma): half the samples of RGB, and
no colour conversion per frame. Alpha blending commutes with the (affine) RGB to YUV
conversion, so blending in YUV gives the picture blending in RGB would.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Colorspace
from PIL import Image, ImageDraw, ImageFont

Rgb = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

BLOB_COUNT = 5
WAVE_DOWNSCALE = 4  # the background pattern is computed at 1/4 size, then scaled up
CAPTION_MAX_LINES = 4
RECENT_SCENES = 4  # prompts whose drawn layers are kept: about 5 MB each at 1280x720
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
        if width % 2 or height % 2:
            raise ValueError(f"4:2:0 pictures need an even size, not {width}x{height}")
        self.width, self.height, self.fps, self.frame_count = width, height, fps, frame_count
        layers = _layers(prompt, width, height, font_path)
        self._background, self._blobs, self._caption, self._bar_colour = layers

    def draw(self, index: int, picture: Picture) -> None:
        """Draw frame number `index` over the whole of `picture` (BT.709 limited range)."""
        progress = index / max(self.frame_count - 1, 1)
        seconds = index / self.fps
        self._background.window_into(picture, progress)
        for blob in self._blobs:
            x, y = blob.position(seconds)
            blob.sprite.blend_centred(picture, x, y)
        if self._caption is not None:
            self._draw_caption(picture, self._caption)
        self._draw_time_bar(picture, progress)

    def yuv420(self, index: int) -> np.ndarray:
        """Frame number `index` as a yuv420p (height * 3 / 2, width) uint8 array (the Y plane,
        then U, then V); a new one on each call."""
        data = np.empty((self.height * 3 // 2, self.width), dtype=np.uint8)
        self.draw(index, Picture.of_yuv420(data))
        return data

    def frame(self, index: int) -> np.ndarray:
        """Frame number `index` as an RGB (height, width, 3) uint8 array (for thumbnails and
        for checking what was drawn), a new one on each call."""
        return yuv420_to_rgb(self.yuv420(index))

    def _draw_caption(self, picture: Picture, caption: Sprite) -> None:
        """Centred horizontally, its bottom edge a little above the frame's."""
        bottom = int(self.height * 0.94)
        caption.blend_at(picture, (self.width - caption.width) // 2, bottom - caption.height)

    def _draw_time_bar(self, picture: Picture, progress: float) -> None:
        bar_height = max(self.height // 120, 3)
        length = round(self.width * progress)
        y, u, v = self._bar_colour
        picture.y[-bar_height:, :length] = y
        chroma_rows, chroma_length = -(-bar_height // 2), -(-length // 2)
        picture.u[-chroma_rows:, :chroma_length] = u
        picture.v[-chroma_rows:, :chroma_length] = v


@functools.lru_cache(maxsize=RECENT_SCENES)
def _layers(
    prompt: str, width: int, height: int, font_path: Path | None
) -> tuple[Background, tuple[Blob, ...], Sprite | None, tuple[int, int, int]]:
    """What a prompt's frames are drawn from, kept for the last few prompts (a retried or
    repeated prompt starts at once). Only ever read, so one copy serves every thread."""
    rng = prompt_rng(prompt)
    palette = Palette.from_rng(rng)
    background = Background.from_rng(rng, palette, width, height)
    blobs = tuple(Blob.from_rng(rng, colour, width, height) for colour in palette.lights)
    caption = caption_sprite(prompt, width, load_font(font_path, width, height))
    bar = np.round(rgb_to_yuv(np.array(palette.lights[0], dtype=np.float32)))
    return background, blobs, caption, (int(bar[0]), int(bar[1]), int(bar[2]))


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


# --- pictures in the encoder's format -------------------------------------------------


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB (..., 3) in 0..255 to BT.709 limited-range Y, Cb, Cr (..., 3), as floats."""
    rgb = rgb.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return np.stack(
        (
            16 + luma * (219 / 255),
            128 + (b - luma) * (224 / 255 / 1.8556),
            128 + (r - luma) * (224 / 255 / 1.5748),
        ),
        axis=-1,
    )


def yuv420_to_rgb(data: np.ndarray) -> np.ndarray:
    """A yuv420p array as `Scene.yuv420` gives it, converted as a player would show it."""
    frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
    return frame.to_ndarray(format="rgb24", src_colorspace=Colorspace.ITU709)


@dataclass(frozen=True)
class Picture:
    """Where one frame is drawn: writable views of its yuv420p planes."""

    y: np.ndarray  # (height, width) uint8
    u: np.ndarray  # (height / 2, width / 2)
    v: np.ndarray

    @staticmethod
    def of_yuv420(data: np.ndarray) -> Picture:
        """Views of a (height * 3 / 2, width) array holding the planes back to back."""
        width, height = data.shape[1], data.shape[0] * 2 // 3
        flat, luma, chroma = data.reshape(-1), width * height, width * height // 4
        return Picture(
            flat[:luma].reshape(height, width),
            flat[luma : luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma :].reshape(height // 2, width // 2),
        )

    @staticmethod
    def of_video_frame(frame: av.VideoFrame) -> Picture:
        """Views of a yuv420p `av.VideoFrame`'s own buffers: drawing there saves a copy."""
        views = []
        for plane in frame.planes:
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            views.append(rows[:, : plane.width])
        return Picture(*views)


# --- background -------------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    """A soft wave pattern larger than the frame; the frame's window pans across it."""

    planes: tuple[np.ndarray, np.ndarray, np.ndarray]  # Y, U, V of (width+pan_x, height+pan_y)
    width: int
    height: int
    start: tuple[int, int]  # window's top-left at the first frame
    end: tuple[int, int]  # ... and at the last

    def __post_init__(self) -> None:
        for plane in self.planes:
            plane.setflags(write=False)  # shared by every scene of the prompt

    @staticmethod
    def from_rng(rng: np.random.Generator, palette: Palette, width: int, height: int) -> Background:
        pan_x, pan_y = width // 4 // 2 * 2, height // 4 // 2 * 2  # even: chroma stays aligned
        planes = _wave_pattern(rng, palette.darks, width + pan_x, height + pan_y)
        start = (int(rng.integers(0, pan_x + 1)), int(rng.integers(0, pan_y + 1)))
        end = (pan_x - start[0], pan_y - start[1])  # the opposite corner region
        return Background(planes, width, height, start, end)

    def window_into(self, picture: Picture, progress: float) -> None:
        """Copy the frame's window of the pattern into `picture` (at even offsets, where
        the half-size chroma planes have a sample)."""
        eased = 0.5 - 0.5 * math.cos(math.pi * progress)
        x = round((self.start[0] + (self.end[0] - self.start[0]) * eased) / 2)
        y = round((self.start[1] + (self.end[1] - self.start[1]) * eased) / 2)
        luma, cb, cr = self.planes
        picture.y[...] = luma[2 * y : 2 * y + self.height, 2 * x : 2 * x + self.width]
        half_width, half_height = self.width // 2, self.height // 2
        picture.u[...] = cb[y : y + half_height, x : x + half_width]
        picture.v[...] = cr[y : y + half_height, x : x + half_width]


def _wave_pattern(
    rng: np.random.Generator, stops: tuple[Rgb, Rgb, Rgb], width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sum of three slanted low-frequency sine waves, coloured through three stops, as
    Y (height, width) and U, V (height / 2, width / 2) planes.

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
    yuv = np.clip(rgb_to_yuv(picture) + 0.5, 0, 255).astype(np.uint8)
    sizes = ((width, height), (width // 2, height // 2), (width // 2, height // 2))
    return tuple(  # type: ignore[return-value]
        np.array(Image.fromarray(yuv[..., c]).resize(size, Image.Resampling.BILINEAR))
        for c, size in enumerate(sizes)
    )


# --- sprites ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One plane's share of a sprite, stored ready for integer blending:
    out = (under * keep + paint) >> 8, with keep = 256 - alpha and paint = value * alpha."""

    keep: np.ndarray  # (h, w) uint16, 0..256
    paint: np.ndarray  # (h, w) uint16, value * alpha

    def __post_init__(self) -> None:
        for array in (self.keep, self.paint):
            array.setflags(write=False)  # shared by every scene of the prompt

    def blend_at(self, plane: np.ndarray, left: int, top: int) -> None:
        """Blend in place with the layer's top-left at (left, top); clipped to the plane."""
        height, width = self.keep.shape
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + width, plane.shape[1]), min(top + height, plane.shape[0])
        if x0 >= x1 or y0 >= y1:
            return
        sx, sy = slice(x0 - left, x1 - left), slice(y0 - top, y1 - top)
        under = plane[y0:y1, x0:x1]
        mixed = under * self.keep[sy, sx]  # uint8 * uint16 -> uint16; max 255 * 256 fits
        mixed += self.paint[sy, sx]
        mixed >>= 8
        under[...] = mixed


@dataclass(frozen=True)
class Sprite:
    """A precomputed RGBA patch as three layers: luma at full size, chroma at half size."""

    layers: tuple[Layer, Layer, Layer]

    @property
    def width(self) -> int:
        return self.layers[0].keep.shape[1]

    @property
    def height(self) -> int:
        return self.layers[0].keep.shape[0]

    @staticmethod
    def from_rgba(rgba: np.ndarray) -> Sprite:
        """From (h, w, 4) uint8; padded with transparency to an even size."""
        rgba = _even_sized(rgba)
        alpha = rgba[..., 3].astype(np.float32) / 255
        premultiplied = rgb_to_yuv(rgba[..., :3]) * alpha[..., None]
        chroma_alpha, chroma = _halved(alpha), _halved(premultiplied[..., 1:])
        return Sprite(
            (
                _layer(alpha, premultiplied[..., 0]),
                _layer(chroma_alpha, chroma[..., 0]),
                _layer(chroma_alpha, chroma[..., 1]),
            )
        )

    @staticmethod
    def of_colour(colour: Rgb, alpha: np.ndarray) -> Sprite:
        """One colour under an (h, w) opacity in 0..1: cheaper than `from_rgba`."""
        alpha = _even_sized(alpha.astype(np.float32))
        luma, cb, cr = (float(c) for c in rgb_to_yuv(np.array(colour)))
        half = _halved(alpha)
        return Sprite(
            (_layer(alpha, alpha * luma), _layer(half, half * cb), _layer(half, half * cr))
        )

    def blend_centred(self, picture: Picture, x: float, y: float) -> None:
        self.blend_at(picture, round(x) - self.width // 2, round(y) - self.height // 2)

    def blend_at(self, picture: Picture, left: int, top: int) -> None:
        """Blend in place with the sprite's top-left at about (left, top): at the even
        position at or left of and above it, where the chroma planes have a sample."""
        left, top = left // 2, top // 2
        luma, cb, cr = self.layers
        luma.blend_at(picture.y, 2 * left, 2 * top)
        cb.blend_at(picture.u, left, top)
        cr.blend_at(picture.v, left, top)


def _even_sized(values: np.ndarray) -> np.ndarray:
    """Padded with zeros (transparency) to an even height and width."""
    height, width = values.shape[:2]
    if not (height % 2 or width % 2):
        return values
    padded = np.zeros((height + height % 2, width + width % 2, *values.shape[2:]), values.dtype)
    padded[:height, :width] = values
    return padded


def _halved(values: np.ndarray) -> np.ndarray:
    """Each 2x2 block of the first two axes averaged: 4:2:0's half-size chroma."""
    return (values[0::2, 0::2] + values[1::2, 0::2] + values[0::2, 1::2] + values[1::2, 1::2]) / 4


def _layer(alpha: np.ndarray, premultiplied: np.ndarray) -> Layer:
    """From alpha in 0..1 and value * alpha (floats) to the integer form `Layer` blends."""
    return Layer(
        keep=(256 - np.round(alpha * 256)).astype(np.uint16),
        paint=np.round(premultiplied * 256).astype(np.uint16),
    )


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
    return Sprite.of_colour(colour, peak * np.clip(1 - distance, 0, 1) ** 1.3)


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
