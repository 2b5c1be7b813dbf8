"""A varied PDF corpus, generated deterministically: different producers, structures and image encodings.

`make_corpus(count, seed)` returns `count` (name, bytes) pairs cycling through three producers:

- `raw`: PDFs written byte by byte here (no PDF library), the way many producers do it: image XObjects with
  Flate (with and without PNG predictors), DCT (RGB, grey, Adobe CMYK), JPX, CCITT G4 (a scanned page,
  as a 1-bit grey image or a stencil /ImageMask), 1-bit Flate stencils, DeviceGray, DeviceCMYK, Indexed
  (8- and 4-bit palettes), Lab, ICCBased RGB, soft masks (/SMask) and stencil masks (/Mask), inline images,
  images shared by every page (one xref drawn on many pages), shared resource dictionaries, object streams
  off; a classic xref table, sometimes an incremental update.
- `pymupdf`: `bench.engine_corpus.make_pdf` documents (PyMuPDF's insert_image: JPEGs as stored, PNGs
  re-encoded as Flate + /SMask), compressed with object streams on some.
- `pillow`: Pillow's PDF writer (multi-page scans: RGB and grey JPEG pages, 1-bit CCITT pages, palette pages).

The module also gives `RawPdf`, the writer, and single-image helpers the tests use (`single_image_pdf`).
There is no JBIG2 encoder here: the 1-bit scanned pages use CCITT G4 and Flate, which MuPDF decodes the same
way (a stencil or a 1-bit grey image, full page).
"""

from __future__ import annotations

import io
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageCms, ImageDraw


@dataclass
class RawPdf:
    """A minimal PDF writer: numbered objects, pages with XObjects, a classic xref table."""

    producer: str = "ImageExtract raw writer"
    objects: list[bytes | None] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)

    def reserve(self) -> int:
        self.objects.append(None)
        return len(self.objects)

    def put(self, num: int, body: bytes, stream: bytes | None = None) -> int:
        if stream is not None:
            body = body.rstrip()
            assert body.endswith(b">>")
            body = body[:-2] + b" /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        self.objects[num - 1] = body
        return num

    def add(self, body: str | bytes, stream: bytes | None = None) -> int:
        return self.put(self.reserve(), body.encode("latin-1") if isinstance(body, str) else body, stream)

    def image(self, width: int, height: int, stream: bytes, *, cs: str = "/DeviceRGB", bpc: int = 8, extra: str = "") -> int:
        head = f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /BitsPerComponent {bpc} "
        head += (f"/ColorSpace {cs} " if cs else "") + extra + " >>"
        return self.add(head, stream)

    def page(self, content: bytes, xobjects: dict[str, int], *, resources: int | None = None) -> int:
        contents = self.add("<< /Filter /FlateDecode >>", zlib.compress(content))
        if resources is None:
            xo = " ".join(f"/{k} {v} 0 R" for k, v in xobjects.items())
            res = f"<< /XObject << {xo} >> /ProcSet [/PDF /ImageB /ImageC /ImageI] >>"
        else:
            res = f"{resources} 0 R"
        num = self.add(f"<< /Type /Page /Parent PAGES /MediaBox [0 0 612 792] /Resources {res} /Contents {contents} 0 R >>")
        self.pages.append(num)
        return num

    def tobytes(self) -> bytes:
        pages_num = self.reserve()
        kids = " ".join(f"{p} 0 R" for p in self.pages)
        self.put(pages_num, f"<< /Type /Pages /Kids [{kids}] /Count {len(self.pages)} >>".encode())
        for p in self.pages:
            self.objects[p - 1] = (self.objects[p - 1] or b"").replace(b"/Parent PAGES", b"/Parent %d 0 R" % pages_num)
        catalog = self.add(f"<< /Type /Catalog /Pages {pages_num} 0 R >>")
        info = self.add(f"<< /Producer ({self.producer}) >>")
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + (body or b"null") + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
        out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(self.objects) + 1, catalog, info, xref)
        return bytes(out)


def draw(name: str, x: float, y: float, w: float, h: float) -> bytes:
    return f"q {w:.2f} 0 0 {h:.2f} {x:.2f} {y:.2f} cm /{name} Do Q\n".encode()


# Pixels ------------------------------------------------------------------------------------------


