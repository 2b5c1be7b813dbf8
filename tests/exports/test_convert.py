"""The conversion engine: every output decoded and checked (format, size, mode, alpha, frames), quality
against the source (SSIM), metadata, bomb limits, and a 50-megapixel source inside the sandbox's memory cap."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage.metrics import structural_similarity

from imageextract.config import Settings
from imageextract.extract.convert import (
    FORMATS,
    PRESETS,
    ConvertError,
    ConvertSpec,
    convert,
    output_format,
)
from tests.exports.helpers import SKIMAGE_DATA, animated_gif, decode, logo_png, photo_jpeg

# `high` WebP and AVIF of a photo must keep at least this structural similarity to the decoded source JPEG.
SSIM_FLOOR = 0.95
PIL_FORMAT = {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG", "gif": "GIF"}
ALPHA_FORMATS = {"webp", "avif", "png", "gif"}


def _png(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def _jpeg(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _sources() -> dict[str, tuple[bytes, str, bool, int]]:
    """name -> (bytes, source format, has alpha, frames)."""
    palette = Image.new("P", (90, 60), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(0, (0, 0, 30, 60))
    return {
        "photo": (photo_jpeg(), "jpeg", False, 1),
        "logo": (logo_png(), "png", True, 1),
        "animated": (animated_gif(), "gif", False, 6),
        "gray": (_png(Image.open(SKIMAGE_DATA / "camera.png").convert("L")), "png", False, 1),
        "cmyk": (_jpeg(Image.open(SKIMAGE_DATA / "chelsea.png").convert("CMYK")), "jpeg", False, 1),
        "palette_transparent": (_png(palette, transparency=0), "png", True, 1),
        "sixteen_bit": (_png(Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))), "png", False, 1),
    }


SOURCES = _sources()


def _check(variant_data: bytes, fmt: str, size: tuple[int, int], alpha: bool, frames: int) -> Image.Image:
    im = decode(variant_data)
    assert im.format == PIL_FORMAT[fmt]
    assert im.size == size
    keeps_alpha = alpha and fmt in ALPHA_FORMATS
    if fmt == "jpeg":
        assert im.mode in ("RGB", "L")
    elif fmt in ("webp", "avif"):
        assert im.mode == ("RGBA" if keeps_alpha else "RGB")
    if keeps_alpha:
        rgba = im.convert("RGBA")
        assert rgba.getchannel("A").getextrema()[0] == 0, "transparent pixels stay transparent"
    else:
        assert "A" not in im.mode and "transparency" not in im.info
    want_frames = frames if fmt in ("webp", "avif", "png", "gif") else 1
    assert getattr(im, "n_frames", 1) == want_frames
    return im


@pytest.mark.parametrize("target", FORMATS)
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_in_every_format(name: str, target: str) -> None:
    data, source_format, alpha, frames = SOURCES[name]
    source = Image.open(io.BytesIO(data))
    fmt = output_format(target, source_format)
    variants = convert(data, ConvertSpec(format=fmt, preset="high", widths=(64, 50, 5000)))
    assert [v.name for v in variants] == ["full"] + [f"{w}w" for w in (64, 50) if w < source.width]
    for v in variants:
        w = source.width if v.name == "full" else int(v.name[:-1])
        h = source.height if v.name == "full" else max(1, round(source.height * w / source.width))
        _check(v.data, fmt, (w, h), alpha, frames)
        assert (v.width, v.height, v.format) == (w, h, fmt)


@pytest.mark.parametrize("fmt", ["webp", "avif", "jpeg", "png"])
@pytest.mark.parametrize("name", ["photo", "logo"])
def test_every_preset_decodes_and_lower_presets_are_smaller(name: str, fmt: str) -> None:
    data, _, alpha, frames = SOURCES[name]
    size = Image.open(io.BytesIO(data)).size
    sizes = []
    for preset in PRESETS:
        [v] = convert(data, ConvertSpec(format=fmt, preset=preset))
        im = _check(v.data, fmt, size, alpha, frames)
        if fmt == "png" and preset in ("medium", "low", "minimum"):
            assert im.mode == "P", "lossy PNG presets use a palette"
        sizes.append(len(v.data))
    table = dict(zip(PRESETS, sizes, strict=True))
    if name != "photo":
        return  # a flat graphic is tiny at every preset: sizes say nothing there
    if fmt == "png":  # lossless down to `high` (only the effort differs), then ever fewer colours
        assert min(sizes[:3]) > sizes[3] >= sizes[4] >= sizes[5], table
    else:
        assert sizes == sorted(sizes, reverse=True) and sizes[0] > 1.5 * sizes[-1], table


@pytest.mark.parametrize("fmt", ["webp", "avif"])
@pytest.mark.parametrize("photo", ["astronaut.png", "coffee.png", "chelsea.png"])
def test_high_webp_and_avif_of_a_photo_are_smaller_and_similar(photo: str, fmt: str) -> None:
    source = photo_jpeg(photo, quality=92)
    [v] = convert(source, ConvertSpec(format=fmt, preset="high"))
    reference = np.asarray(decode(source).convert("RGB"))
    output = np.asarray(decode(v.data).convert("RGB"))
    ssim = structural_similarity(reference, output, channel_axis=2, data_range=255)
    assert len(v.data) < len(source), (len(v.data), len(source))
    assert ssim >= SSIM_FLOOR, ssim


def test_metadata_stripped_or_kept_and_orientation_applied() -> None:
    im = Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB")  # 451 x 300
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "CameraMaker"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = _jpeg(im, exif=exif.tobytes(), icc_profile=srgb)
    for fmt in ("jpeg", "webp", "png", "avif"):
        [stripped] = convert(data, ConvertSpec(format=fmt, strip_metadata=True))
        out = decode(stripped.data)
        assert out.size == (300, 451), "orientation applied to the pixels"
        assert not out.getexif().get(0x010F), f"{fmt}: EXIF stripped"
        assert out.info.get("icc_profile") == srgb, f"{fmt}: the sRGB profile is colour, and kept"
        [kept] = convert(data, ConvertSpec(format=fmt, strip_metadata=False))
        out = decode(kept.data)
        assert out.getexif().get(0x010F) == "CameraMaker", f"{fmt}: EXIF kept on request"
        assert out.getexif().get(0x0112) in (None, 1), "orientation is not applied twice"


def test_cmyk_becomes_rgb_with_the_same_look() -> None:
    data = SOURCES["cmyk"][0]
    [v] = convert(data, ConvertSpec(format="webp", preset="maximum"))
    ref = np.asarray(decode(data).convert("RGB"))
    out = np.asarray(decode(v.data))
    assert out.shape == ref.shape and structural_similarity(ref, out, channel_axis=2, data_range=255) > 0.95


def test_bombs_and_garbage_are_refused_with_codes() -> None:
    data = _png(Image.new("1", (5000, 4000)))  # 20 megapixels in a few kilobytes
    with pytest.raises(ConvertError) as caught:
        convert(data, ConvertSpec(format="webp", max_pixels=10_000_000))
    assert caught.value.code == "image_too_large"
    with pytest.raises(ConvertError) as caught:
        convert(animated_gif(frames=6, size=(100, 100)), ConvertSpec(format="webp", max_pixels=50_000))
    assert caught.value.code == "image_too_large", "all frames of an animation count"
    for garbage in (b"", b"not an image", photo_jpeg()[:2000]):
        with pytest.raises(ConvertError) as caught:
            convert(garbage, ConvertSpec(format="png"))
        assert caught.value.code == "unsupported_input"


@pytest.mark.timeout(240)
def test_fifty_megapixels_convert_inside_the_workers_memory_cap() -> None:
    from imageextract.extract.sandbox import run_convert
    from imageextract.services.exports import conversion_options

    settings = Settings()
    options = conversion_options(settings)
    assert options.sandbox and options.sandbox_memory_bytes == settings.export_memory_mb * 2**20
    big = Image.open(SKIMAGE_DATA / "astronaut.png").convert("RGB").resize((8660, 5774))
    data = _jpeg(big, quality=85)
    del big
    for fmt in ("webp", "avif"):
        started = time.monotonic()
        variants = run_convert(data, spec=ConvertSpec(format=fmt, widths=(1920,), max_pixels=settings.export_max_pixels),
                               options=options)
        assert [(v.name, v.width, v.height) for v in variants] == [("full", 8660, 5774), ("1920w", 1920, 1280)]
        assert decode(variants[1].data).size == (1920, 1280)
        assert time.monotonic() - started < 120
    # The same image under a cap too small for it fails cleanly (no crash of the caller, a stable code).
    small_cap = settings.model_copy(update={"export_memory_mb": 700})
    with pytest.raises(ConvertError) as caught:
        run_convert(data, spec=ConvertSpec(format="webp"), options=conversion_options(small_cap))
    assert caught.value.code in ("image_too_large", "conversion_failed")
