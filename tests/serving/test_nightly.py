"""The nightly batch: atomic, idempotent, resumable, explains only what changed.

One scenario per backend (SQLite always, PostgreSQL when RISKMATRIX_TEST_PG_URL is set):
day 1 crashes inside a chunk and is re-run; day 1 is run a third time; day 2 crashes while
day 1 is published, then completes reusing day 1's explanations. Reference runs on a
separate SQLite store — day 1 uninterrupted, day 2 with every entity re-explained — give
what the scenario must equal.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from serving_champion import AS_OF, CHUNK, backends, champion_home, empty_database, settings_for
from sqlalchemy import Engine, func, select

from serving.audit import (
    DECISION,
    PROJECT_GRADE,
    TRIGGER_CASE,
    AuditEntry,
    append_entries,
    verify_chain,
)
from serving.audit import records as audit_records
from serving.nightly import (
    LIGHTGBM_ZERO_THRESHOLD as ZERO_BAND,
)
from serving.nightly import (
    NightlySummary,
    commit_stage,
    explanation_keys,
    reason_texts,
    run_nightly,
    split_codes,
)
from serving.settings import Settings
from serving.store import (
    RunRecord,
    audit_log,
    enterprise_scores,
    latest_complete_run,
    monitoring_payloads,
    open_store,
    project_grades_frame,
    reasons,
    reasons_frame,
    run_chunks,
    runs,
    scores_frame,
    trigger_cases_frame,
    utc_now,
)

DAY_2 = AS_OF + pd.Timedelta(days=1)


class SimulatedCrash(RuntimeError):
    pass


def crash_at(chunk: int) -> Any:
    def hook(k: int) -> None:
        if k == chunk:
            raise SimulatedCrash(f"killed inside chunk {k}")
    return hook


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table.name: int(connection.execute(select(func.count()).select_from(table))
                                .scalar() or 0)
                for table in (enterprise_scores, reasons, audit_log, run_chunks)}


def _decisions(engine: Engine, run: RunRecord) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(select(audit_log.c.entity, audit_log.c.payload).where(
            audit_log.c.run_id == run.id, audit_log.c.kind == DECISION)).all()
    return {str(r.entity): str(r.payload) for r in rows}


@dataclass
class Published:
    """What a store holds for one published run, comparable across stores."""

    run: RunRecord
    scores: pd.DataFrame
    reasons: pd.DataFrame
    decisions: dict[str, Any]


def _published(engine: Engine, run: RunRecord) -> Published:
    return Published(run, scores_frame(engine, run), reasons_frame(engine, run),
                     _decisions(engine, run))


def _assert_same_results(actual: Published, expected: Published) -> None:
    columns = [c for c in expected.scores.columns if c != "explained"]
    pd.testing.assert_frame_equal(actual.scores[columns], expected.scores[columns],
                                  check_exact=True)
    pd.testing.assert_frame_equal(actual.reasons, expected.reasons, check_exact=True)
    assert actual.decisions == expected.decisions


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return champion_home(tmp_path_factory.mktemp("nightly") / "home")


@pytest.fixture(scope="module")
def reference(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Published]:
    """Day 1 uninterrupted, then day 2 with reuse off (every entity through TreeSHAP)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'reference.db'}"
    settings = settings_for(home, url)
    first = run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    second = run_nightly(settings, DAY_2, progress=False, chunk_size=CHUNK,
                         reuse_explanations=False)
    assert second.reused == 0
    engine = open_store(url)
    published = {}
    for name, summary in (("day1", first), ("day2", second)):
        run = latest_complete_run(engine, before=pd.Timestamp(summary.as_of).date()
                                  + pd.Timedelta(days=1))
        assert run is not None and run.id == summary.run_id
        published[name] = _published(engine, run)
    return published


@dataclass
class Scenario:
    settings: Settings
    engine: Engine
    crashed_day1: dict[str, Any]
    day1: NightlySummary
    day1_again: NightlySummary
    counts_before_again: dict[str, int]
    counts_after_again: dict[str, int]
    crashed_day2: dict[str, Any]
    day2: NightlySummary


