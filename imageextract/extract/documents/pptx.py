"""Pictures in a PowerPoint presentation or template (PPTX, POTX), read straight from the package XML.

Slides come in presentation order (`p:sldIdLst`); `document_slide` is 1-based. On each slide, in back-to-front
order: the slide's own background picture fill (`p:bg/p:bgPr/a:blipFill`), then its pictures: `p:pic` (also
inside group shapes, recursively, and picture placeholders), picture fills of shapes, picture bullets, OLE
object previews. A slide's notes page pictures follow it (construct "notes", the slide's number).

Template pictures are reported once each, after the slides, whether or not a slide shows them (a template deck
with a logo on its master and no slides still has that logo): every slide master (construct "master"), then
its layouts (construct "layout"), then the notes master (construct "notes"), each with its own background
and its shapes that are not placeholders (a placeholder's picture is a prompt, not content). They carry no
`document_slide`.

SVG pictures (`asvg:svgBlip`) are reported as the SVG with the PNG fallback noted in `variants`. Alt text comes
from `p:cNvPr/@descr`, the title from `@title`. Linked (external) pictures are not fetched.
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
    images: list[ExtractedImage] = []

    def add(part: str, refs: list[PictureRef], stem: str, **fields: object) -> None:
        index = 0
        for ref in refs:
            image = picture_image(pkg, part, ref, options, stem=f"{stem}-image-{index + 1}", **fields)
            if image is not None:
                index += 1
                images.append(image)

    masters: list[str] = []
    for number, slide in enumerate(slides, start=1):
        slide_root = pkg.xml(slide)
        add(slide, [*(_background(slide_root) or []), *_shapes(slide_root, skip_placeholders=False)],
            f"slide-{number}", document_slide=number)
        notes = _related(pkg, slide, "notesSlide")
        if notes:
            add(notes, _shapes(pkg.xml(notes), skip_placeholders=True), f"slide-{number}-notes",
                document_slide=number, construct="notes")
        layout = _related(pkg, slide, "slideLayout")
        master = _related(pkg, layout, "slideMaster") if layout else None
        if master and master not in masters:
            masters.append(master)
    for rel in rels.values():  # masters no slide uses (a template) come after those the slides use
        if rel.type == "slideMaster" and not rel.external and pkg.has(rel.target) and rel.target not in masters:
            masters.append(rel.target)
    layouts_seen: set[str] = set()
    for m, master in enumerate(masters, start=1):
        add(master, _template_refs(pkg, master), f"master-{m}", construct="master")
        layouts = [r.target for r in pkg.rels(master).values()
                   if r.type == "slideLayout" and not r.external and pkg.has(r.target)]
        for layout in layouts:
            if layout in layouts_seen:
                continue
            layouts_seen.add(layout)
            add(layout, _template_refs(pkg, layout), f"layout-{len(layouts_seen)}", construct="layout")
    notes_master = _related(pkg, main, "notesMaster")
    if notes_master:
        add(notes_master, _template_refs(pkg, notes_master), "notes-master", construct="notes")
    return images


def _template_refs(pkg: Package, part: str) -> list[PictureRef]:
    root = pkg.xml(part)
    return [*(_background(root) or []), *_shapes(root, skip_placeholders=True)]


def _related(pkg: Package, part: str, rel_type: str) -> str | None:
    for rel in pkg.rels(part).values():
        if rel.type == rel_type and not rel.external and pkg.has(rel.target):
            return rel.target
    return None


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
