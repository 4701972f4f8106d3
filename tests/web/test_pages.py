"""Sign-in, role gates and page helpers, over the app in-process (no browser needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_site import PASSWORD

from serving.api.auth import SESSION_COOKIE
from serving.web.router import level_fills, matrix_cells, paired_reasons


@pytest.fixture(scope="module")
def app_client(prepared: Any) -> Any:
    from serving.api.app import create_app

    with TestClient(create_app(prepared.settings), follow_redirects=False) as client:
        yield client


def _signed_in(client: TestClient, username: str) -> TestClient:
    client.cookies.clear()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.text
    assert SESSION_COOKIE in response.cookies
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    return client


def test_pages_send_a_visitor_without_a_session_to_login_and_back(app_client: TestClient
                                                                  ) -> None:
    app_client.cookies.clear()
    response = app_client.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/dashboard"
    form = app_client.get("/login?next=/dashboard")
    assert 'name="next" value="/dashboard"' in form.text
    signed = app_client.post("/login", data={"username": "reg", "password": PASSWORD,
                                             "next": "/dashboard"})
    assert signed.headers["location"] == "/dashboard"


def test_a_wrong_password_is_refused_with_a_bilingual_message(app_client: TestClient) -> None:
    app_client.cookies.clear()
    response = app_client.post("/login", data={"username": "reg", "password": "nope-nope"})
    assert response.status_code == 401
    assert "用户名或密码错误 / wrong username or password" in response.text
    assert SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil"])
def test_login_never_redirects_off_site(app_client: TestClient, target: str) -> None:
    app_client.cookies.clear()
    response = app_client.post("/login", data={"username": "reg", "password": PASSWORD,
                                               "next": target})
    assert response.headers["location"] == "/"


def test_logout_revokes_the_session(app_client: TestClient) -> None:
    client = _signed_in(app_client, "reg")
    token = client.cookies.get(SESSION_COOKIE)
    page = client.get("/dashboard")
    assert page.status_code == 200
    form_token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert form_token is not None
    assert client.post("/logout").status_code == 403  # no form token: forged from elsewhere
    out = client.post("/logout", data={"csrf": form_token.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token or "")
    assert client.get("/dashboard").status_code == 303  # the old cookie no longer works


def test_verify_without_the_form_token_is_refused(app_client: TestClient, prepared: Any
                                                  ) -> None:
    """A page of another site can make the browser POST with the session cookie (SameSite
    Lax does not stop top-level form posts); the form token it cannot read stops it."""
    client = _signed_in(app_client, "reg")
    campaign = prepared.campaign_id
    refused = client.post(f"/campaigns/{campaign}/verify", data={"csrf": "0" * 64})
    assert refused.status_code == 403 and "表单已过期" in refused.text
    page = client.get(f"/campaigns/{campaign}")
    form_token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert form_token is not None
    verified = client.post(f"/campaigns/{campaign}/verify", data={"csrf": form_token.group(1)})
    assert verified.status_code == 200


@pytest.mark.parametrize("path", ["/dashboard", "/projects/matrix", "/campaigns",
                                  "/projects/matrix/R4/M4"])
def test_an_inspector_gets_a_bilingual_403_page_for_oversight_pages(
        app_client: TestClient, path: str) -> None:
    response = _signed_in(app_client, "insp").get(path)
    assert response.status_code == 403
    assert "无权访问" in response.text and "forbidden" in response.text
    assert response.headers["cache-control"] == "no-store"


def test_an_inspector_cannot_open_another_inspectors_target(app_client: TestClient,
                                                            prepared: Any) -> None:
    client = _signed_in(app_client, "insp")
    assert client.get(f"/enterprises/{prepared.on_list}").status_code == 200
    refused = client.get(f"/enterprises/{prepared.off_list}")
    assert refused.status_code == 403 and "检查清单" in refused.text


def test_unknown_things_get_a_404_page_not_a_traceback(app_client: TestClient) -> None:
    client = _signed_in(app_client, "reg")
    for path in ("/enterprises/91440000XXXXXXXXXX", "/campaigns/no-such-campaign",
                 "/projects/matrix/R9/M1"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "未找到" in response.text and "Traceback" not in response.text


def test_reading_an_enterprise_page_is_recorded_in_the_audit_trail(
        app_client: TestClient, prepared: Any) -> None:
    from serving.audit import records
    from serving.store import open_store

    engine = open_store(prepared.settings.database_url)
    before = len(records(engine, entity=prepared.on_list, limit=1000))
    _signed_in(app_client, "insp").get(f"/enterprises/{prepared.on_list}")
    after = records(engine, entity=prepared.on_list, limit=1000)
    engine.dispose()
    assert len(after) == before + 1
    newest = max(after, key=lambda r: r.seq)
    assert newest.kind == "decision.read" and newest.payload["reader"] == "insp"


def test_paired_reasons_keeps_chinese_and_english_side_by_side() -> None:
    assert paired_reasons("投诉多；成立久", "many complaints；old firm") == [
        ("投诉多", "many complaints"), ("成立久", "old firm")]
    assert paired_reasons("", "") == []
    assert paired_reasons("甲；乙", "only one") == [("甲；乙", "only one")]


def test_matrix_cells_follow_the_policy_table_and_counts() -> None:
    levels = [("red", "红色", "red"), ("orange", "橙色", "orange"), ("sky", "天蓝", "sky")]
    cells = {r: {m: ("red" if r == "R4" else "sky") for m in ("M1", "M2", "M3", "M4")}
             for r in ("R1", "R2", "R3", "R4")}
    grid = matrix_cells(cells, levels, [{"risk_source_grade": "R4", "management_grade": "M2",
                                        "projects": 7}])
    assert [row[0].risk_source_grade for row in grid] == ["R4", "R3", "R2", "R1"]
    assert [c.management_grade for c in grid[0]] == ["M1", "M2", "M3", "M4"]
    assert grid[0][1].projects == 7 and sum(c.projects for row in grid for c in row) == 7
    assert grid[0][0].level_zh == "红色" and grid[3][3].level_en == "sky"
    fills = level_fills(["red", "orange", "sky"])
    assert grid[0][0].fill == fills["red"] and grid[1][0].fill == fills["sky"]
    assert len(set(fills.values())) == 3  # a code that is no colour name still gets its own