@pytest.fixture(scope="module", params=backends())
def scenario(request: pytest.FixtureRequest, home: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    for url in empty_database(request.param, tmp_path_factory.mktemp(request.param)):
        settings = settings_for(home, url)
        engine = open_store(url)

        with pytest.raises(SimulatedCrash):
            run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK,
                        on_chunk=crash_at(2))
        with engine.connect() as connection:
            crashed_run = connection.execute(select(run_chunks.c.run_id)).scalar()
        crashed_day1 = {"latest": latest_complete_run(engine), "counts": _counts(engine),
                        "run_id": crashed_run}
        day1 = run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
        before = _counts(engine)
        again = run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
        after = _counts(engine)

        with pytest.raises(SimulatedCrash):
            run_nightly(settings, DAY_2, progress=False, chunk_size=CHUNK, on_chunk=crash_at(1))
        latest = latest_complete_run(engine)
        crashed_day2 = {"latest": latest,
                        "scores": None if latest is None else scores_frame(engine)}
        day2 = run_nightly(settings, DAY_2, progress=False, chunk_size=CHUNK)
        yield Scenario(settings, engine, crashed_day1, day1, again, before, after,
                       crashed_day2, day2)
        engine.dispose()


def test_a_crashed_first_run_publishes_nothing(scenario: Scenario) -> None:
    crashed = scenario.crashed_day1
    assert crashed["latest"] is None
    # chunks 0 and 1 committed; chunk 2 rolled back with everything it wrote
    assert crashed["counts"]["run_chunks"] == 2
    assert crashed["counts"]["enterprise_scores"] == 2 * CHUNK
    assert crashed["counts"]["audit_log"] == 2 * CHUNK


def test_rerun_after_a_crash_resumes_and_equals_an_uninterrupted_run(
        scenario: Scenario, reference: dict[str, Published]) -> None:
    day1 = scenario.day1
    assert day1.status == "complete" and day1.resumed_chunks == 2
    assert day1.run_id == scenario.crashed_day1["run_id"]
    run = latest_complete_run(scenario.engine, before=DAY_2.date())
    assert run is not None and run.id == day1.run_id
    _assert_same_results(_published(scenario.engine, run), reference["day1"])
    assert sum(day1.class_counts.values()) == day1.n_entities == len(reference["day1"].scores)


def test_rerunning_a_published_date_is_reported_and_writes_nothing(scenario: Scenario) -> None:
    again = scenario.day1_again
    assert again.status == "already_complete" and again.run_id == scenario.day1.run_id
    assert scenario.counts_after_again == scenario.counts_before_again
    assert "already complete" in again.format()


def test_readers_keep_the_previous_run_while_the_next_one_is_unfinished(
        scenario: Scenario) -> None:
    latest = scenario.crashed_day2["latest"]
    assert latest is not None and latest.id == scenario.day1.run_id
    day2_run = latest_complete_run(scenario.engine)
    assert day2_run is not None and day2_run.id == scenario.day2.run_id
    # the run that crashed was resumed, not restarted: one day-2 run in the store
    with scenario.engine.connect() as connection:
        statuses = connection.execute(select(func.count()).select_from(run_chunks)
                                      .where(run_chunks.c.run_id == day2_run.id)).scalar()
    assert statuses == day2_run.n_chunks


def test_reusing_explanations_gives_exactly_what_recomputing_gives(
        scenario: Scenario, reference: dict[str, Published]) -> None:
    day2 = scenario.day2
    assert day2.resumed_chunks == 1
    assert day2.reused > day2.n_entities // 2 and day2.explained > 0
    assert day2.explained + day2.reused == day2.n_entities
    run = latest_complete_run(scenario.engine)
    assert run is not None and run.previous_run_id == scenario.day1.run_id
    published = _published(scenario.engine, run)
    assert (~published.scores["explained"]).sum() == day2.reused
    _assert_same_results(published, reference["day2"])


def test_classes_hold_against_the_previous_run_as_score_population_computes_them(
        scenario: Scenario, home: Path) -> None:
    from features.snapshot import current_snapshot
    from models.scoring import score_population
    from serving.nightly import _enterprise_features
    from serving.scoring import class_rules
    from supervision.policy import load_policy
    from training.registry import configure_mlflow, load_model

    policy = load_policy()
    configure_mlflow(home)
    model = load_model("enterprise-credit-risk", scenario.day2.model_version)
    features = _enterprise_features(current_snapshot(home / "snapshots"), policy, DAY_2)
    previous = scores_frame(scenario.engine, scenario.day1.run_id)["class"]
    expected = score_population(model, features, policy.feature_catalogue(),
                                class_rules(policy), previous=previous).scores
    actual = scores_frame(scenario.engine, scenario.day2.run_id)
    columns = ["raw_score", "probability", "score_class", "class", "overrides",
               "class_reason_zh", "class_reason_en", "input_hash"]
    pd.testing.assert_frame_equal(actual[columns], expected[columns].rename_axis("uscc"),
                                  check_exact=True)
    with_reasons = scores_frame(scenario.engine, scenario.day2.run_id, with_reasons=True)
    assert with_reasons["top_reasons_zh"].equals(expected["top_reasons_zh"].rename_axis("uscc"))


