"""The trigger case book on disk: round trip of nested evidence, write-once and forward-only
runs, idempotent re-runs after a crash, closing with a reason, and the "无事不扰" flags file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.contract import ENTERPRISE_EVENTS, ENTERPRISES
from features.snapshot import coerce_types
from features.uscc import check_character
from serving import case_store
from serving.case_store import CaseStoreError
from serving.settings import Settings, load_settings
from supervision.policy import load_policy
from supervision.tagging import tag_enterprises
from supervision.triggers import evaluate_triggers, merge_case_book

DAY = pd.Timestamp("2024-06-01")


def uscc(n: int) -> str:
    first17 = f"91440101MA{n:07d}"
    return first17 + check_character(first17)


PLATFORM, OTHER = uscc(1), uscc(2)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "home")


def case(case_id: str, firm: str, opened: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case_id": case_id, "uscc": firm, "opened_on": opened, "updated_on": opened,
        "status": "open", "closed_on": None, "rules_fired": ["complaint_surge"],
        "evidence": [{
            "rule": "complaint_surge", "severity": "general", "action": "inspection",
            "applied_action": "inspection", "event_ids": ["E1", "E2", "E3"],
            "observed": {"count": np.int64(3), "baseline": np.float64(0.5)},
            "threshold": {"window_days": 30, "min_count": 3}, "zh": "30天内投诉3次",
            "en": "3 complaints in 30 days", "recorded_on": opened,
        }],
        "action": "inspection", "severity": "general", "tolerated": False,
        "pending_corrections": [], "correct_by": None, "risk_class": "C",
        "previous_class": "B", "probability": 0.42,
        "reasons": {"zh": "近一年投诉3次", "en": "3 complaints in a year"},
        "tags": ["platform"],
    }
    row.update(extra)
    return row


def book(*rows: dict[str, Any]) -> pd.DataFrame:
    return case_store.typed_book(pd.DataFrame(list(rows)))


def log_events(settings: Settings, event: str) -> list[dict[str, Any]]:
    return [e for e in case_store.read_log(settings) if e["event"] == event]


def test_nested_evidence_dates_and_classes_survive_the_round_trip(settings: Settings) -> None:
    stored = book(case("DT-1", PLATFORM, "2024-06-01", tolerated=True,
                       pending_corrections=["E9"], correct_by="2024-07-01"))
    case_store.save_case_book(settings, stored, DAY)
    loaded = case_store.load_case_book(settings)

    row = loaded.iloc[0]
    assert row["evidence"][0]["observed"] == {"count": 3, "baseline": 0.5}
    assert row["evidence"][0]["event_ids"] == ["E1", "E2", "E3"]
    assert row["rules_fired"] == ["complaint_surge"] and row["tags"] == ["platform"]
    assert row["reasons"] == {"zh": "近一年投诉3次", "en": "3 complaints in a year"}
    assert row["pending_corrections"] == ["E9"] and bool(row["tolerated"])
    assert row["correct_by"] == pd.Timestamp("2024-07-01") and pd.isna(row["closed_on"])
    assert row["risk_class"] == "C" and row["probability"] == pytest.approx(0.42)
    pd.testing.assert_frame_equal(loaded, case_store.typed_book(stored))
    # the file holds JSON text, readable without this code
    raw = pd.read_parquet(case_store.cases_dir(settings) / case_store.BOOK)
    assert json.loads(raw["evidence"].iloc[0])[0]["rule"] == "complaint_surge"


def test_no_book_is_an_empty_book_and_no_flags_an_empty_series(settings: Settings) -> None:
    assert case_store.load_case_book(settings).empty
    flags = case_store.load_undisturbed(settings)
    assert flags.empty and flags.name == "digital_undisturbed"
    assert case_store.load_previous_classes(settings).empty
    assert case_store.last_run(settings) is None


def test_a_date_is_written_once_and_runs_go_forward(settings: Settings) -> None:
    case_store.save_case_book(settings, book(case("DT-1", PLATFORM, "2024-06-01")), DAY)
    with pytest.raises(CaseStoreError, match="already been run"):
        case_store.save_case_book(settings, book(case("DT-1", PLATFORM, "2024-06-01")), DAY)
    with pytest.raises(CaseStoreError, match="before the last recorded run"):
        case_store.save_case_book(settings, book(), DAY - pd.Timedelta(days=1))
    assert [r.as_of for r in case_store.recorded_runs(settings)] == [DAY]
    assert len(log_events(settings, "opened")) == 1


def test_log_records_openings_updates_and_the_run(settings: Settings) -> None:
    first = book(case("DT-1", PLATFORM, "2024-06-01"))
    case_store.save_case_book(settings, first, DAY, provenance={"policy_version": "p1"})
    later = DAY + pd.Timedelta(days=1)
    second = book(case("DT-1", PLATFORM, "2024-06-01", updated_on=later),
                  case("DT-2", OTHER, "2024-06-02"))
    run = case_store.save_case_book(settings, second, later)

    assert run.opened == ("DT-2",) and run.updated == ("DT-1",)
    opened = log_events(settings, "opened")
    assert [(e["case_id"], e["as_of"]) for e in opened] == [("DT-1", "2024-06-01"),
                                                          ("DT-2", "2024-06-02")]
    updated = log_events(settings, "updated")
    assert [(e["case_id"], e["as_of"]) for e in updated] == [("DT-1", "2024-06-02")]
    runs = case_store.recorded_runs(settings)
    assert runs[0].provenance == {"policy_version": "p1"} and runs[1].opened == ("DT-2",)
    assert all("at" in e and "actor" in e for e in case_store.read_log(settings))


def test_duplicate_case_ids_are_refused(settings: Settings) -> None:
    with pytest.raises(CaseStoreError, match="duplicate case ids"):
        case_store.save_case_book(
            settings, book(case("DT-1", PLATFORM, "2024-06-01"),
                           case("DT-1", PLATFORM, "2024-06-01")), DAY)


def test_close_case_logs_the_reason_and_refuses_mistakes(settings: Settings) -> None:
    case_store.save_case_book(settings, book(case("DT-1", PLATFORM, "2024-06-01")), DAY)
    with pytest.raises(CaseStoreError, match="needs a reason"):
        case_store.close_case(settings, "DT-1", "  ")
    with pytest.raises(CaseStoreError, match="no case DT-9"):
        case_store.close_case(settings, "DT-9", "done")
    with pytest.raises(CaseStoreError, match="before the case's last update"):
        case_store.close_case(settings, "DT-1", "done", closed_on="2024-05-01")

    closed = case_store.close_case(settings, "DT-1", "现场检查无问题 / nothing found")
    assert closed["status"] == "closed" and closed["closed_on"] == DAY  # the last run's date
    stored = case_store.load_case_book(settings).iloc[0]
    assert stored["status"] == "closed" and stored["closed_on"] == DAY
    assert case_store.closure_reasons(settings) == {"DT-1": "现场检查无问题 / nothing found"}
    with pytest.raises(CaseStoreError, match="already closed"):
        case_store.close_case(settings, "DT-1", "again")


def test_a_failed_write_leaves_the_previous_book(settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    case_store.save_case_book(settings, book(case("DT-1", PLATFORM, "2024-06-01")), DAY)
    before = (case_store.cases_dir(settings) / case_store.BOOK).read_bytes()

    def broken(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(case_store.os, "replace", broken)
    with pytest.raises(OSError):
        case_store.close_case(settings, "DT-1", "done")
    assert (case_store.cases_dir(settings) / case_store.BOOK).read_bytes() == before
    assert not [p for p in case_store.cases_dir(settings).iterdir() if p.suffix == ".tmp"]


def test_damaged_files_give_a_clear_error(settings: Settings) -> None:
    directory = case_store.cases_dir(settings)
    directory.mkdir(parents=True)
    (directory / case_store.BOOK).write_bytes(b"not parquet")
    with pytest.raises(CaseStoreError, match=r"book\.parquet"):
        case_store.load_case_book(settings)
    (directory / case_store.LOG).write_text('{"event": "run", "as_of": "2024-06-01"}\n{oops\n',
                                            encoding="utf-8")
    with pytest.raises(CaseStoreError, match="line 2"):
        case_store.read_log(settings)


def test_undisturbed_flags_round_trip(settings: Settings) -> None:
    flags = pd.Series([True, False], index=pd.Index([PLATFORM, OTHER], name="uscc"))
    case_store.write_undisturbed(settings, flags, DAY)
    loaded = case_store.load_undisturbed(settings)
    assert loaded.to_dict() == {PLATFORM: True, OTHER: False}
    assert loaded.dtype == bool and case_store.undisturbed_as_of(settings) == DAY


# --- with the trigger engine: a re-run after a crash does not duplicate cases ----------------


def tiny_snapshot() -> dict[str, pd.DataFrame]:
    enterprises = coerce_types(ENTERPRISES, pd.DataFrame({
        "uscc": [PLATFORM, OTHER], "name": ["甲平台公司", "乙公司"],
        "industry_code": ["I6432", "C1311"], "entity_type": "limited_company",
        "ownership_type": "private", "registered_capital": 100.0,
        "established_date": ["2015-03-01", "2010-01-01"], "street": "华洲街道",
        "registered_address": "广州市海珠区", "legal_rep_id": ["p1", "p2"],
        "legal_rep_name": ["张三", "李四"], "business_scope": ["网络平台服务", "粮食加工"],
        "status": "active",
    }))
    rows = [("E1", "2024-05-20"), ("E2", "2024-05-25"), ("E3", "2024-05-28")]
    events = coerce_types(ENTERPRISE_EVENTS, pd.DataFrame({
        "event_id": [r[0] for r in rows], "uscc": PLATFORM, "event_type": "complaint",
        "occurred_date": [r[1] for r in rows], "known_date": [r[1] for r in rows],
        "severity": None,
    }))
    return {"enterprises": enterprises, "enterprise_events": events}


def run_engine(settings: Settings, snapshot: dict[str, pd.DataFrame]) -> tuple[str, ...]:
    policy = load_policy().digital
    assert policy is not None
    tags = tag_enterprises(snapshot["enterprises"], None, policy, DAY)
    stored = case_store.load_case_book(settings)
    result = evaluate_triggers(snapshot, DAY, tags=tags, classes=None, open_cases=stored,
                               policy=policy)
    case_store.save_case_book(settings, merge_case_book(stored, result), DAY)
    return result.opened


def test_rerun_after_a_crash_between_book_and_log_opens_no_duplicate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tiny_snapshot()

    def crash(*_: Any) -> None:
        raise OSError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(case_store, "_append_log", crash)
        with pytest.raises(OSError):
            run_engine(settings, snapshot)
    assert len(case_store.load_case_book(settings)) == 1  # the book was written, the run not
    assert case_store.last_run(settings) is None

    opened = run_engine(settings, snapshot)
    stored = case_store.load_case_book(settings)
    assert opened == (f"DT-{PLATFORM}-20240601",)
    assert stored["case_id"].tolist() == [f"DT-{PLATFORM}-20240601"]
    assert [e["case_id"] for e in log_events(settings, "opened")] == list(opened)
    assert stored.iloc[0]["evidence"][0]["event_ids"] == ["E1", "E2", "E3"]
