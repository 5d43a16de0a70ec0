"""Recognising uploaded images by their first bytes, never by their name."""

from dataclasses import dataclass

from sora2.domain.errors import UnsupportedMedia


@dataclass(frozen=True)
class ImageKind:
    content_type: str
    extension: str


PNG = ImageKind("image/png", "png")
JPEG = ImageKind("image/jpeg", "jpg")
WEBP = ImageKind("image/webp", "webp")


def sniff_image(data: bytes) -> ImageKind:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    raise UnsupportedMedia("the avatar must be a PNG, JPEG or WebP image")


MP4 = ImageKind("video/mp4", "mp4")  # not an image, but stored and served the same way


def content_type_of(key: str) -> str:
    """The content type we stored a file under, from the extension we gave it."""
    extension = key.rsplit(".", 1)[-1].lower()
    for kind in (PNG, JPEG, WEBP, MP4):
        if kind.extension == extension:
            return kind.content_type
    return "application/octet-stream"