def test_the_audit_chain_holds_every_decision_and_is_anchored(scenario: Scenario) -> None:
    report = verify_chain(scenario.engine)
    n = scenario.day1.n_entities + scenario.day2.n_entities
    cases = sum(day.stages["triggers"]["opened"] + day.stages["triggers"]["updated"]
                for day in (scenario.day1, scenario.day2))
    assert report.ok, report.describe()
    # one decision per entity per run, one record per trigger case touched, two publications
    assert report.records == n + cases + 2
    assert report.anchors_checked == 2
    assert (report.head_seq, report.head_hash) == scenario.day2.audit_head


def test_monitoring_is_stored_with_the_run(scenario: Scenario) -> None:
    payloads = monitoring_payloads(scenario.engine)
    assert set(payloads) == {"drift", "transitions", "fairness", "profile", "stage.projects",
                             "stage.triggers"}
    drift = payloads["drift"]
    assert drift["reference"] == "training" and drift["table"]
    assert {row["status"] for row in drift["table"]} <= {"ok", "flag", "alert"}
    assert any(row["variable"] == "score" for row in drift["table"])
    transitions = payloads["transitions"]
    assert transitions["previous_run_id"] == scenario.day1.run_id
    assert transitions["changes"] == scenario.day2.class_changes
    total = sum(sum(v for k, v in row.items() if k != "previous")
                for row in transitions["matrix"])
    assert total == scenario.day2.n_entities
    assert payloads["fairness"]["table"] and "flags" in payloads["fairness"]
    assert scenario.day2.stage_seconds["explain"] > 0 and "features" in scenario.day2.stage_seconds


# --------------------------------------------------------------------------- SQLite only


@pytest.fixture
def sqlite_settings(home: Path, tmp_path: Path) -> Settings:
    return settings_for(home, f"sqlite:///{tmp_path / 'results.db'}")


def test_a_new_model_version_re_explains_everyone_and_drifts_against_the_last_run(
        tmp_path: Path) -> None:
    from training.registry import configure_mlflow, get_version_by_alias, set_alias

    own = champion_home(tmp_path / "home")  # the alias moves: a private registry
    settings = settings_for(own, f"sqlite:///{tmp_path / 'results.db'}")
    first = run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    configure_mlflow(own)
    assert get_version_by_alias("enterprise-credit-risk", "champion") == "1"
    set_alias("enterprise-credit-risk", "champion", "2")
    second = run_nightly(settings, DAY_2, progress=False, chunk_size=CHUNK)
    assert second.model_version == "2" and second.reused == 0
    assert second.drift["reference"] == f"previous_run:{first.run_id}"
    assert any("previous run" in note for note in second.notes)


def test_source_is_ingested_once_and_new_records_are_re_explained(
        tmp_path: Path, sqlite_settings: Settings) -> None:
    from features.snapshot import current_snapshot, load_snapshot

    snapshot_dir = current_snapshot(sqlite_settings.snapshots)
    source = tmp_path / "source"
    source.mkdir()
    tables = load_snapshot(snapshot_dir)
    for name, frame in tables.items():
        frame.to_parquet(source / f"{name}.parquet", index=False)
    first = run_nightly(sqlite_settings, AS_OF, source=source, progress=False, chunk_size=CHUNK)
    assert first.ingest is not None and first.ingest["status"] == "ingested"
    again = run_nightly(sqlite_settings, AS_OF, source=source, progress=False, chunk_size=CHUNK)
    assert again.status == "already_complete"

    # 2 % of enterprises get a complaint known before the as-of date
    events = tables["enterprise_events"]
    complaints = events[events["event_type"] == "complaint"]
    scored = scores_frame(open_store(sqlite_settings.database_url), first.run_id)
    chosen = scored.index[:: 50]
    template = complaints.iloc[[0] * len(chosen)].reset_index(drop=True)
    template["uscc"] = list(chosen)
    template["event_id"] = [f"NEW{i:06d}" for i in range(len(chosen))]
    template["occurred_date"] = AS_OF - pd.Timedelta(days=5)
    template["known_date"] = AS_OF - pd.Timedelta(days=3)
    pd.concat([events, template], ignore_index=True).to_parquet(
        source / "enterprise_events.parquet", index=False)
    second = run_nightly(sqlite_settings, AS_OF, source=source, progress=False, chunk_size=CHUNK)
    assert second.ingest is not None and second.ingest["status"] == "ingested"
    assert second.run_id != first.run_id and second.status == "complete"
    engine = open_store(sqlite_settings.database_url)
    now = scores_frame(engine, second.run_id)
    changed_inputs = now["input_hash"] != scored["input_hash"].reindex(now.index)
    assert 0 < second.explained <= int(changed_inputs.sum()) < len(now) // 10
    assert not now.loc[~changed_inputs, "explained"].any()


