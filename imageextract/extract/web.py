"""Web pages: discover every image on a fetched page, fetch and probe each one, and filter by size.

`extract_page(fetcher, page, options)` is the entry point used by the engine: it parses the page
(`discover.discover`), fetches linked same-origin stylesheets (and their same-origin @imports) through the
same SafeFetcher, merges duplicates, then fetches every image concurrently (bounded by
`options.image_fetch_concurrency`) and probes it. An image that cannot be fetched or probed stays in the
result with `error` set ("<code>: <message>"); it never fails the page.
"""

from __future__ import annotations

import asyncio
import logging

from imageextract.extract.discover import (
    Found,
    css_images,
    decode_data_uri,
    discover,
    html_for_parser,
    merge,
    same_origin,
)
from imageextract.extract.fetcher import FetchResult, SafeFetcher
from imageextract.extract.probe import ProbeError, probe_image
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions

log = logging.getLogger(__name__)

MAX_STYLESHEETS = 20
MAX_IMPORT_DEPTH = 3
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
ACCEPT_PAGE = {"Accept": "text/html,application/xhtml+xml;q=0.9,image/*;q=0.8,*/*;q=0.5"}
ACCEPT_IMAGE = {"Accept": "image/avif,image/webp,image/svg+xml,image/*;q=0.9,*/*;q=0.5"}
ACCEPT_CSS = {"Accept": "text/css,*/*;q=0.1"}


async def extract_page(fetcher: SafeFetcher, page: FetchResult, options: ExtractOptions) -> list[ExtractedImage]:
    """All images on `page` (an already fetched HTML document), fetched, probed and filtered."""
    html = html_for_parser(page.content, page.charset)
    found = await discover_page(fetcher, html, page.url)
    found = found[: max(0, options.max_images_per_page)]
    images = await fetch_images(fetcher, found, page_url=page.url, options=options)
    return filter_by_size(images, options)


async def discover_page(fetcher: SafeFetcher | None, html: str | bytes, page_url: str, *, base_url: str | None = None) -> list[Found]:
    """Everything `discover` finds in the HTML (text, or bytes from `html_for_parser`), plus background images
    of linked same-origin stylesheets (fetched through `fetcher`; none without one)."""
    discovery = discover(html, page_url, base_url=base_url)
    if fetcher is None:
        return discovery.images
    found = list(discovery.images)
    pending = list(discovery.stylesheets)
    seen: set[str] = set()
    depth = 0
    while pending and depth < MAX_IMPORT_DEPTH and len(seen) < MAX_STYLESHEETS:
        batch = [u for u in dict.fromkeys(pending) if u not in seen][: MAX_STYLESHEETS - len(seen)]
        seen.update(batch)
        base = 1_000_000 * (depth + 1)  # stylesheet images sort after the page's own, in sheet order
        results = await asyncio.gather(*(_stylesheet(fetcher, u, base + 10_000 * i) for i, u in enumerate(batch)))
        pending = []
        for images, imports in results:
            found.extend(images)
            pending.extend(u for u in imports if same_origin(u, page_url))
        depth += 1
    return merge(sorted(found, key=lambda f: f.order))


async def _stylesheet(fetcher: SafeFetcher, url: str, order_start: int) -> tuple[list[Found], list[str]]:
    try:
        sheet = await fetcher.get(url, max_bytes=fetcher.options.max_page_bytes, headers=ACCEPT_CSS)
    except ExtractError as exc:
        log.info("stylesheet %s skipped: %s", url, exc.message)
        return [], []
    if not sheet.ok or (sheet.content_type and sheet.content_type not in ("text/css", "text/plain")):
        return [], []
    return css_images(sheet.content, sheet.url, charset=sheet.charset, order_start=order_start)


async def fetch_images(
    fetcher: SafeFetcher, found: list[Found], *, page_url: str | None, options: ExtractOptions
) -> list[ExtractedImage]:
    semaphore = asyncio.Semaphore(max(1, options.image_fetch_concurrency))

    async def one(item: Found) -> ExtractedImage:
        image = _image_for(item, page_url)
        try:
            if item.is_remote:
                async with semaphore:
                    response = await fetcher.get(item.url, max_bytes=options.max_image_bytes, headers=ACCEPT_IMAGE)
                if not response.ok:
                    raise ExtractError("fetch_failed", f"HTTP {response.status}")
                data, declared = response.content, response.content_type
            elif item.url.startswith("data:"):
                try:
                    declared, data = decode_data_uri(item.url)
                except ValueError as exc:
                    raise ExtractError("unsupported_input", str(exc)) from None
                if len(data) > options.max_image_bytes:
                    raise ExtractError("fetch_failed", f"data: URI larger than {options.max_image_bytes} bytes")
            elif item.data is not None:
                data, declared = item.data, item.media_type
            else:  # a relative reference on a saved page that has no base URL
                raise ExtractError("unsupported_input", "relative reference and no base URL to resolve it against")
            await probe_into(image, data, declared, options)
        except ExtractError as exc:
            image.error = f"{exc.code}: {exc.message}"
        except Exception as exc:  # one bad image never fails the page
            log.exception("image %s failed", item.url[:200])
            image.error = f"extraction_failed: {type(exc).__name__}: {exc}"
        return image

    return list(await asyncio.gather(*(one(item) for item in found)))


async def probe_into(image: ExtractedImage, data: bytes, declared: str | None, options: ExtractOptions) -> None:
    """Probe `data` and copy what it tells onto `image`; on failure set `error` and keep no bytes."""
    try:
        info = await asyncio.to_thread(probe_image, data, media_type=declared, options=options)
    except ProbeError as exc:
        image.error = f"{exc.code}: {exc.message}"
        image.media_type = image.media_type or declared
        return
    image.data = data
    image.width, image.height = info.width, info.height
    image.aspect_ratio = info.aspect_ratio
    image.format = info.format
    image.color_space = info.color_space
    image.has_alpha = info.has_alpha
    image.media_type = info.media_type


def _image_for(item: Found, page_url: str | None) -> ExtractedImage:
    return ExtractedImage(
        source_url=item.url if item.is_remote else None,
        source_kind="web",
        filename="",
        alt_text=item.alt_text,
        title=item.title,
        aria_label=item.aria_label,
        is_lazy_loaded=item.is_lazy_loaded,
        construct=item.construct,
        page_url=page_url,
        variants=list(item.variants),
        media_type=item.media_type,
    )


def filter_by_size(images: list[ExtractedImage], options: ExtractOptions) -> list[ExtractedImage]:
    """Drop images known to be smaller than min_width x min_height (unknown sizes are kept)."""
    out = []
    for image in images:
        if options.min_width and image.width is not None and image.width < options.min_width:
            continue
        if options.min_height and image.height is not None and image.height < options.min_height:
            continue
        out.append(image)
    return out
