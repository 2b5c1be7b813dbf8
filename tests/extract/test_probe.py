"""probe_image: header-only identification of real images made with Pillow, SVG, EMF/WMF, and bad inputs."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageCms

from imageextract.extract.probe import ProbeError, aspect_ratio, probe_image
from imageextract.extract.types import ExtractOptions
from tests.extract.webfixtures import make_image, palette_png


@pytest.mark.parametrize(
    ("data", "fmt", "size", "color_space", "has_alpha", "media_type"),
    [
        (make_image("PNG", (31, 17)), "png", (31, 17), "srgb", False, "image/png"),
        (make_image("PNG", (31, 17), "RGBA"), "png", (31, 17), "srgb", True, "image/png"),
        (make_image("PNG", (8, 9), "L"), "png", (8, 9), "grayscale", False, "image/png"),
        (make_image("PNG", (8, 9), "LA"), "png", (8, 9), "grayscale", True, "image/png"),
        (make_image("PNG", (8, 9), "1"), "png", (8, 9), "grayscale", False, "image/png"),
        (make_image("PNG", (8, 9), "I;16"), "png", (8, 9), "grayscale", False, "image/png"),
        (palette_png((12, 5)), "png", (12, 5), "indexed", True, "image/png"),
        (palette_png((12, 5), transparent=False), "png", (12, 5), "indexed", False, "image/png"),
        (make_image("JPEG", (40, 30)), "jpeg", (40, 30), "srgb", False, "image/jpeg"),
        (make_image("JPEG", (40, 30), "L"), "jpeg", (40, 30), "grayscale", False, "image/jpeg"),
        (make_image("JPEG", (40, 30), "CMYK"), "jpeg", (40, 30), "cmyk", False, "image/jpeg"),
        (make_image("GIF", (7, 3), "P", transparency=1), "gif", (7, 3), "indexed", True, "image/gif"),
        (make_image("GIF", (7, 3), "P"), "gif", (7, 3), "indexed", False, "image/gif"),
        (make_image("WEBP", (20, 10)), "webp", (20, 10), "srgb", False, "image/webp"),
        (make_image("WEBP", (20, 10), "RGBA"), "webp", (20, 10), "srgb", True, "image/webp"),
        (make_image("AVIF", (16, 8)), "avif", (16, 8), "srgb", False, "image/avif"),
        (make_image("BMP", (5, 6)), "bmp", (5, 6), "srgb", False, "image/bmp"),
        (make_image("TIFF", (5, 6), "CMYK"), "tiff", (5, 6), "cmyk", False, "image/tiff"),
        (make_image("ICO", (32, 32), "RGBA"), "ico", (32, 32), "srgb", True, "image/vnd.microsoft.icon"),
    ],
)
def test_raster_formats(data: bytes, fmt: str, size: tuple[int, int], color_space: str, has_alpha: bool, media_type: str) -> None:
    info = probe_image(data)
    assert (info.format, (info.width, info.height), info.color_space, info.has_alpha, info.media_type) == (
        fmt,
        size,
        color_space,
        has_alpha,
        media_type,
    )
    assert info.aspect_ratio == round(size[0] / size[1], 3)


def test_icc_profile_is_noted() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = probe_image(make_image("PNG", (4, 4), icc_profile=profile))
    assert info.has_icc_profile
    assert not probe_image(make_image("PNG", (4, 4))).has_icc_profile


def test_animated_gif_frames_are_counted_without_decoding() -> None:
    frames = [Image.new("RGB", (6, 4), (80 * i, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    info = probe_image(buf.getvalue())
    assert (info.format, info.width, info.height, info.frame_count) == ("gif", 6, 4, 3)


def test_the_declared_media_type_is_only_a_hint() -> None:
    info = probe_image(make_image("PNG", (3, 3)), media_type="image/jpeg")
    assert (info.format, info.media_type) == ("png", "image/png")


def test_decompression_bomb_is_an_error_not_a_warning() -> None:
    data = make_image("PNG", (200, 200), "1")
    with pytest.raises(ProbeError) as info:
        probe_image(data, options=ExtractOptions(max_image_pixels=30_000))  # warning zone (<= 2x limit)
    assert info.value.reason == "bomb" and info.value.code == "unsupported_input"
    with pytest.raises(ProbeError) as info:
        probe_image(data, options=ExtractOptions(max_image_pixels=1_000))  # Pillow's hard error zone
    assert info.value.reason == "bomb"
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the global is restored
    assert probe_image(data, options=ExtractOptions(max_image_pixels=40_000)).width == 200


def test_huge_dimensions_in_a_tiny_file_are_caught_from_the_header() -> None:
    """A PNG header claiming 100000x100000 pixels: rejected without decoding anything."""
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    png += struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    with pytest.raises(ProbeError) as info:
        probe_image(png)
    assert info.value.reason == "bomb"


@pytest.mark.parametrize(
    ("svg", "size"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"/>', (120, 80)),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="120px" height="2in"/>', (120, 192)),
        (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 150"/>', (300, 150)),
        (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0,0,300,150" width="600"/>', (600, 300)),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="100%" viewBox="0 0 10 20"/>', (10, 20)),
        (b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- c -->\n<svg width="5" height="6"></svg>', (5, 6)),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', (None, None)),
    ],
)
def test_svg_dimensions(svg: bytes, size: tuple[int | None, int | None]) -> None:
    info = probe_image(svg)
    assert (info.format, info.width, info.height, info.media_type) == ("svg", *size, "image/svg+xml")
    assert info.has_alpha is True


def test_svg_with_entities_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><svg>&b;</svg>'
    with pytest.raises(ProbeError) as info:
        probe_image(bomb)
    assert info.value.reason == "not_allowed"


def test_svg_with_external_entity_is_refused() -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>'
    with pytest.raises(ProbeError):
        probe_image(xxe)


def test_emf_header() -> None:
    header = struct.pack("<II4i4i", 1, 108, 0, 0, 640, 480, 0, 0, 16933, 12700) + b" EMF" + b"\0" * 64
    info = probe_image(header)
    assert (info.format, info.width, info.height, info.media_type) == ("emf", 640, 480, "image/emf")


def test_placeable_wmf_header() -> None:
    header = b"\xd7\xcd\xc6\x9a" + struct.pack("<H4hHI", 0, 0, 0, 1440, 720, 1440, 0) + b"\0" * 2 + b"\x01\x00\x09\x00" + b"\0" * 20
    info = probe_image(header)
    assert (info.format, info.width, info.height) == ("wmf", 72, 36)  # 1 in x 0.5 in at 72 dpi


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "unrecognized"),
        (b"hello, world", "unrecognized"),
        (b"<html><body>not an image</body></html>", "unrecognized"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0", "corrupt"),
        (b"GIF89a\x01", "corrupt"),
        (make_image("PPM", (4, 4)), "unrecognized"),  # a Pillow format outside the allowlist
        (make_image("PCX", (4, 4)), "unrecognized"),
        (b"<svg><unclosed></svg>", "corrupt"),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><svg></svg></html>', "unrecognized"),
    ],
)
def test_bad_inputs(data: bytes, reason: str) -> None:
    with pytest.raises(ProbeError) as info:
        probe_image(data)
    assert info.value.code == "unsupported_input"
    assert info.value.reason == reason


def test_aspect_ratio_rounding() -> None:
    assert aspect_ratio(1920, 1080) == 1.778
    assert aspect_ratio(0, 10) is None
    assert aspect_ratio(None, 10) is None
