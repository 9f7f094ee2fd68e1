"""The shipment record as a PDF (fpdf2): route and goods, the journey's chart for all its sensors against the band,
the totals (time out of range, MKT, completeness), one row per sensor, the excursions, the gaps and the alerts with
their resolution. Text in the same CJK-covering font as the sensor report (cloud/report_pdf.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from cloud import i18n
from cloud.i18n import _
from cloud.report_pdf import PdfText, draw_chart, duration_words, fmt_value, new_document, table_row, utc_words
from cloud.services.shipment_record import ShipmentRecord
from cloud.ui.wording import kind_title, resolution_word, word

_CHART_H: Final = 75.0
# line colours for the sensors (cycled), distinguishable in print
_COLOURS: Final = ((26, 95, 180), (200, 80, 20), (30, 140, 60), (150, 40, 160), (120, 90, 30), (0, 130, 140),
                   (220, 40, 90), (90, 90, 90))


def _legend(pdf: FPDF, t: PdfText, record: ShipmentRecord) -> None:
    t.font(7)
    for n, part in enumerate(record.sensors):
        pdf.set_fill_color(*_COLOURS[n % len(_COLOURS)])
        pdf.rect(pdf.get_x(), pdf.get_y() + 1.2, 3, 1.6, style="F")
        pdf.set_x(pdf.get_x() + 4)
        name = part.sensor + (f" {part.label}" if part.label else "")
        pdf.cell(min(85.0, pdf.get_string_width(t(name)) + 6), 4, t(name))
        if n % 2 == 1:
            pdf.ln(4)
    pdf.ln(5)


def _heading(t: PdfText, text: str) -> None:
    t.pdf.ln(3)
    t.font(11, bold=True)
    t.pdf.cell(0, 7, t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _table(t: PdfText, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float],
           empty: str) -> None:
    table_row(t, header, widths, bold=True)
    if not rows:
        table_row(t, (empty, *[""] * (len(widths) - 1)), widths)
    for row in rows:
        table_row(t, row, widths)


def shipment_pdf(record: ShipmentRecord, *, public_key_url: str | None = None, language: str | None = None) -> bytes:
    """The record's PDF in `language` (a LANGUAGES code; default English); `public_key_url` (where the records key
    is published) is printed for the receiver."""
    with i18n.activate(language):
        return _shipment_pdf(record, public_key_url)


def _shipment_pdf(record: ShipmentRecord, public_key_url: str | None) -> bytes:
    s = record.shipment
    pdf, t = new_document(_("coldwatch shipment record %(ref)s") % {"ref": s.reference})
    t.font(15, bold=True)
    pdf.cell(0, 8, t(_("Shipment record %(ref)s") % {"ref": s.reference}), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    t.font(9)
    band = record.band
    if band is None:
        band_text = _("no band")
    else:
        low = fmt_value(band.low_c, " °C", 1) if band.low_c is not None else _("no lower limit")
        high = fmt_value(band.high_c, " °C", 1) if band.high_c is not None else _("no upper limit")
        whose = _("the shipment's own limits") if s.temp_low_c is not None or s.temp_high_c is not None \
            else (s.profile or "")
        band_text = f"{low} .. {high} ({whose})"
    lines = (_("%(origin)s -> %(destination)s    customer %(customer)s    goods %(goods)s") % {
                 "origin": s.origin or "?", "destination": s.destination or "?", "customer": s.customer or "-",
                 "goods": s.product or "-"},
             _("%(start)s to %(end)s    state %(state)s    band %(band)s") % {
                 "start": utc_words(record.start), "end": utc_words(record.end), "state": word(s.state),
                 "band": band_text})
    for line in lines:
        pdf.cell(0, 5, t(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    draw_chart(pdf, t, start=record.start, end=record.end,
               band=(band.low_c, band.high_c) if band is not None else None,
               lines=[(p.points, _COLOURS[n % len(_COLOURS)]) for n, p in enumerate(record.sensors)],
               line_width=0.35, height=_CHART_H)
    _legend(pdf, t, record)
    rows = [(_("Sensors / gateways"), f"{len(record.sensors)} / {len(record.gateways)}"),
            (_("Readings"), str(record.readings)), (_("Missing (gaps and silence)"), str(record.missing)),
            (_("Completeness"), fmt_value(record.completeness_pct, " %", 2)),
            (_("Min / max"), f"{fmt_value(record.min_c, ' °C')} / {fmt_value(record.max_c, ' °C')}"),
            (_("Mean kinetic temperature (warmest sensor)"), fmt_value(record.mkt_c, " °C")),
            (_("Time out of range"), duration_words(record.time_out_of_band_s)),
            (_("Excursions / alerts"), f"{record.excursions} / {len(record.alerts)}")]
    for name, value in rows:
        table_row(t, (name, value), (80, 100))
    _heading(t, _("Sensors"))
    _table(t, (_("sensor"), _("readings"), _("complete"), _("min / max"), "MKT", _("out of range")),
           [(p.sensor + (f" {p.label}" if p.label else ""), str(p.report.readings),
             fmt_value(p.report.completeness_pct, " %", 1),
             f"{fmt_value(p.report.min_c, '', 1)} / {fmt_value(p.report.max_c, '', 1)}",
             fmt_value(p.report.mkt_c, " °C", 1), duration_words(p.report.time_out_of_band_s))
            for p in record.sensors],
           (58, 22, 22, 30, 22, 26), _("no sensor assigned"))
    _heading(t, _("Excursions"))
    _table(t, (_("sensor"), _("start"), _("end"), _("peak"), _("duration")),
           [(p.sensor, utc_words(e.start), utc_words(e.end), fmt_value(e.peak_c, " °C"), duration_words(e.duration_s))
            for p in record.sensors for e in p.report.excursions], (40, 45, 45, 25, 25), _("none"))
    _heading(t, _("Gaps (no data received)"))
    _table(t, (_("sensor"), _("after"), _("before")),
           [(p.sensor, utc_words(a), utc_words(b)) for p in record.sensors for a, b in p.gaps], (50, 65, 65),
           _("none"))
    _heading(t, _("Alerts"))
    _table(t, (_("started"), _("sensor"), _("what"), _("resolution")),
           [(utc_words(a.started_at), a.sensor_id or a.gateway_id, kind_title(a.kind),
             word(a.status) + (f": {resolution_word(a.resolution)}" if a.resolution else "")) for a in record.alerts],
           (40, 40, 55, 45), _("none"))
    pdf.ln(4)
    t.font(7)
    note = _("Generated %(at)s by coldwatch. This file is signed with Ed25519 (detached signature, .sig).") % {
        "at": utc_words(record.generated_at)}
    if public_key_url:
        note += " " + _("The public key: %(url)s") % {"url": public_key_url}
    pdf.multi_cell(0, 3.5, t(note))
    return bytes(pdf.output())
