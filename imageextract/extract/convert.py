"""Image conversion for exports: one source image in, web-ready files out (pure: bytes in, bytes out).

- Formats: WebP, AVIF (Pillow's own AVIF plugin, `PIL.features.check("avif")`), JPEG, PNG, and GIF when an
  animated GIF is exported as `original`.
- Presets (`PRESETS`): maximum, very_high, high, medium, low, minimum, each a fixed quality/effort mapping per
  format (`save_options` returns the exact Pillow keyword arguments; the benchmark uses the same function).
- Responsive variants: `full` plus one `<width>w` per breakpoint strictly narrower than the source (never
  upscaled), aspect ratio kept, Lanczos resampling.
- Animated GIF/WebP/AVIF/APNG sources stay animated in WebP, AVIF, PNG (APNG) and GIF; JPEG gets the first frame.
- EXIF orientation is applied to the pixels. `strip_metadata` drops EXIF, XMP and comments; the ICC profile is
  colour, not metadata: a non-sRGB profile (CMYK, wide gamut) is converted to sRGB and the output tagged sRGB,
  an sRGB profile is kept as is.
- Decompression bombs: more than `max_pixels` pixels in a frame (or in all frames of an animation together)
  is refused with `image_too_large` before anything is decoded.

Errors are `ConvertError(code, message)` with codes `unsupported_input`, `image_too_large`,
`conversion_failed`. Runs in the sandbox child (`sandbox.run_convert`) in production.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError

FORMATS = ("webp", "avif", "jpeg", "png", "original")
PRESETS = ("maximum", "very_high", "high", "medium", "low", "minimum")
DEFAULT_BREAKPOINTS = (1920, 1280, 1024, 768, 480)
EXTENSIONS = {"webp": "webp", "avif": "avif", "jpeg": "jpg", "png": "png", "gif": "gif"}
MEDIA_TYPES = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
ANIMATED_FORMATS = frozenset({"webp", "avif", "png", "gif"})
ERROR_CODES = ("unsupported_input", "image_too_large", "conversion_failed")

# Quality / effort per preset and format. PNG is lossless down to `high`, then a palette of N colours.
_JPEG = {"maximum": (95, 0), "very_high": (90, 0), "high": (82, 2), "medium": (75, 2), "low": (60, 2), "minimum": (40, 2)}
_WEBP = {"maximum": (95, 6), "very_high": (90, 5), "high": (82, 4), "medium": (75, 4), "low": (60, 4), "minimum": (40, 4)}
_AVIF = {"maximum": (90, 5), "very_high": (80, 6), "high": (70, 6), "medium": (60, 7), "low": (45, 8), "minimum": (30, 8)}
_PNG: dict[str, tuple[int, int | None]] = {"maximum": (9, None), "very_high": (9, None), "high": (7, None),
                                           "medium": (6, 256), "low": (6, 128), "minimum": (6, 64)}
# Pillow's own name for each source format we keep as is under `original`; anything else becomes PNG.
_ORIGINAL = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "AVIF": "avif", "GIF": "gif"}
_DB_ORIGINAL = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif"}


class ConvertError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code if code in ERROR_CODES else "conversion_failed"
        self.message = message


@dataclass(frozen=True)
class ConvertSpec:
    """What to make of one source. `format` is concrete (webp, avif, jpeg, png, gif): see `output_format`."""

    format: str
    preset: str = "high"
    widths: tuple[int, ...] = ()  # responsive breakpoints; empty: only `full`
    strip_metadata: bool = True
    max_pixels: int = 100_000_000


@dataclass
class Variant:
    name: str  # "full" or "<width>w"
    format: str
    width: int
    height: int
    mode: str
    frames: int
    data: bytes = field(repr=False)

    @property
    def animated(self) -> bool:
        return self.frames > 1


def output_format(target: str, source_format: str | None) -> str:
    """The concrete format for a requested one: `original` keeps JPEG, PNG, WebP, AVIF and GIF; others -> PNG."""
    if target != "original":
        return target
    return _DB_ORIGINAL.get((source_format or "").lower(), "png")


def variant_widths(widths: tuple[int, ...] | list[int], source_width: int) -> list[int]:
    """Breakpoints narrower than the source, widest first (never upscaled, no duplicates)."""
    return sorted({w for w in widths if 0 < w < source_width}, reverse=True)


def save_options(fmt: str, preset: str) -> dict[str, Any]:
    """The Pillow `save` keyword arguments for a format and preset (PNG's palette size excluded)."""
    if fmt == "jpeg":
        quality, subsampling = _JPEG[preset]
        return {"format": "JPEG", "quality": quality, "subsampling": subsampling, "optimize": True, "progressive": True}
    if fmt == "webp":
        quality, method = _WEBP[preset]
        return {"format": "WEBP", "quality": quality, "method": method, "alpha_quality": max(quality, 80)}
    if fmt == "avif":
        quality, speed = _AVIF[preset]
        return {"format": "AVIF", "quality": quality, "speed": speed}
    if fmt == "png":
        level, _ = _PNG[preset]
        return {"format": "PNG", "compress_level": level, "optimize": preset == "maximum"}
    if fmt == "gif":
        return {"format": "GIF", "optimize": True}
    raise ValueError(f"unknown format {fmt!r}")


def png_colours(preset: str) -> int | None:
    return _PNG[preset][1]


def convert(data: bytes, spec: ConvertSpec) -> list[Variant]:
    """Every variant of one source image, `full` first. Raises ConvertError."""
    if spec.format not in EXTENSIONS or spec.preset not in PRESETS:
        raise ConvertError("conversion_failed", f"unsupported target {spec.format}/{spec.preset}")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = spec.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _convert(data, spec)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ConvertError("image_too_large", f"the image has more than {spec.max_pixels:,} pixels") from None
    except ConvertError:
        raise
    except MemoryError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ConvertError("unsupported_input", f"the image could not be decoded: {exc}") from None
    except RuntimeError as exc:  # an encoder out of memory before it allocates in Python
        raise ConvertError("conversion_failed", f"the encoder failed: {exc}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _convert(data: bytes, spec: ConvertSpec) -> list[Variant]:
    source = Image.open(io.BytesIO(data))
    frames_in = int(getattr(source, "n_frames", 1) or 1)
    width, height = source.size
    if width * height * frames_in > spec.max_pixels:
        raise ConvertError("image_too_large", f"{frames_in} frame(s) of {width}x{height} pixels exceed the limit of "
                                              f"{spec.max_pixels:,} decoded pixels")
    animate = frames_in > 1 and spec.format in ANIMATED_FORMATS
    icc = source.info.get("icc_profile")
    meta = _metadata(source, spec)
    frames, durations = _frames(source, animate)
    frames = [_for_target(_to_srgb(f, icc), spec.format) for f in frames]
    icc_out = _output_icc(icc)
    loop = source.info.get("loop", 0)
    full_w, full_h = frames[0].size
    try:
        variants = [_encode("full", frames, durations, loop, spec, icc_out, meta)]
        for w in variant_widths(spec.widths, full_w):
            h = max(1, round(full_h * w / full_w))
            resized = [f.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0) for f in frames]
            variants.append(_encode(f"{w}w", resized, durations, loop, spec, icc_out, meta))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConvertError("conversion_failed", f"the {spec.format} encoder failed: {exc}") from None
    return variants


def _metadata(source: Image.Image, spec: ConvertSpec) -> dict[str, Any]:
    if spec.strip_metadata:
        return {}
    meta: dict[str, Any] = {}
    exif = source.getexif()
    if exif:
        exif.pop(0x0112, None)  # orientation is applied to the pixels
        meta["exif"] = exif.tobytes()
    xmp = source.info.get("xmp")
    if xmp and spec.format in ("jpeg", "webp", "avif", "png"):
        meta["xmp"] = xmp
    return meta


def _frames(source: Image.Image, animate: bool) -> tuple[list[Image.Image], list[int]]:
    if not animate:
        source.seek(0)
        duration = int(source.info.get("duration", 0) or 0)
        if source.getexif().get(0x0112, 1) not in (0, 1):
            return [ImageOps.exif_transpose(source)], [duration]
        source.load()
        return [source], [duration]  # no copy: a 50-megapixel frame is 150 MB
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(source):
        durations.append(int(frame.info.get("duration", 100) or 100))
        frames.append(frame.convert("RGBA"))
    if all(f.getchannel("A").getextrema() == (255, 255) for f in frames):
        frames = [f.convert("RGB") for f in frames]  # no frame uses transparency: do not invent an alpha channel
    return frames, durations


def _has_alpha(im: Image.Image) -> bool:
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return "transparency" in im.info


_SRGB: bytes | None = None


def _srgb_bytes() -> bytes:
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _SRGB


def _is_srgb(icc: bytes) -> bool:
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, TypeError):
        return False
    return bool(re.search(r"s\s*rgb", description, re.IGNORECASE))


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels in sRGB: through the embedded profile when it is not sRGB, else a plain mode conversion."""
    if icc and not _is_srgb(icc) and im.mode in ("RGB", "RGBA", "CMYK"):
        alpha = im.getchannel("A") if im.mode == "RGBA" else None
        try:
            converted = ImageCms.profileToProfile(im.convert("RGB") if alpha is not None else im,
                                                  ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                                  ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile: fall back to the naive conversion
        if converted is not None:
            if alpha is not None:
                converted.putalpha(alpha)
            return converted
    return im.convert("RGB") if im.mode == "CMYK" else im


def _output_icc(icc: bytes | None) -> bytes | None:
    if not icc:
        return None
    return icc if _is_srgb(icc) else _srgb_bytes()


def _for_target(im: Image.Image, fmt: str) -> Image.Image:
    """A mode the target can store: alpha kept where it can be, composited onto white for JPEG."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode == "F":
        im = im.convert("L")
    alpha = _has_alpha(im)
    gray = im.mode in ("L", "LA", "1")
    if fmt == "jpeg":
        if alpha:
            rgba = im.convert("RGBA")
            canvas = Image.new("RGB", rgba.size, (255, 255, 255))
            canvas.paste(rgba, mask=rgba.getchannel("A"))
            return canvas
        return _mode(im, "L" if gray else "RGB")
    if fmt == "png":
        if alpha:
            return _mode(im, "LA" if im.mode in ("L", "LA") else "RGBA")
        return _mode(im, "L" if im.mode in ("L", "1") else "RGB")
    return _mode(im, "RGBA" if alpha else "RGB")  # webp, avif, gif


