"""What callers rely on when they read decisions: the published values, the reasons, the
read trail in the audit chain, the inspector's ranked list, replay and campaign checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Prepared, bearer
from fastapi.testclient import TestClient

from serving.audit import records, verify_chain
from serving.store import enterprise_score, open_store


@pytest.fixture(scope="module")
def regulator(prepared: Prepared) -> dict[str, str]:
    return bearer(prepared.tokens["regulator"])


def test_health_and_version_are_public_and_name_the_published_run(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["latest_run_id"] is not None
    version = client.get("/api/version").json()
    assert version["model_name"] == "enterprise-credit-risk" and version["policy_version"]
    assert client.get("/docs").status_code == 200
    assert "/api/score" in client.get("/openapi.json").json()["paths"]


def test_enterprise_decision_is_the_published_one_and_the_read_is_audited(
        client: TestClient, prepared: Prepared, regulator: dict[str, str]) -> None:
    engine = open_store(prepared.settings.database_url)
    stored = enterprise_score(engine, prepared.off_list)
    before = len(records(engine, entity=prepared.off_list, limit=1000))
    body = client.get(f"/api/enterprises/{prepared.off_list}", headers=regulator).json()
    assert body["risk_class"] == stored["class"]
    assert body["probability"] == pytest.approx(stored["probability"])
    assert body["input_hash"] == stored["input_hash"]
    assert body["model_version"] == stored["model_version"]
    assert [r["text_zh"] for r in body["reasons"]] == [r["text_zh"] for r in stored["reasons"]]
    assert all(r["text_en"] for r in body["reasons"])
    assert [h["risk_class"] for h in body["history"]] == [stored["class"]]
    trail = records(engine, entity=prepared.off_list, limit=1000)
    assert len(trail) == before + 1
    assert trail[-1].kind == "decision.read"
    assert trail[-1].payload == {"reader": "reg", "role": "regulator", "what": "enterprise"}
    assert verify_chain(engine).ok


def test_an_unknown_enterprise_is_a_bilingual_404(client: TestClient,
                                                  regulator: dict[str, str]) -> None:
    response = client.get("/api/enterprises/91440105MA5XXXXXXX", headers=regulator)
    assert response.status_code == 404
    assert "没有" in response.json()["detail"] and "no decision" in response.json()["detail"]


def test_the_inspector_list_is_their_own_ranked_by_risk(client: TestClient,
                                                        prepared: Prepared) -> None:
    body = client.get("/api/me/list", headers=bearer(prepared.tokens["inspector"])).json()
    assert body["inspector_id"] == prepared.inspector_id
    assert body["campaign_ids"] == [prepared.campaign_id]
    targets = body["targets"]
    assert targets and all(prepared.inspector_id in t["team_id"].split(";") for t in targets)
    for team in {t["team_id"] for t in targets}:
        ranked = [t for t in targets if t["team_id"] == team]
        assert [t["rank"] for t in ranked] == list(range(1, len(ranked) + 1))
        probabilities = [t["probability"] for t in ranked]
        assert probabilities == sorted(probabilities, reverse=True)
    assert all(t["risk_class"] in "ABCD" and t["top_reasons_zh"] for t in targets)


def test_replay_rebuilds_a_published_decision(client: TestClient, prepared: Prepared,
                                              regulator: dict[str, str]) -> None:
    from serving_champion import AS_OF

    response = client.get(f"/api/audit/replay/{prepared.on_list}",
                          params={"as_of": f"{AS_OF:%Y-%m-%d}"}, headers=regulator)
    assert response.status_code == 200, response.text
    assert response.json()["matches"] is True and response.json()["differences"] == []


def test_campaign_verify_recomputes_the_draw_and_the_public_notice_has_no_class(
        client: TestClient, prepared: Prepared, regulator: dict[str, str]) -> None:
    verified = client.post(f"/api/campaigns/{prepared.campaign_id}/verify", headers=regulator)
    assert verified.status_code == 200 and verified.json()["match"] is True
    assert all(check["ok"] for check in verified.json()["checks"])
    notice = client.get(f"/api/public/campaigns/{prepared.campaign_id}/notice").json()
    text = json.dumps(notice, ensure_ascii=False)
    assert notice["commitment_digest"] and notice["drawn_uscc"]
    assert '"class"' not in text and "probability" not in text and "reasons" not in text


def test_audit_verify_and_entity_history(client: TestClient, prepared: Prepared,
                                         regulator: dict[str, str]) -> None:
    report = client.get("/api/audit/verify", headers=regulator).json()
    assert report["ok"] is True and report["records"] > 0
    history = client.get(f"/api/audit/entities/{prepared.on_list}", headers=regulator).json()
    assert history[0]["kind"] == "decision" and history[0]["entity"] == prepared.on_list


def test_a_much_read_firm_still_shows_its_decisions_without_the_reads(
        client: TestClient, prepared: Prepared, regulator: dict[str, str]) -> None:
    for _ in range(3):
        client.get(f"/api/enterprises/{prepared.on_list}", headers=regulator)
    url = f"/api/audit/entities/{prepared.on_list}"
    everything = client.get(url, params={"limit": 3}, headers=regulator).json()
    assert [r["kind"] for r in everything] == ["decision.read"] * 3  # the reads crowd it
    decided = client.get(url, params={"limit": 3, "reads": "false"}, headers=regulator).json()
    assert decided and "decision.read" not in {r["kind"] for r in decided}
    assert decided[-1]["kind"] == "decision" and decided[-1]["entity"] == prepared.on_list


def test_regulator_pages_data(client: TestClient, regulator: dict[str, str]) -> None:
    dashboard = client.get("/api/dashboard", headers=regulator).json()
    assert sum(dashboard["class_counts"].values()) > 0 and dashboard["model_version"]
    monitoring = client.get("/api/monitoring", headers=regulator).json()
    assert "score_psi" in monitoring["drift"] and monitoring["transitions"]["labels"]
    fairness = client.get("/api/fairness", headers=regulator).json()
    assert fairness["table"] and "attribute" in fairness["table"][0]
    models: list[dict[str, Any]] = client.get("/api/models", headers=regulator).json()
    champion = [m for m in models if "champion" in m["aliases"]]
    assert champion and champion[0]["name"] == "enterprise-credit-risk"
    card = client.get(f"/api/models/enterprise-credit-risk/versions/{champion[0]['version']}"
                      "/card", headers=regulator)
    assert card.status_code == 200 and card.json()["markdown"]


def test_concurrent_reads_are_all_recorded_on_one_unbroken_chain(prepared: Prepared) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from serving.api.auth import Principal, Role
    from serving.api.decisions import record_read

    engine = open_store(prepared.settings.database_url)
    reader = Principal("reg", Role.regulator, None)
    before = len(records(engine, entity="concurrency-probe", limit=1000))
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: record_read(engine, reader, "concurrency-probe", "enterprise"),
                      range(48)))
    assert len(records(engine, entity="concurrency-probe", limit=1000)) == before + 48
    assert verify_chain(engine).ok
