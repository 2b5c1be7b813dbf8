"""Large generated PDFs written straight to a file: many distinct JPEGs padded to a chosen size.

`write_image_pdf(path, images=10_000, per_page=20, image_bytes=200_000)` writes a ~2 GB PDF in seconds without
holding it in memory: each image is a small JPEG of its own random pixels (so every image is distinct and
valid) padded to `image_bytes` with JPEG comment segments, stored as a DCTDecode stream. With `flate=True` the
streams are Flate-compressed on top (`[/FlateDecode /DCTDecode]`): the zero padding shrinks ~600x, so a small
file holds a large total of image bytes (a test document that fits an upload limit and still makes holding
every image in memory visible). PyMuPDF's `extract_image` returns the padded JPEG either way.
"""

from __future__ import annotations

import io
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

_COM_MAX = 65533  # payload of one JPEG comment segment (the length field counts itself)


@dataclass(frozen=True)
class Written:
    size: int  # bytes of the PDF file
    images: int
    image_bytes: int  # total bytes of the distinct images (what `extract_image` returns)
    pages: int


def padded_jpeg(rng: random.Random, index: int, size: int, *, width: int = 32, height: int = 24) -> bytes:
    """A valid baseline JPEG of random pixels, padded with comment segments to exactly `size` bytes (or its
    natural size when that is larger). `index` is written into the first comment, so every call differs."""
    from PIL import Image

    im = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    jpeg = buf.getvalue()
    tag = b"imageextract bench image %d" % index
    room = size - len(jpeg) - 4 - len(tag)  # after the tag's segment
    if 0 < room < 4:  # too little for another segment: lengthen the tag instead
        tag, room = tag + b" " * room, 0
    segments = [tag]
    while room >= 4:
        take = min(_COM_MAX, room - 4)
        if 0 < room - 4 - take < 4:  # never leave a remainder too small for a segment
            take -= 4
        segments.append(bytes(take))
        room -= take + 4
    body = b"".join(b"\xff\xfe" + (len(s) + 2).to_bytes(2, "big") + s for s in segments)
    return jpeg[:2] + body + jpeg[2:]


def write_image_pdf(path: Path, *, images: int, per_page: int, image_bytes: int, flate: bool = False,
                    seed: int = 13) -> Written:
    """Write a PDF of `images` distinct JPEGs of `image_bytes` bytes each, `per_page` drawn on each page."""
    rng = random.Random(seed)
    offsets: dict[int, int] = {}
    pages: list[int] = []
    total = 0
    next_num = 3  # 1: the page tree, 2: the catalog (written last)
    with path.open("wb") as fh:
        fh.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

        def put(num: int, body: bytes, stream: bytes | None = None) -> None:
            offsets[num] = fh.tell()
            fh.write(b"%d 0 obj\n" % num)
            if stream is None:
                fh.write(body)
            else:
                fh.write(body[:-2] + b" /Length %d >>\nstream\n" % len(stream))
                fh.write(stream)
                fh.write(b"\nendstream")
            fh.write(b"\nendobj\n")

        for first in range(0, images, per_page):
            names: list[tuple[str, int]] = []
            for i in range(first, min(images, first + per_page)):
                jpeg = padded_jpeg(rng, i, image_bytes)
                total += len(jpeg)
                filters = "[/FlateDecode /DCTDecode]" if flate else "/DCTDecode"
                head = (f"<< /Type /XObject /Subtype /Image /Width 32 /Height 24 /BitsPerComponent 8 "
                        f"/ColorSpace /DeviceRGB /Filter {filters} >>").encode()
                put(next_num, head, zlib.compress(jpeg, 6) if flate else jpeg)
                names.append((f"I{i}", next_num))
                next_num += 1
            draw = b"".join(b"q 24 0 0 18 %d %d cm /%s Do Q\n" % (20 + 28 * (k % 20), 20 + 22 * (k // 20), n.encode())
                            for k, (n, _) in enumerate(names))
            put(next_num, b"<< >>", draw)
            contents = next_num
            xobjects = " ".join(f"/{n} {num} 0 R" for n, num in names)
            put(next_num + 1, (f"<< /Type /Page /Parent 1 0 R /MediaBox [0 0 612 792] /Resources << /XObject "
                               f"<< {xobjects} >> >> /Contents {contents} 0 R >>").encode())
            pages.append(next_num + 1)
            next_num += 2
        put(1, f"<< /Type /Pages /Count {len(pages)} /Kids [{' '.join(f'{p} 0 R' for p in pages)}] >>".encode())
        put(2, b"<< /Type /Catalog /Pages 1 0 R >>")
        xref = fh.tell()
        fh.write(b"xref\n0 %d\n0000000000 65535 f \n" % next_num)
        fh.write(b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, next_num)))
        fh.write(b"trailer\n<< /Size %d /Root 2 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (next_num, xref))
        size = fh.tell()
    return Written(size=size, images=images, image_bytes=total, pages=len(pages))
