"""HTML discovery benchmark on pages with real-world CSS weight, and the pages themselves.

`make_pages(total_bytes)` builds pages like saved news, shop and blog pages: 30-60 % of their bytes are
inline `<style>` blocks, 5-30 % inline scripts (a framework's JSON state and a loader), the rest markup with
an image every few kilobytes (an article body and link lists around the image-dense blocks of
`bench.engine_corpus._html_page`), (a framework's critical CSS: hundreds of rules, @media and @supports blocks,
@font-face with several `url()` sources each, sprites and hero backgrounds, `image-set()`, SVG `data:` URIs
with quotes and escapes, licence comments, Tailwind-style escaped selectors, icon-font `content: "\\f101"`),
plus `style=""` attributes and the usual markup (`bench.engine_corpus._html_page`).

`bench_html(pages, quick)` prints discovery MB/s beside two figures measured in the same run on the same pages:

- the anchor, a bare selectolax loop: parse each page's bytes with lexbor (as UTF-8, no decoding, which is
  what our discovery also does with a UTF-8 page), select `img`, and urljoin each `src` against the page URL.
  It is the floor of any lexbor-based discovery (one parse, one selector walk) and finds only plain
  <img src>: no srcset, <picture>, lazy-load attributes, <noscript>, CSS, meta, icons, posters or inline
  SVG, no charset handling;
- the previous discovery (`discover(..., reference=True)`: every node visited, every stylesheet through the
  full tinycss2 tokenizer, every <noscript> fallback parsed alone, srcset one character at a time),

and checks recall: every image the previous discovery finds must be found again.

Only this part of the engine bench: `python -m bench.engine_html [--quick] [--corpus DIR]` (the `.html`
files in DIR instead of the generated pages).
"""

from __future__ import annotations

import random
from urllib.parse import urljoin

from bench.engine import best_of, ratio

PAGE_URL = "https://www.example.com/news/article"


def _css(rng: random.Random, target: int, n: int) -> str:
    parts = [f"/*! Framework v5.{n} | MIT License | https://example.com/license */\n:root{{--bs-blue:#0d6efd;"
             "--bs-font-sans-serif:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial}\n"]
    size = len(parts[0])
    i = 0
    while size < target:
        i += 1
        k = rng.randrange(40)  # one rule in eight carries url() or image-set(): a heavy framework theme
        if k == 0:
            s = (f"@font-face{{font-family:\"Icons{i}\";src:url(/fonts/icons{i}.woff2) format(\"woff2\"),"
                 f"url('/fonts/icons{i}.woff') format('woff');font-display:swap}}\n")
        elif k == 1:
            s = f".hero-{i}{{background-image:url(/img/hero-{i}.jpg);background-size:cover;min-height:{rng.randrange(200, 600)}px}}\n"
        elif k == 2:
            s = (f".logo-{i}{{background:-webkit-image-set(url(/img/logo-{i}.png) 1x,url(/img/logo-{i}@2x.png) 2x);"
                 f"background:image-set(\"/img/logo-{i}.avif\" type(\"image/avif\"),\"/img/logo-{i}.png\" 1x)}}\n")
        elif k == 3:
            s = (".form-select{background-image:url(\"data:image/svg+xml,%3csvg xmlns='http://www.w3.org/2000/svg' "
                 "viewBox='0 0 16 16'%3e%3cpath fill='none' stroke='%23343a40' stroke-linecap='round' "
                 f"d='M2 5l6 6 6-6'/%3e%3c/svg%3e\");background-position:right .75rem center;padding:{i % 9}px}}\n")
        elif k == 4:
            s = f"@media (min-width:{rng.choice((576, 768, 992, 1200))}px){{" + "".join(
                f".col-md-{j}{{flex:0 0 auto;width:{j * 8.333:.4f}%}}" for j in range(1, 7)) + "}\n"
        elif k == 5:
            s = f".md\\:flex-{i}{{display:flex}}.w-1\\/2-{i}{{width:50%}}.hover\\:bg-blue:hover{{background-color:#3b82f6}}\n"
        elif k == 6:
            s = f".icon-{i}:before{{content:\"\\f1{i % 99:02d}\";font-family:Icons;speak:never}}\n"
        elif k == 7:
            s = f"/* section {i}: cards, see https://example.com/docs/cards?x=url(y) */\n"
        elif k == 8:
            s = (f".sprite-{i}{{background:url('/img/sprite.png') -{i * 16}px 0 no-repeat}}"
                 f".sprite-{i}:hover{{background-position:-{i * 16}px -16px}}\n")
        elif k == 9:
            s = f"@supports (display:grid){{.grid-{i}{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr))}}}}\n"
        else:
            s = "".join(f".c{i}-{j}{{color:#{rng.randrange(16**6):06x};margin:{j}px {j * 2}px;line-height:1.{j}}}"
                        for j in range(rng.randrange(3, 12))) + "\n"
        parts.append(s)
        size += len(s)
    return "".join(parts)


