"""Server-side SVG charts: pure functions from numbers and labels to SVG markup.

The pages must work on a tablet with no network and no JavaScript, so charts are inline SVG
strings built here rather than images rendered per request. Every text that reaches the SVG is
XML-escaped; the caller marks the result safe for the template. Colours are presentation
only; the numbers that decide anything (cut-offs, PSI thresholds) are passed in by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

RAISES_COLOUR = "#c0392b"
LOWERS_COLOUR = "#2e86c1"
NEUTRAL_COLOUR = "#7f8c8d"
FLAG_COLOUR = "#e67e22"
ALERT_COLOUR = "#c0392b"
FONT = "font-family=\"'WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif\""


@dataclass(frozen=True)
class WaterfallStep:
    """One bar of a waterfall: a labelled additive contribution (`detail`: a second, smaller
    line under the label, e.g. the English beside the Chinese)."""

    label: str
    amount: float
    detail: str = ""


@dataclass(frozen=True)
class Bar:
    """One bar of a bar chart; `colour` overrides the chart's default fill."""

    label: str
    value: float
    colour: str | None = None
    note: str = ""


def _text(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _number(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if math.isfinite(value) else "—"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _scale(low: float, high: float, left: float, right: float) -> tuple[float, float]:
    """Linear map x -> left + (x - low) * k, padded so equal bounds still draw."""
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    k = (right - left) / (high - low)
    return k, left - low * k


def _svg_open(width: int, height: int, title: str, css_class: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
            f'viewBox="0 0 {width} {height}" width="100%" {FONT} font-size="14">'
            f"<title>{_text(title)}</title>")


def waterfall_svg(
    steps: Sequence[WaterfallStep],
    *,
    start_value: float,
    start_label: str,
    end_label: str,
    title: str,
    width: int = 760,
) -> str:
    """A horizontal SHAP waterfall: from `start_value`, each step moves the running total by
    its amount (red raises risk, blue lowers it), ending at the model output.

    Drawn top to bottom in the order given, with a start row and an end row, so a reader sees
    exactly how the listed reasons add up to the score. Labels sit on their own lines above
    each bar, so long bilingual reasons never collide with the bars on a narrow screen.
    """
    row_height, top, margin = 66, 34, 16
    positions = [start_value]
    for step in steps:
        positions.append(positions[-1] + step.amount)
    end_value = positions[-1]
    k, offset = _scale(min(positions), max(positions), margin + 4, width - 84)

    def x(value: float) -> float:
        return offset + k * value

    rows: list[tuple[WaterfallStep, float, float, str, str]] = [
        (WaterfallStep(start_label, 0.0), start_value, start_value, NEUTRAL_COLOUR,
         _number(start_value))]
    for index, step in enumerate(steps):
        colour = RAISES_COLOUR if step.amount > 0 else LOWERS_COLOUR
        rows.append((step, positions[index], positions[index + 1], colour,
                     _signed(step.amount)))
    rows.append((WaterfallStep(end_label, 0.0), end_value, end_value, "#2c3e50",
                 _number(end_value)))
    height = top + row_height * len(rows) + 10
    parts = [_svg_open(width, height, title, "chart waterfall"),
             f'<text x="8" y="20" font-weight="bold">{_text(title)}</text>']
    for index, (step, begin, finish, colour, value_text) in enumerate(rows):
        y = top + index * row_height
        low, high = sorted((x(begin), x(finish)))
        bar_width = max(high - low, 3.0)
        kind = "step" if 0 < index < len(rows) - 1 else "total"
        detail = (f'<text x="{margin}" y="{y + 32}" font-size="12" fill="#5d6d7e" '
                  f'class="wf-detail">{_text(step.detail)}</text>' if step.detail else "")
        parts.append(
            f'<g class="wf-row wf-{kind}">'
            f'<text x="{margin}" y="{y + 15}" class="wf-label">{_text(step.label)}</text>'
            f"{detail}"
            f'<rect x="{low:.1f}" y="{y + 38}" width="{bar_width:.1f}" height="20" '
            f'fill="{colour}" rx="2"/>'
            f'<text x="{high + 6:.1f}" y="{y + 53}" class="wf-value">{_text(value_text)}</text>'
            "</g>")
    axis_bottom = top + row_height * len(rows)
    for value, style in ((start_value, 'stroke="#95a5a6" stroke-dasharray="4 3"'),
                         (end_value, 'stroke="#2c3e50"')):
        parts.append(f'<line x1="{x(value):.1f}" y1="{top + 34}" x2="{x(value):.1f}" '
                     f'y2="{axis_bottom}" {style}/>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(
    bars: Sequence[Bar],
    *,
    title: str,
    colour: str = "#34495e",
    value_digits: int = 0,
    width: int = 560,
) -> str:
    """Vertical bars with their values on top (e.g. the class distribution)."""
    height, top, bottom = 316, 60, 56
    slot = (width - 40) / max(len(bars), 1)
    peak = max((b.value for b in bars if math.isfinite(b.value)), default=0.0)
    usable = height - top - bottom
    parts = [_svg_open(width, height, title, "chart bars"),
             f'<text x="8" y="22" font-weight="bold" font-size="16">{_text(title)}</text>']
    for index, bar in enumerate(bars):
        share = bar.value / peak if peak > 0 and math.isfinite(bar.value) else 0.0
        bar_height = usable * share
        left = 20 + index * slot + slot * 0.15
        bar_top = top + usable - bar_height
        parts.append(
            f'<g class="bar"><rect x="{left:.1f}" y="{bar_top:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{max(bar_height, 1):.1f}" fill="{_text(bar.colour or colour)}" rx="2"/>'
            f'<text x="{left + slot * 0.35:.1f}" y="{bar_top - 6:.1f}" text-anchor="middle">'
            f"{_text(_number(bar.value, value_digits) if value_digits else f'{bar.value:,.0f}')}"
            f"{_text(bar.note)}</text>"
            f'<text x="{left + slot * 0.35:.1f}" y="{height - bottom + 22}" '
            f'text-anchor="middle" class="bar-label">{_text(bar.label)}</text></g>')
    parts.append(f'<line x1="16" y1="{top + usable}" x2="{width - 16}" y2="{top + usable}" '
                 'stroke="#7f8c8d"/>')
    parts.append("</svg>")
    return "".join(parts)


def threshold_bars_svg(
    bars: Sequence[Bar],
    *,
    title: str,
    flag: float,
    alert: float,
    flag_label: str,
    alert_label: str,
    width: int = 720,
) -> str:
    """Horizontal bars against two thresholds (PSI per feature: flag and alert lines); a bar
    at or over a threshold takes that threshold's colour."""
    row_height, label_width, top = 26, 280, 58
    height = top + row_height * len(bars) + 16
    finite = [b.value for b in bars if math.isfinite(b.value)]
    high = max([*finite, alert * 1.15, 1e-9])
    k, offset = _scale(0.0, high, label_width, width - 70)
    parts = [_svg_open(width, height, title, "chart thresholds"),
             f'<text x="8" y="20" font-weight="bold">{_text(title)}</text>']
    for index, bar in enumerate(bars):
        y = top + index * row_height
        value = bar.value if math.isfinite(bar.value) else 0.0
        fill = (ALERT_COLOUR if value >= alert else FLAG_COLOUR if value >= flag
                else bar.colour or NEUTRAL_COLOUR)
        parts.append(
            f'<g class="psi-row"><text x="8" y="{y + 17}" class="psi-label">'
            f"{_text(bar.label)}</text>"
            f'<rect x="{offset:.1f}" y="{y + 5}" width="{max(k * value, 1):.1f}" height="16" '
            f'fill="{fill}"/><text x="{offset + k * value + 5:.1f}" y="{y + 18}">'
            f"{_text(_number(bar.value, 3))}</text></g>")
    for line, (limit, colour, label) in enumerate(((flag, FLAG_COLOUR, flag_label),
                                                   (alert, ALERT_COLOUR, alert_label))):
        position = offset + k * limit
        parts.append(f'<line x1="{position:.1f}" y1="{top - 16 + 12 * line}" '
                     f'x2="{position:.1f}" y2="{height - 10}" stroke="{colour}" '
                     f'stroke-dasharray="5 3"/><text x="{position + 3:.1f}" '
                     f'y="{top - 18 + 12 * line}" fill="{colour}" font-size="12">'
                     f"{_text(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)
