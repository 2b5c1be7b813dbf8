"""Inputs for `bench.engine`, generated at run time (no binary fixtures): PDFs, HTML pages, image files.

Everything is deterministic for a given seed, so two runs measure the same bytes.

PDF assets (what `make_pdf` can put on a page):

- photo: an RGB JPEG at a photo-like size (smooth content, so it compresses like a photograph), unique;
- gray:  a greyscale JPEG (a scan), unique;
- cmyk:  a CMYK JPEG (print-ready PDFs), unique; stored as DCT, ICC-based CMYK;
- alpha: an RGBA PNG, stored by PyMuPDF as a Flate image plus an /SMask, unique;
- flat:  an RGB PNG without alpha (a screenshot or chart), stored as a Flate image, unique;
- logo:  one RGBA PNG (Flate + /SMask) drawn on every page (a repeated asset);
- banner: one RGB JPEG drawn on every page (a repeated asset).
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

import pymupdf
from PIL import Image, ImageDraw

PHOTO_SIZES = ((640, 480), (800, 600), (1024, 768), (480, 360))

# Page layouts, cycled page by page. "mixed" is the headline corpus; the others isolate one kind of asset.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "mixed": (
        ("photo", "photo", "alpha", "logo", "banner"),
        ("photo", "cmyk", "flat", "logo", "banner"),
        ("photo", "gray", "alpha", "logo", "banner"),
        ("photo", "photo", "flat", "logo", "banner"),
    ),
    "rgb-jpeg": (("photo", "photo", "photo", "photo"),),
    "cmyk-jpeg": (("cmyk", "cmyk"),),
    "alpha-png": (("alpha", "alpha", "alpha"),),
    "flate-png": (("flat", "flat", "flat"),),
    "repeated": (("logo", "banner"),),
    # The memory run: three unique images a page (a photo, a PNG with alpha, a CMYK JPEG every fourth page).
    "heavy": (
        ("photo", "alpha", "photo"),
        ("photo", "alpha", "photo"),
        ("photo", "alpha", "photo"),
        ("photo", "alpha", "cmyk"),
    ),
}


def photo_jpeg(rng: random.Random, size: tuple[int, int], mode: str = "RGB", quality: int = 85) -> bytes:
    """A unique photo-like JPEG: random colours at 1/8 scale, upscaled bicubic (smooth, like a photograph)."""
    small = (max(1, size[0] // 8), max(1, size[1] // 8))
    im = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3)).resize(size, Image.Resampling.BICUBIC)
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def alpha_png(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A unique RGBA PNG: smooth colour with a gradient alpha channel (an icon or cut-out)."""
    small = (max(1, size[0] // 16), max(1, size[1] // 16))
    im = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3)).resize(size, Image.Resampling.BILINEAR)
    im = im.convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize(size))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def flat_png(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A unique RGB PNG of flat shapes and lines (a chart or screenshot)."""
    im = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for _ in range(24):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        x1, y1 = x0 + rng.randrange(10, size[0] // 2), y0 + rng.randrange(4, size[1] // 3)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=rng.randrange(1, 4))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def make_pdf(pages: int, seed: int, layout: str = "mixed", *, photo_sizes: Sequence[tuple[int, int]] = PHOTO_SIZES) -> bytes:
    """A PDF of `pages` pages following `LAYOUTS[layout]`; see the module docstring for the assets."""
    rng = random.Random(seed)
    cycle = LAYOUTS[layout]
    doc = pymupdf.open()
    shared: dict[str, int] = {}  # asset kind -> xref of the image drawn on every page
    logo = alpha_png(rng, (96, 96))
    banner = photo_jpeg(rng, (600, 80))
    for pno in range(pages):
        page = doc.new_page(width=612, height=792)
        slots = cycle[pno % len(cycle)]
        for i, kind in enumerate(slots):
            rect = _slot(i, len(slots))
            if kind in ("logo", "banner"):
                xref = shared.get(kind, 0)
                stream = None if xref else (logo if kind == "logo" else banner)
                shared[kind] = page.insert_image(rect, stream=stream, xref=xref)
                continue
            size = photo_sizes[rng.randrange(len(photo_sizes))]
            if kind == "photo":
                data = photo_jpeg(rng, size)
            elif kind == "gray":
                data = photo_jpeg(rng, size, "L")
            elif kind == "cmyk":
                data = photo_jpeg(rng, (size[0] // 2, size[1] // 2), "CMYK")
            elif kind == "alpha":
                data = alpha_png(rng, (size[0] // 4, size[1] // 4))
            elif kind == "flat":
                data = flat_png(rng, (size[0] // 2, size[1] // 2))
            else:
                raise ValueError(f"unknown asset kind {kind!r}")
            page.insert_image(rect, stream=data)
    out = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return out


def _slot(i: int, n: int) -> pymupdf.Rect:
    height = 700 / max(n, 1)
    top = 50 + i * height
    return pymupdf.Rect(56, top, 556, top + height - 8)


# HTML ------------------------------------------------------------------------------------------


def make_html_pages(total_bytes: int, seed: int = 7) -> list[str]:
    """Pages of 40-400 KB (about `total_bytes` in all) with every construct discovery looks at."""
    rng = random.Random(seed)
    pages: list[str] = []
    size = 0
    while size < total_bytes:
        page = _html_page(rng, rng.randrange(40_000, 400_000), len(pages))
        pages.append(page)
        size += len(page.encode())
    return pages


def _html_page(rng: random.Random, target: int, number: int) -> str:
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Article {number}</title><base href='https://www.example.com/news/'>"
        f"<meta property='og:image' content='/social/{number}.jpg'>"
        f"<meta property='og:image:alt' content='Cover of article {number}'>"
        f"<meta name='twitter:image' content='https://cdn.example.com/tw/{number}.jpg'>"
        "<link rel='icon' href='/favicon.ico'><link rel='apple-touch-icon' href='/touch-icon.png'>"
        "<link rel='stylesheet' href='/css/site.css'><link rel='preload' href='/fonts/a.woff2' as='font'>"
        "<style>.hero{background-image:url(/img/hero.jpg)}.card:hover{background:url('/img/card-hover.png') no-repeat}"
        + "".join(f".c{i}{{color:#{i % 999:03d};margin:{i % 7}px}}" for i in range(40))
        + "</style><script>window.dataLayer=[];function track(e){dataLayer.push(e)}</script></head><body>"
        "<header><nav>" + "".join(f"<a href='/section/{i}'>Section {i}</a>" for i in range(12)) + "</nav></header><main>"
    )
    parts = [head]
    size = len(head)
    i = 0
    while size < target:
        i += 1
        kind = rng.randrange(12)
        n = f"{number}-{i}"
        if kind == 0:
            s = f"<figure><img src='/img/{n}.jpg' alt='Photo {n}' width='{rng.randrange(100, 1200)}' height='400'><figcaption>Caption {n}</figcaption></figure>"
        elif kind == 1:
            s = (
                f"<img src='img/{n}-s.jpg' srcset='img/{n}-480.jpg 480w, img/{n}-960.jpg 960w, img/{n}-1920.jpg 1920w' "
                f"sizes='(max-width: 600px) 480px, 960px' alt='Responsive {n}' loading='lazy'>"
            )
        elif kind == 2:
            s = (
                f"<picture><source type='image/avif' srcset='/p/{n}.avif 1x, /p/{n}@2x.avif 2x'>"
                f"<source type='image/webp' srcset='/p/{n}.webp 1x, /p/{n}@2x.webp 2x'>"
                f"<img src='/p/{n}.jpg' alt='Picture {n}' title='Title {n}'></picture>"
            )
        elif kind == 3:
            s = (
                f"<div class='lazy' data-src='/lazy/{n}.jpg' data-srcset='/lazy/{n}-2x.jpg 2x'></div>"
                f"<noscript><img src='/lazy/{n}.jpg' alt='No-JS {n}'></noscript>"
            )
        elif kind == 4:
            s = f"<div class='banner' style=\"background-image: url('/bg/{n}.png'); padding: 4px\"><p>{'Lorem ipsum dolor sit amet. ' * 4}</p></div>"
        elif kind == 5:
            s = f"<video poster='/posters/{n}.jpg' controls><source src='/v/{n}.mp4' type='video/mp4'></video>"
        elif kind == 6 and rng.random() < 0.3:
            s = (
                "<svg xmlns='http://www.w3.org/2000/svg' width='24' height='24' viewBox='0 0 24 24'>"
                f"<path d='M{i % 20} 2L2 22h20z' fill='#{i % 999:03d}'/></svg>"
            )
        elif kind == 7 and rng.random() < 0.2:
            s = "<img src='data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7' alt='pixel'>"
        elif kind == 8:
            s = f"<a href='https://other.example.org/{n}'><img src='https://cdn.example.net/thumbs/{n}.png?w=200&amp;q=80' alt='Thumb {n}' aria-label='Open {n}'></a>"
        else:
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(40, 160)))
            s = f"<section class='c{i % 40}'><h2>Heading {n}</h2><p>{words}</p><p><a href='/x/{n}'>Read more</a></p></section>"
        parts.append(s)
        size += len(s)
    parts.append("</main><footer><p>&copy; Example</p></footer></body></html>")
    return "".join(parts)


_WORDS = (
    "the quick brown fox jumps over lazy dog image extraction engine page document archive report market "
    "river mountain city photo gallery caption article author editor summary figure table chart"
).split()


# Image files for probing -----------------------------------------------------------------------


def make_image_files(count: int, seed: int = 3) -> list[tuple[str, bytes]]:
    """(format label, bytes) for `count` images across the raster formats the probe accepts."""
    rng = random.Random(seed)
    kinds = (
        "jpeg",
        "jpeg-progressive",
        "jpeg-cmyk",
        "jpeg-gray",
        "png-rgba",
        "png-palette",
        "gif-animated",
        "webp",
        "bmp",
        "tiff",
        "ico",
    )
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        w, h = rng.randrange(160, 1600), rng.randrange(120, 1200)
        small = (max(1, w // 16), max(1, h // 16))
        im = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3)).resize((w, h), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        if kind == "jpeg":
            im.save(buf, "JPEG", quality=85)
        elif kind == "jpeg-progressive":
            im.save(buf, "JPEG", quality=80, progressive=True)
        elif kind == "jpeg-cmyk":
            im.convert("CMYK").save(buf, "JPEG", quality=85)
        elif kind == "jpeg-gray":
            im.convert("L").save(buf, "JPEG", quality=85)
        elif kind == "png-rgba":
            im = im.convert("RGBA")
            im.putalpha(Image.linear_gradient("L").resize((w, h)))
            im.save(buf, "PNG", compress_level=1)  # the probe reads headers; level 6 would only slow the set-up
        elif kind == "png-palette":
            im.quantize(64, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", transparency=0, compress_level=1)
        elif kind == "gif-animated":
            small = im.resize((w // 4 or 1, h // 4 or 1))
            frames = [small.quantize(32 - i, method=Image.Quantize.FASTOCTREE) for i in range(3)]
            frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        elif kind == "webp":
            im.save(buf, "WEBP", quality=80)
        elif kind == "bmp":
            im.resize((w // 4 or 1, h // 4 or 1)).save(buf, "BMP")
        elif kind == "tiff":
            im.resize((w // 2 or 1, h // 2 or 1)).save(buf, "TIFF", compression="tiff_deflate")
        else:
            im.save(buf, "ICO", sizes=[(16, 16), (32, 32), (48, 48)])
        out.append((kind, buf.getvalue()))
    return out
