"""One PDF image XObject -> image file bytes that keep its colour space, for what JPEG/JPX storage cannot keep.

`SampleEncoder(fitz, doc).encode(xref, width, height, bpc)` returns file bytes, or None when the image needs
MuPDF's own rendering (a /Decode array, a colour-key /Mask, Separation/DeviceN colour, odd bit depths): the
caller then renders a Pixmap.

- DeviceGray / CalGray / ICCBased with N=1, DeviceRGB / CalRGB / ICCBased with N=3: a PNG of the same bit
  depth (1, 2, 4, 8 or 16 bits) and colour type, the ICC profile carried in an iCCP chunk;
- Indexed over a grey or RGB base (also ICC or CMYK bases, whose palette is converted to RGB): a palette PNG
  (`color_space` "indexed");
- DeviceCMYK / ICCBased with N=4: a CMYK TIFF (Deflate), with the ICC profile;
- Lab: a CIELab TIFF (Deflate);
- stencil masks (`/ImageMask true`, 1 bit): `stencil()` gives a 1-bit grey PNG, black where the mask paints.

Samples come from `Document.xref_stream` (MuPDF undoes every filter except JPX: Flate with predictors, LZW,
RunLength, CCITT, JBIG2, DCT). A Flate stream that already carries PNG row predictors with the same layout is
wrapped as PNG image data as it is: no inflate, no deflate.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from typing import Any

from PIL import Image

PNG_LEVEL = 3  # zlib level for the PNGs we write: close to level 6's size on image data, about twice as fast
_SIG = b"\x89PNG\r\n\x1a\n"
_REF = re.compile(r"^\s*(\d+)\s+0\s+R\s*$")
_TOKEN = re.compile(r"/[^\s/\[\]<>()]+|\d+\s+\d+\s+R|<[0-9A-Fa-f\s]*>|\[|\]|[-+]?\d*\.?\d+|\(|<<|>>")
_GRAY = ("/DeviceGray", "/CalGray", "/G")
_RGB = ("/DeviceRGB", "/CalRGB", "/RGB")
_CMYK = ("/DeviceCMYK", "/CMYK")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_file(width: int, height: int, depth: int, color_type: int, idat: bytes, *, plte: bytes | None = None,
             icc: bytes | None = None) -> bytes:
    """A PNG from compressed, row-filtered image data."""
    parts = [_SIG, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))]
    if icc:
        parts.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if plte is not None:
        parts.append(_chunk(b"PLTE", plte))
    parts += [_chunk(b"IDAT", idat), _chunk(b"IEND", b"")]
    return b"".join(parts)


def filtered_rows(samples: bytes, stride: int, height: int) -> bytes:
    """Filter type 0 (None) before every row, as PNG image data wants."""
    view = memoryview(samples)
    return b"\x00" + b"\x00".join(view[i * stride : (i + 1) * stride] for i in range(height))


class SampleEncoder:
    def __init__(self, fitz: Any, doc: Any) -> None:
        self.fitz = fitz
        self.doc = doc

    # Public ---------------------------------------------------------------------------------------

    def stencil(self, xref: int, width: int, height: int) -> bytes:
        """A stencil mask as a 1-bit PNG: black where it paints (sample 0, or 1 with /Decode [1 0])."""
        stride = (width + 7) // 8
        samples = bytes(self.doc.xref_stream(xref) or b"")
        if len(samples) < stride * height:
            raise ValueError(f"stencil has {len(samples)} bytes of samples, expected {stride * height}")
        samples = samples[: stride * height]
        if self._decode(xref) == ["1", "0"]:
            samples = samples.translate(_INVERT)
        return png_file(width, height, 1, 0, zlib.compress(filtered_rows(samples, stride, height), PNG_LEVEL))

    def encode(self, xref: int, width: int, height: int, bpc: int) -> bytes | None:
        if self._decode(xref) is not None or self.doc.xref_get_key(xref, "Mask")[0] == "array":
            return None  # MuPDF applies /Decode and colour-key masks for us
        family, arg = self._colorspace(xref)
        if family is None:
            return None
        if family == "indexed":
            return self._indexed(xref, width, height, bpc, arg)
        if family in ("gray", "rgb") and bpc in ((1, 2, 4, 8, 16) if family == "gray" else (8, 16)):
            channels = 1 if family == "gray" else 3
            return self._png(xref, width, height, bpc, channels, icc=arg)
        if family in ("cmyk", "lab") and bpc == 8:
            return self._tiff(xref, width, height, family, arg)
        return None

    # Colour spaces ---------------------------------------------------------------------------------

    def _decode(self, xref: int) -> list[str] | None:
        kind, value = self.doc.xref_get_key(xref, "Decode")
        if kind == "null":
            return None
        return value.replace("[", " ").replace("]", " ").split()

    def _resolve(self, kind: str, value: str) -> str:
        if kind == "xref":
            m = _REF.match(value)
            if m:
                return str(self.doc.xref_object(int(m.group(1)), compressed=True))
        return value

    def _colorspace(self, xref: int) -> tuple[str | None, Any]:
        kind, value = self.doc.xref_get_key(xref, "ColorSpace")
        if kind == "null":
            return None, None
        return self._family(_TOKEN.findall(self._resolve(kind, value)))

    def _family(self, tokens: list[str]) -> tuple[str | None, Any]:
        """("gray" | "rgb" | "cmyk" | "lab" | "indexed" | None, ICC profile bytes or the Indexed spec)."""
        if tokens and tokens[0] == "[":
            tokens = tokens[1:-1] if tokens[-1] == "]" else tokens[1:]
        if len(tokens) == 1 and _REF.match(tokens[0]):
            obj = self.doc.xref_object(int(tokens[0].split()[0]), compressed=True)
            return self._family(_TOKEN.findall(obj))
        if not tokens:
            return None, None
        head = tokens[0]
        if head in _GRAY:
            return "gray", None
        if head in _RGB:
            return "rgb", None
        if head in _CMYK:
            return "cmyk", None
        if head == "/Lab":
            return "lab", None
        if head == "/ICCBased" and len(tokens) > 1 and _REF.match(tokens[1]):
            icc = int(tokens[1].split()[0])
            n_kind, n = self.doc.xref_get_key(icc, "N")
            family = {"1": "gray", "3": "rgb", "4": "cmyk"}.get(n if n_kind == "int" else "")
            return family, bytes(self.doc.xref_stream(icc) or b"") or None
        if head in ("/Indexed", "/I"):
            return "indexed", tokens[1:]
        return None, None

    # Writers ---------------------------------------------------------------------------------------

    def _samples(self, xref: int, expected: int) -> bytes | None:
        samples = bytes(self.doc.xref_stream(xref) or b"")
        return samples[:expected] if len(samples) >= expected else None

    def _png(self, xref: int, width: int, height: int, bpc: int, channels: int, *, icc: bytes | None = None,
             plte: bytes | None = None) -> bytes | None:
        stride = (width * channels * bpc + 7) // 8
        color_type = 3 if plte is not None else (0 if channels == 1 else 2)
        wrapped = self._predicted_flate(xref, width, bpc, channels)
        if wrapped is not None:
            return png_file(width, height, bpc, color_type, wrapped, plte=plte, icc=icc)
        samples = self._samples(xref, stride * height)
        if samples is None:
            return None
        idat = zlib.compress(filtered_rows(samples, stride, height), PNG_LEVEL)
        return png_file(width, height, bpc, color_type, idat, plte=plte, icc=icc)

    def _predicted_flate(self, xref: int, width: int, bpc: int, channels: int) -> bytes | None:
        """The raw stream when it is Flate data with PNG predictors matching the image: valid PNG IDAT as is."""
        kind, value = self.doc.xref_get_key(xref, "Filter")
        if value.replace("[", "").replace("]", "").split() != ["/FlateDecode"]:
            return None
        kind, parms = self.doc.xref_get_key(xref, "DecodeParms")
        if kind not in ("dict", "xref"):
            return None
        parms = self._resolve(kind, parms)
        values = dict(re.findall(r"/(Predictor|Colors|BitsPerComponent|Columns)\s*(\d+)", parms))
        if int(values.get("Predictor", 1)) < 10:
            return None
        if (int(values.get("Colors", 1)), int(values.get("BitsPerComponent", 8)), int(values.get("Columns", 1))) != (
            channels, bpc, width):
            return None
        return bytes(self.doc.xref_stream_raw(xref) or b"") or None

    def _indexed(self, xref: int, width: int, height: int, bpc: int, spec: list[str]) -> bytes | None:
        if bpc not in (1, 2, 4, 8) or len(spec) < 3:
            return None
        # spec: base (a name, an array, or a reference), hival, lookup (hex string or stream reference)
        if spec[0] == "[":
            end = spec.index("]")
            base_tokens, rest = spec[: end + 1], spec[end + 1 :]
        else:
            base_tokens, rest = spec[:1], spec[1:]
        if len(rest) < 2:
            return None
        try:
            hival = int(rest[0])
        except ValueError:
            return None
        lookup_token = rest[1]
        if lookup_token.startswith("<"):
            lookup = bytes.fromhex("".join(lookup_token[1:-1].split()))
        elif _REF.match(lookup_token):
            lookup = bytes(self.doc.xref_stream(int(lookup_token.split()[0])) or b"")
        else:
            return None  # a literal string: leave it to MuPDF
        family, _ = self._family(base_tokens)
        n = {"gray": 1, "rgb": 3, "cmyk": 4}.get(family or "")
        count = min(hival + 1, 1 << bpc)
        if n is None or len(lookup) < count * n:
            return None
        lookup = lookup[: count * n]
        if n == 1:
            plte = bytes(b for v in lookup for b in (v, v, v))
        elif n == 4:
            plte = Image.frombytes("CMYK", (count, 1), lookup).convert("RGB").tobytes()
        else:
            plte = lookup
        return self._png(xref, width, height, bpc, 1, plte=plte)

    def _tiff(self, xref: int, width: int, height: int, family: str, icc: bytes | None) -> bytes | None:
        samples = self._samples(xref, width * height * (4 if family == "cmyk" else 3))
        if samples is None:
            return None
        if family == "lab":
            # Pillow's "LAB" raw mode reads a* and b* as signed bytes (it flips their top bit); PDF samples map
            # 0..255 onto /Range. Undo the flip and rescale in one lookup table per channel.
            im = Image.frombytes("LAB", (width, height), samples)
            lo_a, hi_a, lo_b, hi_b = self._lab_range(xref)
            l_, a, b = im.split()
            a = a.point([max(0, min(255, round(lo_a + (v ^ 0x80) * (hi_a - lo_a) / 255 + 128))) for v in range(256)])
            b = b.point([max(0, min(255, round(lo_b + (v ^ 0x80) * (hi_b - lo_b) / 255 + 128))) for v in range(256)])
            im = Image.merge("LAB", (l_, a, b))
        else:
            im = Image.frombytes("CMYK", (width, height), samples)
        buf = io.BytesIO()
        extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
        im.save(buf, "TIFF", compression="tiff_adobe_deflate", **extra)
        return buf.getvalue()

    def _lab_range(self, xref: int) -> tuple[float, float, float, float]:
        kind, value = self.doc.xref_get_key(xref, "ColorSpace")
        text = self._resolve(kind, value)
        m = re.search(r"/Range\s*\[([^\]]*)\]", text)
        if m:
            nums = [float(v) for v in m.group(1).split()]
            if len(nums) == 4:
                return nums[0], nums[1], nums[2], nums[3]
        return -100.0, 100.0, -100.0, 100.0


_INVERT = bytes(255 - i for i in range(256))
