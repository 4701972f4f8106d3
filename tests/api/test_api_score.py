"""On-demand scoring: the nightly's answer for a known firm, and 422s that say what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from conftest import Prepared, bearer
from fastapi.testclient import TestClient

from serving.store import enterprise_score, open_store


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Snapshot rows as an export would carry them (dates as YYYY-MM-DD text)."""
    rows = json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False))
    return [{k: v[:10] if isinstance(v, str) and "T00:00:00" in v else v for k, v in r.items()}
            for r in rows]


@pytest.fixture(scope="module")
def record(prepared: Prepared) -> dict[str, Any]:
    """A scored firm's own rows from the snapshot: enterprise, events, inspections."""
    from features.snapshot import current_snapshot, load_snapshot

    snapshot = load_snapshot(current_snapshot(prepared.settings.snapshots))
    events = snapshot["enterprise_events"]
    with_events = events["uscc"].value_counts().index[0]
    pick = lambda name: snapshot[name][snapshot[name]["uscc"] == with_events]  # noqa: E731
    return {"enterprise": _rows(pick("enterprises"))[0], "events": _rows(pick("enterprise_events")),
            "inspections": _rows(pick("inspections"))}


@pytest.fixture(scope="module")
def regulator(prepared: Prepared) -> dict[str, str]:
    return bearer(prepared.tokens["regulator"])


def test_a_known_firm_scores_as_the_nightly_scored_it(
        client: TestClient, prepared: Prepared, record: dict[str, Any],
        regulator: dict[str, str]) -> None:
    from serving_champion import AS_OF

    response = client.post("/api/score", json={**record, "as_of": f"{AS_OF:%Y-%m-%d}"},
                           headers=regulator)
    assert response.status_code == 200, response.text
    body = response.json()
    stored = enterprise_score(open_store(prepared.settings.database_url),
                              record["enterprise"]["uscc"])
    assert stored is not None
    assert body["probability"] == pytest.approx(stored["probability"], rel=1e-9)
    assert body["risk_class"] == stored["class"] and body["input_hash"] == stored["input_hash"]
    assert [r["reason_code"] for r in body["reasons"]] == [
        r["reason_code"] for r in stored["reasons"]]
    assert body["model_version"] == stored["model_version"]
    assert body["policy_hash"] == stored["policy_hash"]
    assert (body["score_class"], ",".join(body["overrides"]), body["class_reason_en"]) == (
        stored["score_class"], stored["overrides"], stored["class_reason_en"])
    assert [r["contribution"] for r in body["reasons"]] == pytest.approx(
        [r["contribution"] for r in stored["reasons"]], rel=1e-9)
    from serving.audit import records

    trail = records(open_store(prepared.settings.database_url),
                    entity=record["enterprise"]["uscc"], limit=10_000)
    assert (trail[-1].kind, trail[-1].payload["what"], trail[-1].payload["reader"]) == (
        "decision.read", "on_demand_score", "reg")


def test_new_penalties_raise_the_probability(client: TestClient, record: dict[str, Any],
                                             regulator: dict[str, str]) -> None:
    from serving_champion import AS_OF

    uscc = record["enterprise"]["uscc"]
    penalties = [{"event_id": f"NEW-{i}", "uscc": uscc, "event_type": "penalty",
                  "occurred_date": "2026-08-0" + str(i + 1), "known_date": "2026-08-1" + str(i),
                  "severity": "serious", "amount": 50000} for i in range(4)]
    base = client.post("/api/score", json={**record, "as_of": f"{AS_OF:%Y-%m-%d}"},
                       headers=regulator).json()
    worse = client.post("/api/score", json={**record, "events": record["events"] + penalties,
                                            "as_of": f"{AS_OF:%Y-%m-%d}"}, headers=regulator)
    assert worse.status_code == 200, worse.text
    assert worse.json()["probability"] > base["probability"]


def _problems(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert all(p["message_zh"] and p["message_en"] for p in problems)
    return problems


def test_bad_records_are_422s_naming_field_column_and_rule(
        client: TestClient, prepared: Prepared, record: dict[str, Any],
        regulator: dict[str, str]) -> None:
    enterprise = record["enterprise"]
    wrong_check = {**enterprise, "uscc": enterprise["uscc"][:-1] + (
        "0" if enterprise["uscc"][-1] != "0" else "1")}
    problems = _problems(client.post("/api/score", json={"enterprise": wrong_check},
                                     headers=regulator))
    assert [(p["field"], p["column"], p["rule"]) for p in problems] == [
        ("enterprise", "uscc", "uscc_check")]
    assert "校验位" in problems[0]["message_zh"] and "check character" in problems[0]["msg"]

    bad = {**enterprise, "entity_type": "spaceship", "registered_capital": -1, "colour": "red"}
    found = {(p["column"], p["rule"]) for p in _problems(
        client.post("/api/score", json={"enterprise": bad}, headers=regulator))}
    assert {("entity_type", "allowed"), ("registered_capital", "minimum"),
            ("colour", "unknown_column")} <= found

    stray = {"event_id": "E1", "uscc": prepared.off_list, "event_type": "tax_grade",
             "occurred_date": "2026-05-01", "known_date": "2026-04-01"}
    located = {(p["field"], p["row"], p["column"], p["rule"]) for p in _problems(client.post(
        "/api/score", json={"enterprise": enterprise, "events": [stray]}, headers=regulator))}
    assert located == {("events", 1, "occurred_date,known_date", "known_not_before_occurred"),
                     ("events", 1, "event_type,grade", "grade_for_tax_grade"),
                     ("events", 1, "uscc", "reference")}


def test_a_malformed_request_is_a_bilingual_422(client: TestClient,
                                                regulator: dict[str, str]) -> None:
    problems = _problems(client.post("/api/score", json={"events": []}, headers=regulator))
    assert problems[0]["field"] == "enterprise" and problems[0]["rule"] == "missing"
    empty = _problems(client.post("/api/score", json={"enterprise": {}}, headers=regulator))
    assert empty[0]["column"] == "uscc"