def test_operator_mistakes_are_one_clear_line(sqlite_settings: Settings, tmp_path: Path
                                              ) -> None:
    from typer.testing import CliRunner

    from serving.cli_ops import nightly
    from serving.scoring import ServingError

    empty_home = settings_for(tmp_path / "empty", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ServingError, match="no snapshot yet"):
        run_nightly(empty_home, AS_OF, progress=False)
    import typer

    app = typer.Typer()
    app.command()(nightly)
    result = CliRunner().invoke(app, ["--as-of", "not-a-date", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "invalid date" in result.output
    result = CliRunner().invoke(app, ["--as-of", "2026-10-01", "--home", str(tmp_path / "e")],
                                env={"RISKMATRIX_DB_URL": f"sqlite:///{tmp_path / 'y.db'}"})
    assert result.exit_code == 2 and "no snapshot yet" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- explanation keys


def _bits(values: np.ndarray) -> bytes:
    return struct.pack(f"<{values.size}d", *np.asarray(values, dtype=np.float64).ravel())


def test_equal_split_codes_give_bit_identical_shap_and_a_crossed_split_changes_the_code(
) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 4))
    X[:, 1] = np.round(X[:, 1])  # many exact zeros
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(size=3000) > 0)
    booster = lgb.train({"objective": "binary", "verbose": -1, "max_depth": 4,
                         "min_data_in_leaf": 20, "zero_as_missing": False},
                        lgb.Dataset(X, y.astype(int)), num_boost_round=40)
    codes = split_codes(booster, X)
    assert codes is not None
    # Move every value to another point of its own bin: same code, same side of every split.
    moved = X.copy()
    cuts = {}
    stack = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            cuts.setdefault(node["split_feature"], set()).add(node["threshold"])
            stack += [node["left_child"], node["right_child"]]
    for column, found in cuts.items():
        edges = np.array(sorted(found))
        values = X[:, column]
        present = ~np.isnan(values) & (np.abs(values) > ZERO_BAND)
        position = np.searchsorted(edges, values[present], side="left")
        tops = np.append(edges, edges[-1] + 10.0)
        bottoms = np.insert(edges, 0, edges[0] - 10.0)
        inside = np.where(np.abs(tops) > ZERO_BAND, tops, (tops + bottoms) / 2)  # not 0-band
        moved[present, column] = inside[position]
    codes_moved = split_codes(booster, moved)
    assert codes_moved is not None and np.array_equal(codes, codes_moved)
    assert not np.array_equal(np.nan_to_num(moved), np.nan_to_num(X))
    assert _bits(booster.predict(X, pred_contrib=True)) == _bits(
        booster.predict(moved, pred_contrib=True))
    # Values in LightGBM's zero band are read as 0: same code, same contributions.
    tiny = moved.copy()
    tiny[tiny == 0.0] = 5e-36
    assert (moved == 0.0).any()
    assert np.array_equal(split_codes(booster, tiny), codes)
    assert _bits(booster.predict(tiny, pred_contrib=True)) == _bits(
        booster.predict(moved, pred_contrib=True))
    # Crossing one split changes the code of that entity only.
    edges = np.array(sorted(cuts[0]))
    row = int(np.flatnonzero(~np.isnan(X[:, 0]) & (np.abs(X[:, 0]) > ZERO_BAND))[0])
    crossed = moved.copy()
    in_first_bin = np.searchsorted(edges, moved[row, 0], side="left") == 0
    crossed[row, 0] = edges[-1] + 1.0 if in_first_bin else edges[0] - 1.0
    changed = split_codes(booster, crossed)
    assert changed is not None
    assert (changed != codes).any(axis=1).tolist().count(True) == 1


