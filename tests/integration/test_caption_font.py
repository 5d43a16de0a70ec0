"""The bundled caption font draws Chinese prompts as characters, not as missing-glyph boxes."""

from __future__ import annotations

from PIL import ImageFont

from sora2.adapters.rendering.local import bundled_cjk_font
from sora2.bootstrap import _generator
from tests.support.backends import sqlite_settings


def glyph(font: ImageFont.FreeTypeFont, text: str) -> bytes:
    return bytes(font.getmask(text))


def test_the_bundled_font_has_chinese_glyphs() -> None:
    path = bundled_cjk_font()
    assert path is not None and path.is_file()
    font = ImageFont.truetype(str(path), 40)
    missing = glyph(font, "\U000f0000")  # a private-use code point: the .notdef box
    for character in "猫草地玩耍":
        drawn = glyph(font, character)
        assert any(drawn) and drawn != missing, character


def test_the_server_renders_with_it_unless_told_otherwise(tmp_path) -> None:  # noqa: ANN001
    assert _generator(sqlite_settings(tmp_path)).font_path == bundled_cjk_font()
    other = tmp_path / "font.otf"
    other.write_bytes(bundled_cjk_font().read_bytes())
    chosen = _generator(sqlite_settings(tmp_path, RENDER_FONT_PATH=str(other)))
    assert chosen.font_path == other
