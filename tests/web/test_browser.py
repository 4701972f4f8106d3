"""The pages in headless Debian chromium at tablet width, as inspectors and regulators use them.

Each test signs in through the login form (the session cookie is the only credential), walks
the page a user would, asserts what the user relies on, and saves a screenshot (refreshing
docs/screenshots/ when RISKMATRIX_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import re
from typing import Any

from web_site import Site, screenshot, sign_in


def test_inspector_signs_in_and_sees_their_ranked_list(site: Site, tablet: Any) -> None:
    page = tablet
    page.goto(f"{site.url}/")
    assert "/login" in page.url  # not signed in: sent to the login form first
    sign_in(page, site, "insp")
    assert page.url.rstrip("/") == site.url
    assert "我的检查清单" in page.inner_text("h1")
    ranks = [int(r) for r in page.locator("table.ranked tbody tr td:first-child").all_inner_texts()]
    assert ranks and ranks[0] == 1
    codes = page.locator("table.ranked tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.uscc)")
    assert site.home.on_list in codes
    first_row = page.locator("table.ranked tbody tr").first.inner_text()
    assert re.search(r"\b[ABCD]\b", first_row)  # the class badge
    assert re.search(r"0\.\d{3}", first_row)  # the probability
    assert page.locator("ul.reasons li").count() > 0  # top reasons, zh / en
    screenshot(page, "inspector-list")


def test_inspector_opens_an_enterprise_and_sees_its_shap_waterfall(site: Site,
                                                                   tablet: Any) -> None:
    page = tablet
    sign_in(page, site, "insp")
    page.click(f"table.ranked a[href='/enterprises/{site.home.on_list}']")
    page.wait_for_url(f"**/enterprises/{site.home.on_list}")
    chart = page.locator("svg.waterfall")
    assert chart.count() == 1 and chart.is_visible()
    reasons = page.locator("#reasons ol.reasons li").all_inner_texts()
    assert reasons
    labels = page.locator("svg.waterfall .wf-step .wf-label").all_text_contents()
    details = page.locator("svg.waterfall .wf-step .wf-detail").all_text_contents()
    # one bar per stored reason, labelled with the same bilingual text as the list below it
    assert len(labels) == len(details) == len(reasons)
    for label, detail, reason in zip(labels, details, reasons, strict=True):
        assert label in reason and detail in reason
    assert page.locator("svg.waterfall .wf-step rect").count() == len(reasons)
    facts = page.inner_text("main")
    for expected in ("输入哈希 / input hash", "模型 / model", "策略 / policy", "分类历史"):
        assert expected in facts
    assert page.locator("#history tbody tr").count() >= 1
    screenshot(page, "enterprise", full_page=True)


def test_inspector_is_refused_an_enterprise_off_their_list_and_the_dashboard(
        site: Site, tablet: Any) -> None:
    page = tablet
    sign_in(page, site, "insp")
    response = page.goto(f"{site.url}/enterprises/{site.home.off_list}")
    assert response is not None and response.status == 403
    assert "不在您的检查清单上" in page.inner_text("main")
    response = page.goto(f"{site.url}/dashboard")
    assert response is not None and response.status == 403
    text = page.inner_text("main")
    assert "无权访问" in text and "forbidden" in text
    assert page.locator("svg").count() == 0  # nothing of the dashboard leaks


def test_regulator_verifies_a_campaign_draw(site: Site, tablet: Any) -> None:
    page = tablet
    sign_in(page, site, "reg")
    page.goto(f"{site.url}/campaigns")
    page.click(f"a[href='/campaigns/{site.home.campaign_id}']")
    digest = page.inner_text("#commitment-digest")
    assert re.fullmatch(r"[0-9a-f]{64}", digest.strip())
    assert page.inner_text("#seed").strip()
    assert page.locator("#drawn tbody tr").count() > 0
    page.click("#verify")
    page.wait_for_selector("#verification")
    verdict = page.locator("#verification")
    assert "验证通过" in verdict.inner_text() and "ok" in (verdict.get_attribute("class") or "")
    assert page.inner_text("#commitment-digest").strip() == digest.strip()
    screenshot(page, "campaign-verify")


def test_regulator_reads_the_dashboard_and_drills_into_the_matrix(site: Site,
                                                                  tablet: Any) -> None:
    page = tablet
    sign_in(page, site, "reg")
    assert page.url.endswith("/dashboard")  # a regulator starts on the dashboard
    bars = page.locator("#distribution svg .bar")
    assert bars.count() >= 2
    assert 0 < page.locator("#drift svg .psi-row").count() <= 1 + max(
        15, int(page.get_attribute("#drift", "data-flagged") or 0))
    assert page.locator("#fairness tbody tr").count() > 0
    assert "enterprise-credit-risk" in page.inner_text("#models")
    assert "新增 / new" in page.inner_text("main")
    screenshot(page, "dashboard")

    page.goto(f"{site.url}/projects/matrix")
    cells = page.locator("table.matrix td.cell")
    assert cells.count() == 16
    counts = [int(t.split()[0]) for t in cells.all_inner_texts()]
    assert sum(counts) > 0
    busiest = page.locator("table.matrix td.cell").nth(counts.index(max(counts)))
    cell = busiest.get_attribute("data-cell") or ""
    busiest.locator("a").click()
    page.wait_for_url(f"**/projects/matrix/{cell.replace('-', '/')}*")
    listed = page.locator("#projects tbody tr")
    assert listed.count() == max(counts)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "project-matrix", full_page=True)
    listed.first.locator("a").click()
    page.wait_for_url(re.compile(r".*/projects/[^/]+$"))
    text = page.inner_text("main")
    for expected in ("风险源等级", "管理等级", "矩阵单元格", "检查间隔", "下次检查"):
        assert expected in text