def test_split_thresholds_are_read_once_per_booster(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 10}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=5, keep_training_booster=True)
    other = lgb.train({**params, "max_depth": 2}, lgb.Dataset(X, y), num_boost_round=5)
    expected = {id(b): np.asarray(split_codes(b, X)) for b in (booster, other)}
    dumps: list[int] = []

    def counted(model: lgb.Booster) -> Any:
        original = model.dump_model

        def dump_model(*args: Any, **kwargs: Any) -> Any:
            dumps.append(id(model))
            return original(*args, **kwargs)
        return dump_model

    for model in (booster, other):
        monkeypatch.setattr(model, "dump_model", counted(model))
    for _ in range(3):  # one call per chunk of a nightly run
        for model in (booster, other):
            assert np.array_equal(np.asarray(split_codes(model, X)), expected[id(model)])
    assert dumps == []  # both were cached by the first calls above
    booster.update()  # one more tree: new splits, so the cache must not answer
    fresh = split_codes(booster, X)
    assert dumps == [id(booster)]
    assert fresh is not None


def test_explanation_keys_fall_back_to_input_hashes_for_categorical_splits() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.integers(0, 5, 500).astype(float), "b": rng.normal(size=500)})
    y = (X["a"].isin([1, 3]) ^ (rng.random(500) < 0.1)).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(X, y, categorical_feature=["a"]), num_boost_round=10)
    hashes = pd.Series([f"h{i}" for i in range(len(X))], index=X.index)
    keys = explanation_keys(booster, X, ["a", "b"], hashes)
    assert keys.tolist() == hashes.tolist()


def test_an_entitys_explanation_key_does_not_depend_on_its_chunk() -> None:
    """Keys are compared across runs with other chunk boundaries: the same inputs must give
    the same key whatever else is in the chunk (e.g. however wide its values are)."""
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=600), "b": rng.integers(0, 40, 600).astype(float)})
    X.loc[X.index[::7], "a"] = np.nan
    y = (X["a"].fillna(0) + X["b"] / 20 + rng.normal(size=600) > 1).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(X, y), num_boost_round=30)
    hashes = pd.Series([f"h{i}" for i in range(len(X))], index=X.index)
    whole = explanation_keys(booster, X, ["a", "b"], hashes)
    narrow = X[X["b"] < 3]  # a chunk whose values sit in the first few bins only
    part = explanation_keys(booster, narrow, ["a", "b"], hashes.loc[narrow.index])
    assert part.tolist() == whole.loc[narrow.index].tolist()
    assert whole.str.fullmatch("[0-9a-f]{64}").all()
    assert whole.nunique() > 10  # different bins, different keys



# --------------------------------------------------------------------------- audit under load


def _in_progress_run(engine: Engine) -> int:
    with engine.begin() as connection:
        connection.execute(runs.insert().values(
            run_key="concurrent", as_of=AS_OF.date(), snapshot_id="s", input_hash="h",
            model_name="m", model_version="1", policy_version="p", policy_hash="p", top_k=3,
            chunk_size=1, n_chunks=1, n_entities=1, population_hash="x",
            status="in_progress", started_at=utc_now()))
        return int(connection.execute(select(runs.c.id)).scalar_one())


@pytest.mark.parametrize("backend", backends())
def test_a_stage_commit_racing_another_writer_leaves_an_unbroken_chain(
        backend: str, tmp_path: Path) -> None:
    """Another connection (the API's read trail, a campaign action) holds the chain's write
    lock with an uncommitted append while the nightly commits a stage: the stage must wait
    for it and chain after it, not reuse its `seq`; then both write at full speed."""
    for url in empty_database(backend, tmp_path):
        nightly, api = open_store(url), open_store(url)
        try:
            _race(nightly, api)
        finally:
            nightly.dispose()
            api.dispose()