def _article(rng: random.Random, target: int) -> str:
    """Text-heavy markup with few images: an article body, related links, a footer menu."""
    from bench.engine_corpus import _WORDS

    parts = ["<article class='story'>"]
    size = 0
    while size < target:
        k = rng.randrange(10)
        if k < 6:
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(40, 120)))
            s = f"<p class='para'>{words} <a href='/tag/{rng.randrange(999)}'>tag</a> <em>{rng.choice(_WORDS)}</em>.</p>"
        elif k < 8:
            s = "<ul class='related'>" + "".join(
                f"<li><a href='/story/{rng.randrange(99999)}' data-track='rel'>{rng.choice(_WORDS).title()} "
                f"{rng.choice(_WORDS)}</a></li>" for _ in range(rng.randrange(4, 12))) + "</ul>"
        elif k < 9:
            s = (f"<blockquote><p>{' '.join(rng.choice(_WORDS) for _ in range(30))}</p><cite>Source</cite></blockquote>"
                 f"<table><tr>{''.join(f'<td>{rng.randrange(999)}</td>' for _ in range(8))}</tr></table>")
        else:
            s = f"<figure><img src='/article/{rng.randrange(99999)}.jpg' alt='Figure' loading='lazy'><figcaption>Fig.</figcaption></figure>"
        parts.append(s)
        size += len(s)
    return "".join(parts) + "</article>"


def make_pages(total_bytes: int, seed: int = 11) -> list[bytes]:
    from bench.engine_corpus import _html_page

    rng = random.Random(seed)
    pages: list[bytes] = []
    size = 0
    while size < total_bytes:
        n = len(pages)
        body = _html_page(rng, rng.randrange(15_000, 50_000), n)
        body = body.replace("</main>", "</main>" + _article(rng, rng.randrange(30_000, 90_000)), 1)
        state = ",".join(f'{{"id":{i},"title":"Item {i}","href":"/p/{n}-{i}","price":{rng.randrange(999)}.99,'
                         f'"tags":["a","b"],"img":{{"src":"/cdn/{n}-{i}.jpg","w":640}}}}' for i in range(rng.randrange(50, 600)))
        body = body.replace("</body>", f"<script id='__STATE__' type='application/json'>{{\"items\":[{state}]}}</script>"
                            "<script>(function(){var a=document.querySelectorAll('.lazy');for(var i=0;i<a.length;i++)"
                            "{a[i].src=a[i].dataset.src}})();</script></body>", 1)
        css = "".join(f"<style id='s{j}'>{_css(rng, rng.randrange(15_000, 80_000), n * 10 + j)}</style>"
                      for j in range(rng.randrange(1, 3)))
        page = body.replace("</head>", css + "</head>", 1).encode()
        pages.append(page)
        size += len(page)
    return pages


