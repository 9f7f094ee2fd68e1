"""The sensor report as a one-page PDF (fpdf2): the numbers of cloud/tsdb/reports.py, a temperature chart of the
per-minute means with the allowed band shaded and data gaps marked, and the excursion table. Text is set in a font
that covers Chinese as well as Latin (WenQuanYi Micro Hei, Debian's fonts-wqy-microhei, installed by
deploy/install-system.sh), so a Chinese site, room or customer name appears as written; without it, in the PDF's
core Helvetica with Latin-1 text. The words are the requester's language (cloud/i18n.py catalogues).

The font is parsed once per process (`_font_template`, ~0.2 s for the 5 MB collection) and each document gets
its own copy of fpdf2's font object around a fresh fontTools view of the cached file bytes: what a document
changes (the glyph subset, the widths map, fontTools' tables, which fpdf2 subsets in place on output) is its own,
so documents made at once on several threads never share mutable state (docs/decisions.md)."""

from __future__ import annotations

import copy
import io
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Final

from fontTools import ttLib
from fpdf import FPDF
from fpdf.enums import TextEmphasis, XPos, YPos
from fpdf.fonts import SubsetMap, TTFFont

from cloud import i18n
from cloud.i18n import _
from cloud.tsdb.reports import SensorReport

log = logging.getLogger(__name__)

_CHART_W: Final = 180.0
_CHART_H: Final = 70.0
_MAX_POINTS: Final = 1_500
_BREAK_FACTOR: Final = 3  # a step this many times the usual one is drawn as a hole, not a line
UNICODE_FONTS: Final = (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei
                        Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"))  # fonts-noto-cjk
_FAMILY: Final = "cw-unicode"


def utc_words(ms: int) -> str:
    """A moment in UTC, minutes, in the active language."""
    return i18n.format_utc(ms, seconds=False)


def _axis(ms: int) -> str:
    """A chart axis label, 'MM-DD HH:MM' (UTC) in every language."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M")


def _latin1(text: str) -> str:
    """The PDF's core fonts are Latin-1: anything else becomes '?' rather than an error."""
    return text.replace("\u2212", "-").replace("\u2013", "-").encode("latin-1", "replace").decode("latin-1")


def unicode_font() -> Path | None:
    """The first installed font of UNICODE_FONTS (None: the report falls back to Latin-1)."""
    return next((path for path in UNICODE_FONTS if path.is_file()), None)


_templates: dict[Path, tuple[TTFFont, bytes]] = {}
_templates_lock = threading.Lock()
# TTFFont attributes each document gets afresh (set in _add_cached_font); every other one is read-only once parsed
# (names, metrics, the descriptor, the cmap) and is shared with the template.
_PER_DOCUMENT: Final = frozenset({"i", "fontkey", "emphasis", "ttfont", "cw", "glyph_ids", "missing_glyphs",
                                  "subset", "biggest_size_pt", "_hbfont", "desc"})


def _font_template(path: Path) -> tuple[TTFFont, bytes]:
    """fpdf2's parsed font (on a throwaway document, never output) and the file's bytes, once per process."""
    found = _templates.get(path)
    if found is None:
        with _templates_lock:
            found = _templates.get(path)
            if found is None:
                data = path.read_bytes()
                scratch = FPDF()
                scratch.add_font(_FAMILY, "", str(path), collection_font_number=0)
                parsed = scratch.fonts[_FAMILY]
                assert isinstance(parsed, TTFFont)
                found = _templates[path] = (parsed, data)
                log.info("report font parsed once path=%s bytes=%d", path, len(data))
    return found


def _add_cached_font(pdf: FPDF, style: str, path: Path) -> None:
    """`pdf.add_font(_FAMILY, style, path)` without parsing the font again: a copy of the template whose
    per-document state is new (its own fontTools view of the cached bytes: output subsets it in place)."""
    template, data = _font_template(path)
    if template.color_font is not None or template.is_cff:  # not the kind of font this copy is written for
        pdf.add_font(_FAMILY, style, str(path), collection_font_number=0)
        return
    font = TTFFont.__new__(TTFFont)
    for name in TTFFont.__slots__:
        if name not in _PER_DOCUMENT and hasattr(template, name):  # a slot fpdf2 never set stays unset
            setattr(font, name, getattr(template, name))
    fontkey = f"{_FAMILY}{style}"
    font.i = len(pdf.fonts) + 1
    font.fontkey = fontkey
    font.emphasis = TextEmphasis.coerce(style)
    font.ttfont = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, fontNumber=template.collection_font_number,
                               lazy=True)
    font.cw = copy.copy(template.cw)  # a defaultdict: reading an unknown character adds it
    font.glyph_ids = dict(template.glyph_ids)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    font.desc = copy.copy(template.desc)
    font.subset = SubsetMap(font)
    pdf.fonts[fontkey] = font


