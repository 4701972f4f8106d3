"""The server-side SVG charts: well-formed, escaped, and faithful to the numbers given."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from serving.web.charts import (
    ALERT_COLOUR,
    FLAG_COLOUR,
    LOWERS_COLOUR,
    RAISES_COLOUR,
    Bar,
    WaterfallStep,
    bar_chart_svg,
    threshold_bars_svg,
    waterfall_svg,
)

SVG = "{http://www.w3.org/2000/svg}"


def _parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _rects(root: ET.Element, group_class: str) -> list[ET.Element]:
    return [g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")  # type: ignore[misc]
            if group_class in g.get("class", "").split()]


def test_waterfall_bars_add_up_from_the_start_to_the_model_output() -> None:
    steps = [WaterfallStep("近一年投诉 3 次", 0.8, "3 complaints in a year"),
             WaterfallStep("成立 12 年", -0.3, "12 years old")]
    svg = waterfall_svg(steps, start_value=-1.0, start_label="基准 / base",
                        end_label="模型输出 / output", title="为何 / why")
    root = _parsed(svg)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "近一年投诉 3 次" in texts and "3 complaints in a year" in texts
    assert "+0.800" in texts and "-0.300" in texts and "-0.5" in texts  # -1 + 0.8 - 0.3
    bars = _rects(root, "wf-step")
    assert [b.get("fill") for b in bars] == [RAISES_COLOUR, LOWERS_COLOUR]
    first, second = (float(b.get("width", 0)) for b in bars)
    assert first > second  # widths are proportional to |amount|
    assert abs(first / second - 0.8 / 0.3) < 0.05
    # the second bar starts where the first ended (running total)
    assert abs(float(bars[1].get("x", 0)) + second - (float(bars[0].get("x", 0)) + first)) < 0.2


def test_chart_text_is_escaped_so_a_name_cannot_inject_markup() -> None:
    svg = waterfall_svg([WaterfallStep('<script>alert("x")</script> & co', 0.2)],
                        start_value=0.0, start_label="a", end_label="b", title="t")
    assert "<script>" not in svg
    assert _parsed(svg) is not None  # still well-formed XML


def test_bar_chart_heights_follow_the_counts() -> None:
    svg = bar_chart_svg([Bar("A", 100, "#0f0"), Bar("B", 50), Bar("D", 0)], title="分布")
    rects = _rects(_parsed(svg), "bar")
    heights = [float(r.get("height", 0)) for r in rects]
    assert abs(heights[0] / heights[1] - 2.0) < 0.01
    assert heights[2] <= 1.0
    assert rects[0].get("fill") == "#0f0"
    assert re.search(r">100<", svg) and re.search(r">50<", svg)


def test_threshold_bars_take_the_colour_of_the_threshold_they_cross() -> None:
    svg = threshold_bars_svg([Bar("stable", 0.02), Bar("shifted", 0.12), Bar("broken", 0.4)],
                             title="PSI", flag=0.1, alert=0.25, flag_label="关注 / flag 0.1",
                             alert_label="警报 / alert 0.25")
    fills = [r.get("fill") for r in _rects(_parsed(svg), "psi-row")]
    assert fills[1:] == [FLAG_COLOUR, ALERT_COLOUR]
    assert fills[0] not in (FLAG_COLOUR, ALERT_COLOUR)
    assert "警报 / alert 0.25" in svg