def _race(nightly: Engine, api: Engine) -> None:
    run_id = _in_progress_run(nightly)
    entry = AuditEntry("api.read", {"reader": "inspector"}, "91440101000000000X")
    failures: list[BaseException] = []

    def in_thread(work: Any) -> threading.Thread:
        def target() -> None:
            try:
                work()
            except BaseException as error:
                failures.append(error)
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    def stage(name: str, n: int) -> None:
        commit_stage(nightly, run_id, name, {"status": "published"},
                     entries=[AuditEntry(TRIGGER_CASE, {"stage": name, "i": i}) for i in range(n)])

    def reads(n: int) -> None:
        for _ in range(n):
            with api.begin() as connection:
                append_entries(connection, [entry])

    with api.connect() as other:
        transaction = other.begin()
        append_entries(other, [entry])  # holds the lock, not committed yet
        waiting = in_thread(lambda: stage("triggers", 3))
        time.sleep(0.5)
        assert waiting.is_alive(), "the stage must wait for the other writer's lock"
        append_entries(other, [entry])
        transaction.commit()
        waiting.join(timeout=30)
    def stages(n: int) -> None:
        for k in range(n):
            stage(f"stage{k}", 2)

    racing = [in_thread(lambda: stages(8)), in_thread(lambda: reads(16))]
    for thread in racing:
        thread.join(timeout=60)
    assert failures == []
    report = verify_chain(nightly)
    assert report.ok and report.records == 2 + 3 + 8 * 2 + 16
    kinds = [r.kind for r in audit_records(nightly, limit=100)][:5]
    assert kinds == ["api.read", "api.read", TRIGGER_CASE, TRIGGER_CASE, TRIGGER_CASE]


