"""Results store: migrations and readers, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from serving_champion import backends, empty_database
from sqlalchemy import Connection, Engine, inspect, text

from serving.store import (
    MIGRATIONS,
    RUN_COMPLETE,
    RUN_IN_PROGRESS,
    Migration,
    StoreError,
    class_history,
    create_store_engine,
    current_version,
    enterprise_score,
    enterprise_scores,
    head_version,
    latest_complete_run,
    migrate,
    open_store,
    project_grades_frame,
    reasons,
    reasons_frame,
    runs,
    schema_version,
    scores_frame,
    trigger_cases_frame,
    utc_now,
)

EXPECTED_TABLES = {"runs", "run_chunks", "enterprise_scores", "reasons", "monitoring",
                   "policies", "audit_log", "project_grades", "trigger_cases", "campaigns",
                   "draws", "campaign_actions", "schema_version"}


@pytest.fixture(params=backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from empty_database(request.param, tmp_path)


def _run(connection: Connection, key: str, as_of: date, status: str) -> int:
    result = connection.execute(runs.insert().values(
        run_key=key, as_of=as_of, snapshot_id="snap", input_hash="h" * 64,
        model_name="m", model_version="1", policy_version="p", policy_hash="p" * 64,
        top_k=3, chunk_size=10, n_chunks=1, n_entities=1, population_hash="x" * 64,
        status=status, started_at=utc_now(),
        finished_at=utc_now() if status == RUN_COMPLETE else None))
    return int(result.inserted_primary_key[0])


def _score(connection: Connection, run_id: int, uscc: str, klass: str, raw: float) -> None:
    connection.execute(enterprise_scores.insert().values(
        run_id=run_id, uscc=uscc, raw_score=raw, probability=0.1, score_class=klass,
        risk_class=klass, overrides="", class_reason_zh="理由", class_reason_en="reason",
        input_hash="i" * 64, explain_key="k" * 64, explained=True))
    connection.execute(reasons.insert().values(
        run_id=run_id, uscc=uscc, rank=1, feature="penalties_365d", value=None,
        contribution=raw, raises_risk=True, reason_code="ENT-SUP-PENALTIES_365D",
        text_zh="近365天行政处罚次数缺失，风险上升", text_en="penalties: missing, raised the risk"))


@pytest.fixture
def populated(url: str) -> Engine:
    """Three runs: complete (day 1), complete (day 2), in progress (day 3)."""
    engine = open_store(url)
    with engine.begin() as connection:
        first = _run(connection, "k1", date(2026, 1, 1), RUN_COMPLETE)
        second = _run(connection, "k2", date(2026, 1, 2), RUN_COMPLETE)
        third = _run(connection, "k3", date(2026, 1, 3), RUN_IN_PROGRESS)
        _score(connection, first, "91440101000000001X", "B", 0.1)
        _score(connection, second, "91440101000000001X", "C", 0.1 + 2e-17)
        _score(connection, third, "91440101000000001X", "D", 0.3)
    return engine


def test_fresh_database_is_created_at_head_and_migrating_again_is_a_no_op(url: str) -> None:
    engine = create_store_engine(url)
    assert current_version(engine) is None
    assert migrate(engine) == head_version()
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    assert migrate(engine) == head_version()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1


def test_pending_migrations_apply_once_in_order(url: str) -> None:
    engine = open_store(url)
    applied: list[int] = []

    def probe(connection: Connection) -> None:
        applied.append(following)
        connection.execute(text("CREATE TABLE migration_probe (id INTEGER PRIMARY KEY)"))

    following = head_version() + 1
    steps = (*MIGRATIONS, Migration(following, "probe table", probe))
    try:
        assert migrate(engine, steps) == following
        assert migrate(engine, steps) == following
        assert applied == [following] and current_version(engine) == following
        assert "migration_probe" in inspect(engine).get_table_names()
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS migration_probe"))


def test_a_database_newer_than_the_code_is_refused(url: str) -> None:
    engine = open_store(url)
    with engine.begin() as connection:
        connection.execute(schema_version.insert().values(
            version=head_version() + 5, description="future", applied_at=utc_now()))
    with pytest.raises(StoreError, match="newer than this riskmatrix"):
        open_store(url)


def test_readers_see_only_complete_runs(populated: Engine) -> None:
    latest = latest_complete_run(populated)
    assert latest is not None and latest.run_key == "k2"
    before = latest_complete_run(populated, before=date(2026, 1, 2))
    assert before is not None and before.run_key == "k1"
    assert latest_complete_run(populated, before=date(2026, 1, 1)) is None

    frame = scores_frame(populated, with_reasons=True)
    assert frame["class"].tolist() == ["C"]
    assert frame["top_reasons_en"].tolist() == ["penalties: missing, raised the risk"]
    history = class_history(populated, "91440101000000001X")
    assert history["class"].tolist() == ["B", "C"]  # the in-progress D is invisible
    decision = enterprise_score(populated, "91440101000000001X")
    assert decision is not None and decision["class"] == "C" and decision["run_id"] == latest.id
    assert decision["reasons"][0]["reason_code"] == "ENT-SUP-PENALTIES_365D"
    assert enterprise_score(populated, "91440101000000002X") is None


def _bits(value: Any) -> bytes:
    return struct.pack("<d", float(value))


def test_doubles_round_trip_bit_for_bit_and_missing_values_read_as_nan(populated: Engine
                                                                        ) -> None:
    latest = latest_complete_run(populated)
    assert latest is not None
    frame = scores_frame(populated, latest)
    assert _bits(frame["raw_score"].iloc[0]) == _bits(0.1 + 2e-17)
    long = reasons_frame(populated, latest)
    assert long["value"].isna().all() and _bits(long["contribution"].iloc[0]) == _bits(
        0.1 + 2e-17)


def test_an_empty_store_reads_as_nothing(url: str) -> None:
    engine = open_store(url)
    assert latest_complete_run(engine) is None
    assert scores_frame(engine).empty
    assert enterprise_score(engine, "91440101000000001X") is None


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the results store"):
        open_store(f"sqlite:///{blocker / 'results.db'}")


def _as_version_2(engine: Engine, reserved_rows: bool) -> None:
    """Turn a head database back into a version-2 one: the baseline's reserved tables."""
    with engine.begin() as connection:
        for name in ("campaign_actions", "draws", "campaigns", "trigger_cases",
                     "project_grades"):
            connection.execute(text(f"DROP TABLE {name}"))
        connection.execute(text("CREATE TABLE trigger_cases (case_id VARCHAR(64) PRIMARY KEY, "
                                "payload TEXT)"))
        connection.execute(text("CREATE TABLE project_grades (run_id INTEGER, "
                                "project_id VARCHAR(64))"))
        if reserved_rows:
            connection.execute(text("INSERT INTO trigger_cases VALUES ('DT-1', '{}')"))
        connection.execute(schema_version.delete())
        connection.execute(schema_version.insert().values(
            version=2, description="service accounts", applied_at=utc_now()))


def test_version_3_replaces_the_never_written_reserved_tables(url: str) -> None:
    engine = open_store(url)
    _as_version_2(engine, reserved_rows=False)
    assert migrate(engine) == head_version() >= 3
    columns = {c["name"] for c in inspect(engine).get_columns("trigger_cases")}
    assert {"run_id", "case_id", "today", "payload"} <= columns
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    assert project_grades_frame(engine).empty and trigger_cases_frame(engine).empty


def test_version_3_refuses_to_drop_a_reserved_table_holding_rows(url: str) -> None:
    engine = open_store(url)
    _as_version_2(engine, reserved_rows=True)
    with pytest.raises(StoreError, match="trigger_cases"):
        migrate(engine)
    assert current_version(engine) == 2
