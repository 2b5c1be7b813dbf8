"""Pictures in a Word (DOCX) document, read straight from the package XML.

Parts, in this order: the main document, then headers, footers, footnotes, endnotes and comments (each in
part-name order). Within a part, pictures come in document order:

- DrawingML pictures, inline (`wp:inline`) and floating (`wp:anchor`), including those inside text boxes,
  picture fills of shapes, and canvases/groups;
- legacy VML pictures (`w:pict/v:shape/v:imagedata`, `w:object` previews);
- `mc:AlternateContent`: the first `mc:Choice` is used and the `mc:Fallback` only when the Choice holds no
  picture, so a picture with a VML fallback is reported once.

A header or footer picture is reported once per header/footer part (a DOCX has no fixed pages, so
`document_page` is not set). Alt text comes from `wp:docPr/@descr` (or the picture's own `pic:cNvPr`, or
VML `@alt`), the title from `@title`. File names are the media names ("image1.png"). Linked pictures are
not fetched.
"""

from __future__ import annotations

import re

from imageextract.extract.documents.ooxml import Package, find_pictures, picture_image
from imageextract.extract.types import ExtractedImage, ExtractOptions

_SECONDARY = ("header", "footer", "footnotes", "endnotes", "comments")


def extract_docx(pkg: Package, main: str, options: ExtractOptions) -> list[ExtractedImage]:
    parts = [main]
    rels = pkg.rels(main)
    for kind in _SECONDARY:
        targets = {r.target for r in rels.values() if r.type == kind and not r.external and pkg.has(r.target)}
        parts.extend(sorted(targets, key=_natural))
    images: list[ExtractedImage] = []
    for part in dict.fromkeys(parts):
        for ref in find_pictures(pkg.xml(part)):
            image = picture_image(pkg, part, ref, options)
            if image is not None:
                images.append(image)
    return images


def _natural(name: str) -> list[object]:
    """header2.xml before header10.xml."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