def test_reason_texts_read_for_some_firms_equal_the_run_wide_join(
        scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trigger stage reads reason texts of the tagged firms only; they must be what the
    run-wide join shows (rank order, "；"), and "" for a firm without reasons."""
    import serving.nightly as nightly

    monkeypatch.setattr(nightly, "REASON_BATCH", 7)  # several batches
    run_id = scenario.day2.run_id
    full = scores_frame(scenario.engine, run_id, with_reasons=True)
    firms = [*full.index[::5].astype(str), "91440101MA5NOSUCH0"]
    texts = reason_texts(scenario.engine, run_id, pd.Index(firms))
    assert texts.index.tolist() == sorted(firms)
    for language in ("zh", "en"):
        column = f"top_reasons_{language}"
        expected = {u: str(full.at[u, column]) for u in firms[:-1]}
        assert {u: texts.at[u, column] for u in firms[:-1]} == expected
        assert all("；" in v for v in expected.values())
        assert texts.at[firms[-1], column] == ""


# --------------------------------------------------------------------------- projects, triggers


def test_without_a_project_champion_the_stage_is_skipped_and_said_so(scenario: Scenario) -> None:
    for summary in (scenario.day1, scenario.day2):
        projects = summary.stages["projects"]
        assert projects["status"] == "skipped" and "project champion" in projects["note"]
        assert "工程 / projects: 跳过 skipped" in summary.format()
    assert project_grades_frame(scenario.engine).empty


def test_trigger_cases_are_published_with_the_run_and_audited(scenario: Scenario) -> None:
    engine = scenario.engine
    for summary in (scenario.day1, scenario.day2):
        stage = summary.stages["triggers"]
        assert stage["status"] == "published", stage
        cases = trigger_cases_frame(engine, summary.run_id)
        assert len(cases) == stage["published_cases"] > 0
        assert cases["case_id"].is_unique and cases["today"].isin(["opened", "updated", ""]).all()
        assert set(cases["status"]) <= {"open", "closed"}
        touched = cases.loc[cases["today"] != ""]
        assert len(touched) == stage["opened"] + stage["updated"]
        assert all(item["recorded_on"] <= summary.as_of
                   for payload in cases["payload"] for item in payload["evidence"])
        # classes come from the run itself: the published class of each case's firm
        scores = scores_frame(engine, summary.run_id)
        classed = cases.dropna(subset=["risk_class"])
        assert (classed["risk_class"].to_numpy()
                == scores.loc[classed["uscc"], "class"].to_numpy()).all()
        with engine.connect() as connection:
            audited = connection.execute(select(audit_log.c.entity, audit_log.c.payload).where(
                audit_log.c.run_id == summary.run_id, audit_log.c.kind == TRIGGER_CASE)).all()
        assert sorted(str(r.entity) for r in audited) == sorted(touched["uscc"].astype(str))
        assert "触发式监管 / triggers: 新立 opened" in summary.format()
    # the latest complete run is what readers get by default
    assert trigger_cases_frame(engine)["case_id"].tolist() == trigger_cases_frame(
        engine, scenario.day2.run_id)["case_id"].tolist()


def _fake_view(settings: Settings, as_of: pd.Timestamp) -> Any:
    """A matrix view as `serving.cli_project.matrix_view` returns it, for the projects under
    construction on `as_of`, graded without a trained model (this tests the stage's wiring;
    the project CLI tests test the model)."""
    from features.project_features import project_state
    from features.snapshot import current_snapshot, load_snapshot
    from serving.cli_project import MatrixView
    from supervision.policy import load_policy

    snapshot_dir = current_snapshot(settings.snapshots)
    ids = sorted(project_state(load_snapshot(snapshot_dir), as_of)["project_id"].astype(str))
    policy = load_policy(settings.policy_path)
    n = len(ids)
    placements = pd.DataFrame({
        "project_id": ids, "risk_source_grade": ["R1", "R2", "R3", "R4"] * (n // 4)
        + ["R1"] * (n % 4),
        "risk_source_points": pd.Series(range(n), dtype="Int64"),
        "management_grade": "M2", "probability": np.linspace(0.05, 0.6, n),
        "cell": "R1×M2", "level": "blue", "level_rank": pd.Series([3] * n, dtype="Int64"),
        "interval_days": pd.Series([180] * n, dtype="Int64"),
        "last_inspection_date": pd.NaT, "next_due_date": as_of,
        "overrides": [("never_inspected",)] * n, "reasons": "从未检查 / never inspected",
    })
    features = pd.DataFrame({"site_age_days": np.arange(n, dtype=float)},
                            index=pd.Index(ids, name="project_id"))
    return MatrixView(as_of=as_of, placements=placements, due=placements, names=pd.Series(),
                      model_version="7", model_alias="champion", policy_version=policy.version,
                      policy_hash=policy.content_hash, matrix_version="test",
                      snapshot_id=snapshot_dir.name, matrix_rules=None, features=features)


def test_projects_are_graded_published_audited_and_resumed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.cli_project as cli_project
    import serving.nightly as nightly

    calls: list[pd.Timestamp] = []

    def view(settings: Settings, as_of: pd.Timestamp | None, alias: str = "champion") -> Any:
        assert as_of is not None
        calls.append(as_of)
        return _fake_view(settings, as_of)

    monkeypatch.setattr(nightly, "_project_champion_version", lambda settings: "7")
    monkeypatch.setattr(cli_project, "matrix_view", view)
    own = champion_home(tmp_path / "home")
    url = f"sqlite:///{tmp_path / 'results.db'}"
    settings = settings_for(own, url)

    def crash_after(stage: str) -> None:
        if stage == "projects":
            raise SimulatedCrash("killed after the project stage committed")

    with pytest.raises(SimulatedCrash):
        run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK, on_stage=crash_after)
    engine = open_store(url)
    assert latest_complete_run(engine) is None  # graded, but nobody sees it yet
    summary = run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    assert len(calls) == 1  # the resumed run found the committed stage
    grades = project_grades_frame(engine)
    expected = _fake_view(settings, AS_OF).placements
    assert grades["project_id"].tolist() == expected["project_id"].tolist()
    assert (grades["model_version"] == "7").all() and grades["input_hash"].str.len().eq(64).all()
    assert grades["overrides"].eq("never_inspected").all()
    assert summary.stages["projects"]["projects"] == len(expected)
    assert "工程 / projects: " in summary.format() and "graded" in summary.format()
    with engine.connect() as connection:
        audited = connection.execute(select(audit_log.c.entity).where(
            audit_log.c.run_id == summary.run_id, audit_log.c.kind == PROJECT_GRADE)).all()
    assert sorted(str(r.entity) for r in audited) == sorted(expected["project_id"])
    assert verify_chain(engine).ok
    again = run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    assert again.status == "already_complete" and len(calls) == 1
    engine.dispose()


def test_a_policy_without_monitoring_bands_is_refused_before_any_work(
        sqlite_settings: Settings, tmp_path: Path) -> None:
    import yaml

    from serving.scoring import ServingError
    from supervision.policy import default_policy_text

    document = yaml.safe_load(default_policy_text())
    del document["monitoring"]
    path = tmp_path / "no-monitoring.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    settings = replace(sqlite_settings, policy_path=path)
    with pytest.raises(ServingError, match="monitoring"):
        run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    assert latest_complete_run(open_store(settings.database_url)) is None