class PdfText:
    """The document's font and how its text is written: the Unicode font where installed, else Helvetica with the
    text brought to Latin-1."""

    def __init__(self, pdf: FPDF) -> None:
        self.pdf = pdf
        path = unicode_font()
        self.unicode = path is not None
        self.family = _FAMILY if path is not None else "Helvetica"
        if path is not None:
            _add_cached_font(pdf, "", path)

    def font(self, size: float, *, bold: bool = False) -> None:
        # The Unicode font has no bold face: its headings are set in the regular glyphs, one embedded font (two
        # registered faces would embed, and subset, the same 5 MB font twice).
        self.pdf.set_font(self.family, style="B" if bold and not self.unicode else "", size=size)

    def __call__(self, text: str) -> str:
        return text if self.unicode else _latin1(text)


def fmt_value(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def duration_words(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    if hours:
        return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": f"{rest // 60:02d}"}
    return _("%(n)s min") % {"n": rest // 60}


def _thin(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """At most _MAX_POINTS points, keeping each stride's extreme so peaks survive."""
    if len(points) <= _MAX_POINTS:
        return list(points)
    stride = -(-len(points) // _MAX_POINTS)
    out = []
    for i in range(0, len(points), stride):
        chunk = points[i:i + stride]
        out.append(max(chunk, key=lambda p: abs(p[1] - chunk[0][1])))
    return out


Line = tuple[Sequence[tuple[int, float]], tuple[int, int, int]]  # (ts ms, °C) points and their RGB colour


def draw_chart(pdf: FPDF, t: PdfText, *, start: int, end: int, band: tuple[float | None, float | None] | None,
               lines: Sequence[Line], gaps: Sequence[tuple[int, int]] = (), line_width: float = 0.45,
               height: float = _CHART_H) -> None:
    """A temperature chart over [start, end) at the current position: the band shaded green, `gaps` grey, each
    line broken where its points are further apart than _BREAK_FACTOR times their usual step."""
    x0, y0 = pdf.l_margin, pdf.get_y()
    bounds = [b for b in (band or (None, None)) if b is not None]
    values = [v for points, _ in lines for _, v in points] + bounds
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(0.5, (high - low) * 0.08)
    low, high = low - pad, high + pad
    span_t = max(1, end - start)

    def px(ts: int) -> float:
        return x0 + (ts - start) / span_t * _CHART_W

    def py(v: float) -> float:
        return y0 + height - (v - low) / (high - low) * height

    pdf.set_draw_color(160, 160, 160)
    pdf.set_line_width(0.2)
    pdf.rect(x0, y0, _CHART_W, height)
    if band is not None and bounds:
        band_top = py(min(high, band[1])) if band[1] is not None else y0
        band_bottom = py(max(low, band[0])) if band[0] is not None else y0 + height
        if band_bottom > band_top:
            pdf.set_fill_color(214, 240, 220)
            pdf.rect(x0, band_top, _CHART_W, band_bottom - band_top, style="F")
    pdf.set_fill_color(225, 225, 225)
    for after, before in gaps:
        a, b = px(max(after, start)), px(min(before, end))
        if b > a:
            pdf.rect(a, y0, max(0.4, b - a), height, style="F")
    t.font(7)
    pdf.set_text_color(90, 90, 90)
    for i in range(5):
        v = low + (high - low) * i / 4
        pdf.text(x0 - 9, py(v) + 1, f"{v:.1f}")
    for i in range(5):
        ts = start + span_t * i // 4
        pdf.text(min(px(ts), x0 + _CHART_W - 22), y0 + height + 4, _axis(ts))
    pdf.set_line_width(line_width)
    for points, colour in lines:
        pdf.set_draw_color(*colour)
        thinned = _thin(points)
        steps = sorted(b[0] - a[0] for a, b in pairwise(thinned))
        step = max(60_000, steps[len(steps) // 2]) if steps else 60_000
        run: list[tuple[float, float]] = []
        previous: int | None = None
        for ts, v in thinned:
            if previous is not None and ts - previous > _BREAK_FACTOR * step:
                _draw_run(pdf, run)
                run = []
            run.append((px(ts), py(v)))
            previous = ts
        _draw_run(pdf, run)
    pdf.set_text_color(0, 0, 0)
    pdf.set_y(y0 + height + 7)


def _draw_run(pdf: FPDF, run: list[tuple[float, float]]) -> None:
    if len(run) == 1:
        pdf.circle(run[0][0], run[0][1], 0.5, style="D")
    elif run:
        pdf.polyline(run)


def new_document(title: str) -> tuple[FPDF, PdfText]:
    """An A4 document with our margins, `title` and the active language, one page begun, and its text writer."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    pdf.set_title(title)
    pdf.set_creator("coldwatch")
    pdf.set_lang(i18n.html_lang())
    return pdf, PdfText(pdf)


def table_row(t: PdfText, cells: Sequence[str], widths: Sequence[float], bold: bool = False) -> None:
    t.font(9, bold=bold)
    for text, width in zip(cells, widths, strict=True):
        t.pdf.cell(width, 5.5, t(text), border="B")
    t.pdf.ln(5.5)


def report_pdf(report: SensorReport, *, points: Sequence[tuple[int, float]], gaps: Sequence[tuple[int, int]],
               label: str | None = None, language: str | None = None) -> bytes:
    """The PDF of `report`; `points` are (minute ts, mean °C), `gaps` (after_ts, before_ts) ranges with no data;
    in `language` (a LANGUAGES code; default English)."""
    with i18n.activate(language):
        return _report_pdf(report, points=points, gaps=gaps, label=label)


def _report_pdf(report: SensorReport, *, points: Sequence[tuple[int, float]], gaps: Sequence[tuple[int, int]],
                label: str | None) -> bytes:
    pdf, t = new_document(_("coldwatch sensor report %(sensor)s") % {"sensor": report.sensor})
    t.font(15, bold=True)
    pdf.cell(0, 8, t(_("Sensor report %(sensor)s") % {"sensor": report.sensor} + (f" - {label}" if label else "")),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    t.font(9)
    low = fmt_value(report.band_low_c, " °C", 1) if report.band_low_c is not None else _("no lower limit")
    high = fmt_value(report.band_high_c, " °C", 1) if report.band_high_c is not None else _("no upper limit")
    band = _("no profile") if report.profile is None else f"{report.profile}: {low} .. {high}"
    pdf.cell(0, 5, t(_("%(start)s to %(end)s    band %(band)s") % {"start": utc_words(report.start),
                                                                    "end": utc_words(report.end), "band": band}),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    draw_chart(pdf, t, start=report.start, end=report.end,
               band=None if report.profile is None else (report.band_low_c, report.band_high_c),
               lines=[(points, (26, 95, 180))], gaps=gaps)
    t.font(7)
    pdf.cell(0, 4, t(_("Line: per-minute mean temperature (°C). Green: allowed band. Grey: no data received (gap).")),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    rows = [
        (_("Readings"), str(report.readings)), (_("Missing (from sequence gaps)"), str(report.missing)),
        (_("Completeness"), fmt_value(report.completeness_pct, " %", 2)),
        (_("Min / mean / max"), f"{fmt_value(report.min_c, ' °C')} / {fmt_value(report.mean_c, ' °C')} / "
                                f"{fmt_value(report.max_c, ' °C')}"),
        (_("Mean kinetic temperature"), fmt_value(report.mkt_c, " °C")),
        (_("Time out of band"), duration_words(report.time_out_of_band_s)),
        (_("Excursions"), str(len(report.excursions))),
    ]
    for name, value in rows:
        table_row(t, (name, value), (70, 110))
    pdf.ln(4)
    t.font(11, bold=True)
    pdf.cell(0, 7, t(_("Excursions")), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    widths = (50, 50, 40, 40)
    table_row(t, (_("start"), _("end"), _("peak"), _("duration")), widths, bold=True)
    if not report.excursions:
        table_row(t, (_("none in this range"), "", "", ""), widths)
    for e in report.excursions:
        table_row(t, (utc_words(e.start), utc_words(e.end), fmt_value(e.peak_c, " °C"), duration_words(e.duration_s)),
                  widths)
    return bytes(pdf.output())