def _mode(im: Image.Image, mode: str) -> Image.Image:
    return im if im.mode == mode else im.convert(mode)


def _encode(name: str, frames: list[Image.Image], durations: list[int], loop: int, spec: ConvertSpec,
            icc: bytes | None, meta: dict[str, Any]) -> Variant:
    fmt = spec.format
    options = save_options(fmt, spec.preset)
    if icc:
        options["icc_profile"] = icc
    options.update(meta)
    first = frames[0]
    first.info = {}  # nothing from the source rides along unless passed explicitly
    if fmt == "png":
        colours = png_colours(spec.preset)
        if colours is not None:
            frames = [_quantize(f, colours) for f in frames]
            first = frames[0]
    buf = io.BytesIO()
    if len(frames) > 1:
        options.update(save_all=True, append_images=frames[1:], duration=durations, loop=loop)
        if fmt == "gif":
            options["disposal"] = 2
    first.save(buf, **options)
    return Variant(name=name, format=fmt, width=first.width, height=first.height, mode=first.mode,
                   frames=len(frames), data=buf.getvalue())


def _quantize(im: Image.Image, colours: int) -> Image.Image:
    if im.mode in ("RGBA", "LA"):
        return im.convert("RGBA").quantize(colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return im.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)


# Sandbox glue: the child runs `convert_task`, the parent reads its answer with `convert_reply` ---------------