def found_urls(pages: list[bytes], *, reference: bool = False) -> list[set[str]]:
    """Image URLs per page: the reference walk on the decoded text, the fast one as the service runs it."""
    from imageextract.extract.discover import decode_html, discover, html_for_parser

    if reference:
        return [{f.url for f in discover(decode_html(raw), PAGE_URL, reference=True).images} for raw in pages]
    return [{f.url for f in discover(html_for_parser(raw), PAGE_URL).images} for raw in pages]


def bench_html(pages: list[bytes] | None, quick: bool, *, label: str) -> None:
    from selectolax.lexbor import LexborHTMLParser

    from imageextract.extract.discover import decode_html, discover, html_for_parser

    if pages is None:
        pages = make_pages(2_000_000 if quick else 6_000_000)
    mb = sum(map(len, pages)) / 1e6
    css_share = sum(sum(len(b.split(b"</style>")[0]) for b in p.split(b"<style")[1:]) for p in pages) / 1e6

    def ours() -> int:  # as the service does it: page bytes (UTF-8 ones straight to the parser) to images
        return sum(len(discover(html_for_parser(raw), PAGE_URL).images) for raw in pages)

    def previous() -> int:
        return sum(len(discover(decode_html(raw), PAGE_URL, reference=True).images) for raw in pages)

    def bare() -> int:
        found = 0
        for raw in pages:
            for node in LexborHTMLParser(raw).css("img"):  # the bytes as UTF-8, no decode
                src = node.attributes.get("src")
                if src:
                    urljoin(PAGE_URL, src)
                    found += 1
        return found

    # Ours and the anchor alternate, best of 9 (7 quick): a quick run is ~20 ms, where one scheduler hiccup on
    # a shared machine moves the figure by 10 %. The previous discovery is 25x slower: best of 2 (3).
    r = best_of({"ours": ours, "bare": bare}, 7 if quick else 9)
    r.update(best_of({"previous": previous}, 2 if quick else 3))
    new, old, b = r["ours"], r["previous"], r["bare"]
    print(f"html corpus: {label}: {len(pages)} pages, {mb:.1f} MB ({css_share:.1f} MB of it inline <style>)")
    print(f"html discovery: {mb / new.wall:.0f} MB/s by wall, {mb / new.cpu:.0f} MB/s by CPU ({new.show()}, {new.result} "
          f"images) | anchor, bare selectolax parse + img[src] + urljoin {mb / b.wall:.0f} MB/s by wall, {mb / b.cpu:.0f} by CPU "
          f"({b.result} images) | {ratio(new, b)} (target >= 100 MB/s: {'met' if mb / new.wall >= 100 else 'MISSED'})")
    print(f"html discovery, previous (every node visited, full tokenizer on every stylesheet): {mb / old.wall:.1f} MB/s "
          f"({old.show()}, {old.result} images) | the new one is {old.wall / new.wall:.1f}x faster by wall, "
          f"{old.cpu / new.cpu:.1f}x by CPU")
    before = found_urls(pages, reference=True)
    after = found_urls(pages)
    lost = sum(len(b - a) for a, b in zip(after, before, strict=True))
    gained = sum(len(a - b) for a, b in zip(after, before, strict=True))
    print(f"html recall: {lost} images the previous discovery found are missing (must be 0); {gained} more found")


def main(argv: list[str]) -> int:
    """`python -m bench.engine_html [--quick] [--corpus DIR]`: just the HTML discovery figures."""
    from pathlib import Path

    quick = "--quick" in argv
    if "--corpus" in argv and argv.index("--corpus") + 1 < len(argv):
        corpus = Path(argv[argv.index("--corpus") + 1])
        pages = [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.suffix.lower() in (".html", ".htm") and p.is_file()]
        if not pages:
            print(f"no .html files in {corpus}")
            return 2
        bench_html(pages, quick, label=str(corpus))
    else:
        bench_html(None, quick, label="generated")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
