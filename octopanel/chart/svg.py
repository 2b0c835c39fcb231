"""A key chart as SVG: the sheet (title, device, other keys, legend, notes), in mm, to print at actual size."""

import math
import os
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from octopanel.chart import fit as fitting
from octopanel.chart.labels import LEGEND, Entry, element_entries, unplaced
from octopanel.chart.layouts import KEY_PITCH_MM, Element, Layout, grid, in_mm
from octopanel.panel.keymap import Keymap

FONT = "DejaVu Sans Mono, Liberation Mono, monospace"  # fit.MONO_EM is these fonts' advance
MARGIN_MM = 6.0
GAP_MM = 1.5  # between two keycaps, so each can be cut out on its own
PAD_MM = 1.0  # inside a keycap, around its text
LEGEND_MM = 2.4  # the key's own legend ("8 ↑"), top left
TITLE_MM, SMALL_MM = 3.2, 1.9
MIN_WIDTH_MM = 4 * KEY_PITCH_MM
SCALE_MM = 20.0  # a scale bar, to check the print came out at actual size
PREFIX_COLOUR = "#555"


@dataclass
class Chart:
    """The SVG text, its size in mm, the layout used and why, and how many keys refer to a note."""

    svg: str
    width_mm: float
    height_mm: float
    layout: Layout
    why: str
    keys: int = 0
    notes: list[list[Entry]] = field(default_factory=list)


def clean(text: str) -> str:
    """Text as XML 1.0 may carry it: control characters become '?'."""
    return "".join(c if c >= " " or c in "\t" else "?" for c in text)


def num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def text_el(
    x: float, y: float, size: float, line: fitting.Line, cls: str, anchor: str = "start", bold: bool = False
) -> str:
    spans = "".join(
        f"<tspan fill={quoteattr(PREFIX_COLOUR)}>{escape(clean(t))}</tspan>" if is_prefix else escape(clean(t))
        for t, is_prefix in line
    )
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text class="{cls}" x="{num(x)}" y="{num(y)}" font-size="{num(size)}" text-anchor="{anchor}"{weight} '
        f'xml:space="preserve">{spans}</text>'
    )


def lines_el(
    x: float, top: float, size: float, lines: list[fitting.Line], cls: str, anchor: str = "start", bold: bool = False
) -> list[str]:
    """Lines of text from `top` down, one LINE_EM apart; the first baseline leaves room for the ascent."""
    return [
        text_el(x, top + size * (fitting.LINE_EM * i + 0.95), size, line, cls, anchor, bold)
        for i, line in enumerate(lines)
    ]


def legend_lines(legend: str, width: float) -> tuple[float, list[fitting.Line]]:
    """The legend at LEGEND_MM, smaller for a long key name, and cut into lines if still too long."""
    size = max(fitting.MIN_MM, min(LEGEND_MM, width / (max(1, len(legend)) * fitting.MONO_EM)))
    chars = max(1, fitting.max_chars(width, size))
    return size, [[(legend[i : i + chars], False)] for i in range(0, len(legend), chars)]


Box = tuple[float, float, float, float]


def shape_parts(e: Element) -> tuple[list[str], Box, Box, str, list[str]]:
    """An element's outline, its bounding box, its label box, the labels' anchor and the legend's text."""
    if e.shape == "key":
        x, y, w, h = e.x + GAP_MM / 2, e.y + GAP_MM / 2, e.w - GAP_MM, e.h - GAP_MM
        outline = [
            f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" rx="1.5" fill="#fff" '
            'stroke="#000" stroke-width="0.25"/>'
        ]
        size, names = legend_lines(e.legend, w - 2 * PAD_MM)
        legend = lines_el(x + PAD_MM, y + PAD_MM, size, names, "legend", bold=True)
        top = y + PAD_MM + len(names) * size * fitting.LINE_EM
        return outline, (x, y, w, h), (x + PAD_MM, top, w - 2 * PAD_MM, y + h - PAD_MM - top), "start", legend
    cx, cy = e.x + e.w / 2, e.y + e.h / 2
    r = min(e.w, e.h) / 2 - GAP_MM / 2
    outline = [f'<circle cx="{num(cx)}" cy="{num(cy)}" r="{num(r)}" fill="#fff" stroke="#000" stroke-width="0.25"/>']
    if e.shape == "ring":
        hole = e.hole / 2 + GAP_MM / 2
        outline.append(
            f'<circle cx="{num(cx)}" cy="{num(cy)}" r="{num(hole)}" fill="none" stroke="#000" stroke-width="0.25"/>'
        )
        size = LEGEND_MM
        legend = lines_el(cx, cy - (r + hole) / 2 - size / 2, size, [[(e.legend, False)]], "legend", "middle", True)
        top, bottom = cy + hole + PAD_MM, cy + r * 0.86
        half = math.sqrt(r * r - (r * 0.86) ** 2) - PAD_MM
        return outline, (cx - r, cy - r, 2 * r, 2 * r), (cx - half, top, 2 * half, bottom - top), "middle", legend
    side = r * math.sqrt(2) - PAD_MM
    x, y = cx - side / 2, cy - side / 2
    size, names = legend_lines(e.legend, side)
    legend = lines_el(cx, y, size, names, "legend", "middle", True)
    top = y + len(names) * size * fitting.LINE_EM
    return outline, (cx - r, cy - r, 2 * r, 2 * r), (x, top, side, y + side - top), "middle", legend