_VARIANT_FIELDS = ("name", "format", "width", "height", "mode", "frames")


def convert_task(data: bytes, spec: ConvertSpec, blobs: list[bytes]) -> dict[str, Any]:
    """Child side: a JSON-able reply with one blob per variant. A bad image is an answer, not a crash."""
    try:
        variants = convert(data, spec)
    except ConvertError as exc:
        return {"ok": True, "error": {"code": exc.code, "message": exc.message}}
    except MemoryError:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        cap = f" ({limit // 2**20} MiB)" if limit > 0 else ""
        return {"ok": True, "recycle": True, "error": {
            "code": "image_too_large", "message": f"the image needs more memory than the converter may use{cap}"}}
    out = []
    for v in variants:
        out.append({**{f: getattr(v, f) for f in _VARIANT_FIELDS}, "blob": len(blobs)})
        blobs.append(v.data)
    return {"ok": True, "variants": out}


def convert_reply(reply: dict[str, Any], blobs: list[bytes]) -> list[Variant]:
    """Parent side: the variants, or the child's ConvertError raised here. The child is not trusted: every
    field is checked, and the bytes are re-read by the caller before anything is stored."""
    error = reply.get("error")
    if error is not None:
        raise ConvertError(str(error.get("code")), str(error.get("message"))[:500])
    try:
        return [Variant(name=str(v["name"]), format=str(v["format"]), width=int(v["width"]),
                        height=int(v["height"]), mode=str(v["mode"]), frames=int(v["frames"]),
                        data=blobs[int(v["blob"])]) for v in reply["variants"]]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConvertError("conversion_failed", f"the converter returned a malformed result: {exc}") from None
