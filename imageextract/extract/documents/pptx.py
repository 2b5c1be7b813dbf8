"""Pictures in a PowerPoint (PPTX) presentation, read straight from the package XML.

Slides come in presentation order (`p:sldIdLst`); `document_slide` is 1-based. On each slide, in back-to-front
order:

1. the background picture fill (`p:bg/p:bgPr/a:blipFill`) of the slide, or, when the slide has no background
   of its own, of its layout, or else of its master;
2. pictures on the slide master, then on the slide layout, that the slide displays: shapes that are not
   placeholders, unless the slide (or, for the master, the layout) sets `showMasterSp="0"`;
3. the slide's own pictures: `p:pic` (also inside group shapes, recursively, and picture placeholders),
   picture fills of shapes, picture bullets, OLE object previews.

Layout and master pictures are reported with every slide that shows them, like a PDF page reports the
images it draws, so `document_occurrence_count` says how many slides show the same logo. SVG pictures
(`asvg:svgBlip`) are reported as the SVG with the PNG fallback noted in `variants`. Alt text comes from
`p:cNvPr/@descr`, the title from `@title`. Linked (external) pictures are not fetched.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from imageextract.extract.documents.ooxml import (
    Package,
    PictureRef,
    child,
    find_pictures,
    ns_attr,
    picture_image,
)
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions

Layer = tuple[str, list[PictureRef]]  # (part the relationship ids belong to, pictures)


def extract_pptx(pkg: Package, main: str, options: ExtractOptions) -> list[ExtractedImage]:
    root = pkg.xml(main)
    rels = pkg.rels(main)
    slides: list[str] = []
    id_list = child(root, "sldIdLst")
    for sld in id_list if id_list is not None else []:
        rel = rels.get(ns_attr(sld, "id") or "")
        if rel is not None and not rel.external and pkg.has(rel.target):
            slides.append(rel.target)
    if len(slides) > options.max_pages:
        raise ExtractError("page_limit_exceeded", f"the presentation has {len(slides)} slides; the limit is {options.max_pages}")
    templates = _Templates(pkg)
    images: list[ExtractedImage] = []
    for number, slide in enumerate(slides, start=1):
        index = 0
        for part, refs in _layers(pkg, slide, templates):
            for ref in refs:
                image = picture_image(
                    pkg, part, ref, options, stem=f"slide-{number}-image-{index + 1}", document_slide=number
                )
                if image is not None:
                    index += 1
                    images.append(image)
    return images


class _Templates:
    """Parsed layouts and masters, shared by the slides that use them."""

    def __init__(self, pkg: Package) -> None:
        self.pkg = pkg
        self.cache: dict[str, tuple[Element, list[PictureRef], list[PictureRef] | None]] = {}

    def get(self, part: str) -> tuple[Element, list[PictureRef], list[PictureRef] | None]:
        if part not in self.cache:
            root = self.pkg.xml(part)
            self.cache[part] = (root, _shapes(root, skip_placeholders=True), _background(root))
        return self.cache[part]


def _layers(pkg: Package, slide: str, templates: _Templates) -> list[Layer]:
    root = pkg.xml(slide)
    layout = _related(pkg, slide, "slideLayout")
    master = _related(pkg, layout, "slideMaster") if layout else None
    layout_data = templates.get(layout) if layout else None
    master_data = templates.get(master) if master else None

    background: Layer | None = None
    own_bg = _background(root)
    if own_bg is not None:
        background = (slide, own_bg)
    elif layout and layout_data and layout_data[2] is not None:
        background = (layout, layout_data[2])
    elif master and master_data and master_data[2] is not None:
        background = (master, master_data[2])

    layers: list[Layer] = [background] if background else []
    if _shows_master(root):
        if master and master_data and (layout_data is None or _shows_master(layout_data[0])):
            layers.append((master, master_data[1]))
        if layout and layout_data:
            layers.append((layout, layout_data[1]))
    layers.append((slide, _shapes(root, skip_placeholders=False)))
    return layers


def _related(pkg: Package, part: str, rel_type: str) -> str | None:
    for rel in pkg.rels(part).values():
        if rel.type == rel_type and not rel.external and pkg.has(rel.target):
            return rel.target
    return None


def _shows_master(root: Element) -> bool:
    return (root.get("showMasterSp") or "1").lower() not in ("0", "false")


def _shapes(root: Element, *, skip_placeholders: bool) -> list[PictureRef]:
    c_sld = child(root, "cSld")
    tree = child(c_sld, "spTree") if c_sld is not None else None
    return find_pictures(tree, skip_placeholders=skip_placeholders) if tree is not None else []


def _background(root: Element) -> list[PictureRef] | None:
    """Pictures of the part's own background, or None when it has no `p:bg` (it inherits one)."""
    c_sld = child(root, "cSld")
    bg = child(c_sld, "bg") if c_sld is not None else None
    if bg is None:
        return None
    return find_pictures(bg)
