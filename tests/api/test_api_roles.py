"""The role matrix: every endpoint × every role (and anonymous) → allowed or refused.

"Allowed" means the request passed authentication and authorisation (any status but 401 and
403: a 404 for a campaign that is not published yet still proves the door was open);
"refused" means 401 for anonymous callers and 403 for signed-in users without the role.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import PASSWORD, Prepared, bearer
from fastapi.testclient import TestClient

ROLES = ("anonymous", "inspector", "regulator", "admin")
EVERYONE = frozenset(ROLES)
SIGNED_IN = frozenset({"inspector", "regulator", "admin"})
REGULATORS = frozenset({"regulator", "admin"})
ADMIN = frozenset({"admin"})
INSPECTOR = frozenset({"inspector"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str]
    body: dict | None = None
    form: dict | None = None


def endpoints(p: Prepared) -> list[Endpoint]:
    campaign = f"/api/campaigns/{p.campaign_id}"
    return [
        Endpoint("GET", "/api/health", EVERYONE),
        Endpoint("GET", "/api/version", EVERYONE),
        Endpoint("POST", "/api/auth/token", EVERYONE,
                 form={"username": "reg", "password": PASSWORD}),
        Endpoint("GET", "/api/me", SIGNED_IN),
        Endpoint("GET", "/api/users", ADMIN),
        Endpoint("POST", "/api/users", ADMIN,
                 body={"username": "x", "role": "nobody", "password": "12345678"}),
        Endpoint("POST", "/api/users/nobody-here/tokens", ADMIN),
        Endpoint("DELETE", "/api/users/nobody-here", ADMIN),
        Endpoint("GET", f"/api/enterprises/{p.on_list}", SIGNED_IN),
        Endpoint("GET", f"/api/enterprises/{p.off_list}", REGULATORS),
        Endpoint("POST", "/api/score", REGULATORS, body={"enterprise": {"uscc": "1"}}),
        Endpoint("GET", "/api/me/list", INSPECTOR),
        Endpoint("GET", f"/api/inspectors/{p.inspector_id}/list", SIGNED_IN),
        Endpoint("GET", f"/api/inspectors/{p.other_inspector_id}/list", REGULATORS),
        Endpoint("GET", "/api/projects", REGULATORS),
        Endpoint("GET", "/api/projects/P-NONE", REGULATORS),
        Endpoint("GET", "/api/campaigns", REGULATORS),
        Endpoint("GET", campaign, REGULATORS),
        Endpoint("GET", f"{campaign}/commitment", REGULATORS),
        Endpoint("GET", f"{campaign}/draw", REGULATORS),
        Endpoint("POST", f"{campaign}/verify", REGULATORS),
        Endpoint("GET", f"{campaign}/assignment", REGULATORS),
        Endpoint("GET", f"{campaign}/results", REGULATORS),
        Endpoint("GET", f"/api/public/campaigns/{p.campaign_id}/publication", EVERYONE),
        Endpoint("GET", f"/api/public/campaigns/{p.campaign_id}/notice", EVERYONE),
        Endpoint("GET", "/api/triggers/cases", REGULATORS),
        Endpoint("GET", "/api/audit/verify", REGULATORS),
        Endpoint("GET", f"/api/audit/replay/{p.on_list}?as_of=2001-01-01", REGULATORS),
        Endpoint("GET", f"/api/audit/entities/{p.on_list}", REGULATORS),
        Endpoint("GET", "/api/models", REGULATORS),
        Endpoint("GET", "/api/models/enterprise-credit-risk/versions/1/card", REGULATORS),
        Endpoint("GET", "/api/monitoring", REGULATORS),
        Endpoint("GET", "/api/fairness", REGULATORS),
        Endpoint("GET", "/api/dashboard", REGULATORS),
    ]


def _call(client: TestClient, endpoint: Endpoint, headers: dict[str, str]) -> int:
    response = client.request(endpoint.method, endpoint.path, headers=headers,
                              json=endpoint.body, data=endpoint.form)
    assert response.status_code < 500, (endpoint.path, response.text)
    return response.status_code


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_allows_exactly_its_roles(client: TestClient, prepared: Prepared,
                                                 role: str) -> None:
    headers = {} if role == "anonymous" else bearer(prepared.tokens[role])
    refused = 401 if role == "anonymous" else 403
    wrong = []
    for endpoint in endpoints(prepared):
        status = _call(client, endpoint, headers)
        expected_allowed = role in endpoint.allowed
        if expected_allowed and status in (401, 403):
            wrong.append(f"{endpoint.method} {endpoint.path}: refused ({status})")
        if not expected_allowed and status != refused:
            wrong.append(f"{endpoint.method} {endpoint.path}: {status}, expected {refused}")
    assert not wrong, "\n".join(wrong)


def test_the_matrix_covers_every_api_route(client: TestClient, prepared: Prepared) -> None:
    """A new endpoint without a row in the matrix fails here."""
    import re

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "*", path.split("?")[0])

    covered = {(e.method, re.sub(r"^/api/(enterprises|inspectors|users|projects|audit/replay|"
                                 r"audit/entities)/[^/]+", lambda m: f"/api/{m.group(1)}/*",
                                 e.path.split("?")[0])) for e in endpoints(prepared)}
    covered = {(m, p.replace(prepared.campaign_id, "*")
                .replace("enterprise-credit-risk/versions/1", "*/versions/*")) for m, p in covered}
    routes = {(method, shape(route.path)) for route in client.app.routes
              if getattr(route, "path", "").startswith("/api/")
              for method in getattr(route, "methods", set()) - {"HEAD"}}
    missing = routes - covered - {("POST", "/api/auth/logout")}  # tested on its own below
    assert not missing, missing


def test_an_inspector_reads_only_firms_on_their_list(client: TestClient,
                                                     prepared: Prepared) -> None:
    own = bearer(prepared.tokens["inspector"])
    assert client.get(f"/api/enterprises/{prepared.on_list}", headers=own).status_code == 200
    refused = client.get(f"/api/enterprises/{prepared.off_list}", headers=own)
    assert refused.status_code == 403
    assert "检查清单" in refused.json()["detail"] and "inspection list" in refused.json()["detail"]


def test_logout_revokes_the_token(client: TestClient, prepared: Prepared) -> None:
    from serving.api.auth import get_user, issue_token
    from serving.store import open_store

    engine = open_store(prepared.settings.database_url)
    token = issue_token(engine, get_user(engine, "reg"))
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