def smooth(rng: random.Random, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Photo-like content: random colours at 1/8 scale, upscaled."""
    small = (max(1, size[0] // 8), max(1, size[1] // 8))
    im = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3)).resize(size, Image.Resampling.BICUBIC)
    return im if mode == "RGB" else im.convert(mode)


def scan(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A 1-bit 'scanned page': lines of black 'text' on white."""
    im = Image.new("1", size, 1)
    d = ImageDraw.Draw(im)
    for y in range(20, size[1] - 20, 14):
        x = 20
        while x < size[0] - 40:
            w = rng.randrange(8, 40)
            d.rectangle((x, y, x + w, y + 7), fill=0)
            x += w + rng.randrange(4, 10)
    return im


def encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_predicted(samples: bytes, width: int, colors: int, bpc: int = 8) -> bytes:
    """Flate data with PNG 'Up' predictors on every row, as /DecodeParms << /Predictor 12 >> expects."""
    row = (width * colors * bpc + 7) // 8
    out = bytearray()
    prev = bytes(row)
    for i in range(0, len(samples), row):
        cur = samples[i : i + row]
        out.append(2)
        out += bytes((c - p) & 0xFF for c, p in zip(cur, prev, strict=True))
        prev = cur
    return zlib.compress(bytes(out))


def ccitt_g4(im: Image.Image) -> bytes:
    """The CCITT G4 strip of a 1-bit image (Pillow's libtiff encoder), for /CCITTFaxDecode /K -1."""
    from PIL import TiffImagePlugin

    data = encoded(im, "TIFF", compression="group4", strip_size=1 << 30)  # one strip: one G4 stream
    with Image.open(io.BytesIO(data)) as tif:
        assert isinstance(tif, TiffImagePlugin.TiffImageFile)
        offset, length = tif.tag_v2[273][0], tif.tag_v2[279][0]
    return data[offset : offset + length]


_SRGB_ICC: bytes | None = None


def srgb_icc() -> bytes:
    global _SRGB_ICC
    if _SRGB_ICC is None:
        _SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _SRGB_ICC


# Image XObjects by kind -------------------------------------------------------------------------

KINDS = (
    "dct-rgb", "dct-gray", "dct-cmyk", "flate-rgb", "flate-rgb-predictor", "flate-gray", "flate-cmyk",
    "indexed-8", "indexed-4", "lab", "icc-rgb", "jpx", "smask", "stencil-masked", "ccitt-gray", "stencil-ccitt",
    "stencil-flate",
)


def add_image(pdf: RawPdf, kind: str, rng: random.Random, size: tuple[int, int]) -> int:
    """One image XObject of `kind` (see KINDS) with unique content; returns its object number."""
    w, h = size
    if kind == "dct-rgb":
        return pdf.image(w, h, encoded(smooth(rng, size), "JPEG", quality=85), extra="/Filter /DCTDecode")
    if kind == "dct-gray":
        return pdf.image(w, h, encoded(smooth(rng, size, "L"), "JPEG", quality=85), cs="/DeviceGray", extra="/Filter /DCTDecode")
    if kind == "dct-cmyk":  # Pillow writes Adobe (inverted) CMYK JPEGs, which PDFs compensate with /Decode
        data = encoded(smooth(rng, size, "CMYK"), "JPEG", quality=85)
        return pdf.image(w, h, data, cs="/DeviceCMYK", extra="/Filter /DCTDecode /Decode [1 0 1 0 1 0 1 0]")
    if kind == "flate-rgb":
        return pdf.image(w, h, zlib.compress(smooth(rng, size).tobytes()), extra="/Filter /FlateDecode")
    if kind == "flate-rgb-predictor":
        stream = png_predicted(smooth(rng, size).tobytes(), w, 3)
        return pdf.image(w, h, stream, extra=f"/Filter /FlateDecode /DecodeParms << /Predictor 12 /Colors 3 /Columns {w} >>")
    if kind == "flate-gray":
        return pdf.image(w, h, zlib.compress(smooth(rng, size, "L").tobytes()), cs="/DeviceGray", extra="/Filter /FlateDecode")
    if kind == "flate-cmyk":
        return pdf.image(w, h, zlib.compress(smooth(rng, size, "CMYK").tobytes()), cs="/DeviceCMYK", extra="/Filter /FlateDecode")
    if kind in ("indexed-8", "indexed-4"):
        colours = 256 if kind == "indexed-8" else 16
        im = smooth(rng, size).quantize(colours, method=Image.Quantize.FASTOCTREE)
        palette = (im.getpalette() or [])[: colours * 3]
        palette += [0] * (colours * 3 - len(palette))
        bpc = 8 if colours == 256 else 4
        samples = im.tobytes() if bpc == 8 else _pack4(im.tobytes(), w)
        cs = f"[/Indexed /DeviceRGB {colours - 1} <{bytes(palette).hex()}>]"
        return pdf.image(w, h, zlib.compress(samples), cs=cs, bpc=bpc, extra="/Filter /FlateDecode")
    if kind == "lab":
        samples = _lab_samples(smooth(rng, size))
        cs = "[/Lab << /WhitePoint [0.9505 1 1.089] /Range [-128 127 -128 127] >>]"
        return pdf.image(w, h, zlib.compress(samples), cs=cs, extra="/Filter /FlateDecode")
    if kind == "icc-rgb":
        icc = pdf.add("<< /N 3 /Alternate /DeviceRGB /Filter /FlateDecode >>", zlib.compress(srgb_icc()))
        return pdf.image(w, h, zlib.compress(smooth(rng, size).tobytes()), cs=f"[/ICCBased {icc} 0 R]", extra="/Filter /FlateDecode")
    if kind == "jpx":
        data = encoded(smooth(rng, size), "JPEG2000", quality_mode="rates", quality_layers=[20])
        return pdf.image(w, h, data, cs="", extra="/Filter /JPXDecode")
    if kind == "smask":
        alpha = Image.linear_gradient("L").resize(size)
        mask = pdf.image(w, h, zlib.compress(alpha.tobytes()), cs="/DeviceGray", extra="/Filter /FlateDecode")
        return pdf.image(w, h, zlib.compress(smooth(rng, size).tobytes()), extra=f"/Filter /FlateDecode /SMask {mask} 0 R")
    if kind == "stencil-masked":
        stencil = scan(rng, size)
        mask = pdf.image(w, h, zlib.compress(stencil.tobytes()), cs="", bpc=1, extra="/ImageMask true /Filter /FlateDecode")
        return pdf.image(w, h, zlib.compress(smooth(rng, size).tobytes()), extra=f"/Filter /FlateDecode /Mask {mask} 0 R")
    if kind == "ccitt-gray":
        data = ccitt_g4(scan(rng, size))
        parms = f"/DecodeParms << /K -1 /Columns {w} /Rows {h} /BlackIs1 false >>"
        return pdf.image(w, h, data, cs="/DeviceGray", bpc=1, extra=f"/Filter /CCITTFaxDecode {parms}")
    if kind == "stencil-ccitt":
        data = ccitt_g4(scan(rng, size))
        parms = f"/DecodeParms << /K -1 /Columns {w} /Rows {h} >>"
        return pdf.image(w, h, data, cs="", bpc=1, extra=f"/ImageMask true /Decode [1 0] /Filter /CCITTFaxDecode {parms}")
    if kind == "stencil-flate":
        return pdf.image(w, h, zlib.compress(scan(rng, size).tobytes()), cs="", bpc=1, extra="/ImageMask true /Filter /FlateDecode")
    raise ValueError(f"unknown image kind {kind!r}")


def _pack4(indices: bytes, width: int) -> bytes:
    out = bytearray()
    for y in range(0, len(indices), width):
        row = indices[y : y + width] + (b"\x00" if width % 2 else b"")
        out += bytes((row[i] << 4) | row[i + 1] for i in range(0, len(row), 2))
    return bytes(out)


def _lab_samples(im: Image.Image) -> bytes:
    lab = ImageCms.applyTransform(im, ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"))
    assert lab is not None
    return lab.tobytes()


def single_image_pdf(kind: str, size: tuple[int, int] = (48, 32), seed: int = 1) -> bytes:
    """A one-page raw PDF drawing one image of `kind` (tests)."""
    rng = random.Random(seed)
    pdf = RawPdf()
    xref = add_image(pdf, kind, rng, size)
    pdf.page(draw("Im1", 50, 50, 300, 200), {"Im1": xref})
    return pdf.tobytes()


# Documents --------------------------------------------------------------------------------------


def raw_document(seed: int) -> bytes:
    """2-12 pages of a random mix of KINDS, a logo shared by every page, sometimes a shared resource
    dictionary, inline images and a full-page scan."""
    rng = random.Random(seed)
    pdf = RawPdf(producer=rng.choice(("Acrobat Distiller 9.0", "Ghostscript 9.55", "ScanSoft", "LibreOffice 7.6")))
    pages = rng.randrange(2, 13)
    kinds = rng.sample(KINDS, rng.randrange(3, 7))
    logo = add_image(pdf, rng.choice(("smask", "dct-rgb", "indexed-8")), rng, (96, 64))
    shared_res = rng.random() < 0.3
    all_images: dict[str, int] = {"Logo": logo}
    plans = []
    for p in range(pages):
        names = {"Logo": logo}
        content = bytearray(draw("Logo", 20, 740, 60, 40))
        if rng.random() < 0.2:  # a scanned page: one full-page 1-bit image
            kind = rng.choice(("ccitt-gray", "stencil-ccitt", "stencil-flate"))
            xref = add_image(pdf, kind, rng, (rng.choice((816, 1224)), 1056))
            names[f"Scan{p}"] = xref
            content += (b"0 0 0.5 rg " if kind.startswith("stencil") else b"") + draw(f"Scan{p}", 0, 0, 612, 792)
        else:
            for i in range(rng.randrange(1, 4)):
                kind = rng.choice(kinds)
                size = rng.choice(((640, 480), (400, 300), (320, 240), (200, 150)))
                xref = add_image(pdf, kind, rng, size)
                names[f"Im{p}_{i}"] = xref
                content += draw(f"Im{p}_{i}", 60, 80 + 200 * i, 400, 180)
            if rng.random() < 0.15:
                content += b"q 40 0 0 30 500 20 cm BI /W 4 /H 3 /CS /RGB /BPC 8 /F /AHx ID " + (b"ff0000" * 12) + b"> EI Q\n"
        all_images.update(names)
        plans.append((bytes(content), names))
    res = None
    if shared_res:  # one /Resources dictionary for every page (a common producer shortcut)
        xo = " ".join(f"/{k} {v} 0 R" for k, v in all_images.items())
        res = pdf.add(f"<< /XObject << {xo} >> >>")
    for content, names in plans:
        pdf.page(content, names, resources=res)
    data = pdf.tobytes()
    if rng.random() < 0.2:  # an incremental update appended (a signed or edited file)
        data += b"\n% incremental update\n"
    return data


def pillow_document(seed: int) -> bytes:
    """A multi-page scan written by Pillow's PDF plugin: RGB/grey JPEG, 1-bit CCITT and palette pages."""
    rng = random.Random(seed)
    frames = []
    for _ in range(rng.randrange(1, 7)):
        mode = rng.choice(("RGB", "L", "1", "P", "CMYK"))
        size = rng.choice(((850, 1100), (620, 877), (400, 520)))
        if mode == "1":
            frames.append(scan(rng, size))
        elif mode == "P":
            frames.append(smooth(rng, size).quantize(64, method=Image.Quantize.FASTOCTREE))
        else:
            frames.append(smooth(rng, size, mode))
    return encoded(frames[0], "PDF", save_all=True, append_images=frames[1:], resolution=100.0)


def pymupdf_document(seed: int) -> bytes:
    from bench.engine_corpus import LAYOUTS, make_pdf

    rng = random.Random(seed)
    layout = rng.choice([k for k in LAYOUTS if k != "heavy"])
    data = make_pdf(rng.randrange(2, 9), seed, layout, photo_sizes=((480, 360), (320, 240), (640, 480)))
    if rng.random() < 0.5:  # object streams and a compressed xref: another structure
        import pymupdf

        with pymupdf.open(stream=data, filetype="pdf") as doc:
            data = doc.tobytes(garbage=1, deflate=True, use_objstms=1)
    return data


PRODUCERS = ("raw", "pymupdf", "pillow")


def make_corpus(count: int = 120, seed: int = 2026, producers: Sequence[str] = PRODUCERS) -> list[tuple[str, bytes]]:
    """`count` PDFs, producers in turn; deterministic for a given seed."""
    out = []
    for i in range(count):
        producer = producers[i % len(producers)]
        s = seed * 1000 + i
        data = {"raw": raw_document, "pymupdf": pymupdf_document, "pillow": pillow_document}[producer](s)
        out.append((f"{producer}-{i:03d}.pdf", data))
    return out