def element_svg(km: Keymap, e: Element, chart: Chart) -> str:
    entries = element_entries(km, e)
    outline, drawn, (bx, by, bw, bh), anchor, legend = shape_parts(e)
    note_no = len(chart.notes) + 1
    fitted = fitting.fit(entries, bw, bh, f"…note {note_no}")
    extra = ""
    if fitted.shown < len(entries):
        chart.notes.append([Entry("", f"note {note_no} · {e.legend}", ""), *entries])
        extra = f' data-note="{note_no}"'
    x = bx + bw / 2 if anchor == "middle" else bx
    labels = lines_el(x, by, fitted.size, fitted.lines, "label", anchor)
    full = "; ".join(f"{en.prefix} {en.text}".strip() for en in entries) or "nothing bound"
    box = " ".join(num(v) for v in drawn)  # what the outline encloses: text outside it has overflowed
    return (
        f'<g class="{e.shape}" data-codes={quoteattr(" ".join(e.codes))} data-box="{box}"{extra}>'
        f"<title>{escape(clean(e.legend + ': ' + full))}</title>" + "".join(outline + legend + labels) + "</g>"
    )


def block(
    x: float, y: float, width: float, size: float, entries: list[Entry], cls: str, bold: bool = False
) -> tuple[str, float]:
    """Wrapped text as a group with its box; returns (svg, height)."""
    lines = fitting.block_lines(entries, width, size)
    height = len(lines) * size * fitting.LINE_EM
    body = "".join(lines_el(x, y, size, lines, cls, bold=bold))
    return f'<g class="{cls}" data-box="{num(x)} {num(y)} {num(width)} {num(height)}">{body}</g>', height


def modes_text(km: Keymap) -> str:
    parts = [
        f"{name}: {' / '.join(str(v) for v in mode.values)} (starts at {mode.default})"
        for name, mode in km.modes.items()
    ]
    return "modes: " + "; ".join(parts) if parts else ""


def render(km: Keymap, layout: Layout, why: str) -> Chart:
    """The whole sheet for `km` drawn on `layout`; keys the layout lacks go in a grid below it."""
    chart = Chart("", 0, 0, layout, why)
    placed = in_mm(layout)
    width_mm, height_mm = layout.size_mm
    extras = unplaced(km, placed)
    content_w = max(width_mm, MIN_WIDTH_MM)
    body: list[str] = []
    y = MARGIN_MM
    head = [Entry("", "", f"{os.path.basename(km.file)}: {layout.title}")]
    part, h = block(MARGIN_MM, y, content_w, TITLE_MM, head, "title", bold=True)
    body.append(part)
    y += h
    info = [
        Entry("", "", t) for t in (modes_text(km), f"print at actual size (100 %): the bar is {num(SCALE_MM)} mm") if t
    ]
    part, h = block(MARGIN_MM, y, content_w, SMALL_MM, info, "info")
    body.append(part)
    y += h + 0.5
    body.append(scale_bar(MARGIN_MM, y))
    y += 3.5
    elements = [shift(e, MARGIN_MM, y) for e in placed]
    if placed:
        y += height_mm + 2
    if extras:
        if placed:
            part, h = block(MARGIN_MM, y, content_w, SMALL_MM, [Entry("", "", "keys not on this layout:")], "info")
            body.append(part)
            y += h + 1
        cells = grid(extras, width_mm, 0)
        elements += [shift(e, MARGIN_MM, y) for e in cells]
        y += max(e.y + e.h for e in cells) + 2
        content_w = max(content_w, max(e.x + e.w for e in cells))
    body += [element_svg(km, e, chart) for e in elements]
    chart.keys = len(elements)
    notes = [Entry("", "", LEGEND)] + [entry for note in chart.notes for entry in note]
    part, h = block(MARGIN_MM, y, content_w, SMALL_MM, notes, "notes")
    body.append(part)
    y += h
    chart.width_mm, chart.height_mm = fitting.ceil_mm(content_w + 2 * MARGIN_MM), fitting.ceil_mm(y + MARGIN_MM)
    w, hh = num(chart.width_mm), num(chart.height_mm)
    chart.svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{hh}mm" viewBox="0 0 {w} {hh}" '
        f'font-family={quoteattr(FONT)} data-layout="{layout.name}">\n'
        f"<title>{escape(clean(head[0].text))}</title>\n"
        f'<rect class="sheet" width="{w}" height="{hh}" fill="#fff"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
    return chart


def shift(e: Element, dx: float, dy: float) -> Element:
    return Element(e.legend, e.x + dx, e.y + dy, e.w, e.h, e.codes, e.shape, e.hole)


def scale_bar(x: float, y: float) -> str:
    end = x + SCALE_MM
    return (
        f'<g class="scale" data-box="{num(x)} {num(y)} {num(SCALE_MM)} 2">'
        f'<path d="M{num(x)} {num(y)}v2M{num(x)} {num(y + 1)}H{num(end)}M{num(end)} {num(y)}v2" '
        'stroke="#000" stroke-width="0.25" fill="none"/></g>'
    )
