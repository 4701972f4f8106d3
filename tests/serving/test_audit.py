"""Audit trail: the hash chain catches every kind of tampering; replay rebuilds decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from serving_champion import AS_OF, CHUNK, backends, champion_home, empty_database, settings_for
from sqlalchemy import Engine, text, update
from typer.testing import CliRunner

from serving.audit import (
    CAMPAIGN_EVENTS,
    GENESIS_HASH,
    AuditEntry,
    AuditError,
    append_entries,
    append_event,
    canonical_json,
    chain_hash,
    record_text,
    records,
    verify_chain,
)
from serving.cli_ops import audit_app
from serving.nightly import run_nightly
from serving.settings import Settings
from serving.store import RUN_COMPLETE, audit_log, enterprise_scores, open_store, runs, utc_now


@pytest.fixture(params=backends())
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Six records: five decisions and a campaign draw, anchored by a complete run."""
    for url in empty_database(request.param, tmp_path):
        engine = open_store(url)
        entries = [AuditEntry("decision", {"class": c, "probability": p, "reasons": [["X", None,
                                                                                      0.5]]},
                              f"9144010100000000{i}X", "2026-10-01", None)
                   for i, (c, p) in enumerate(zip("ABCDA", [0.01, 0.1, 0.2, 0.4, 0.02],
                                                  strict=True))]
        with engine.begin() as connection:
            append_entries(connection, entries)
        event = append_event(engine, "campaign.draw", {"seed": "abc", "drawn": 12})
        with engine.begin() as connection:
            connection.execute(runs.insert().values(
                run_key="k", as_of=date(2026, 10, 1), snapshot_id="s", input_hash="h",
                model_name="m", model_version="1", policy_version="p", policy_hash="p",
                top_k=3, chunk_size=1, n_chunks=1, n_entities=5, population_hash="x",
                status=RUN_COMPLETE, started_at=utc_now(), finished_at=utc_now(),
                audit_head_seq=event.seq, audit_head_hash=event.hash))
        yield engine
        engine.dispose()


def _execute(engine: Engine, sql: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql))


def test_intact_chain_verifies_and_reports_its_head(chain: Engine) -> None:
    report = verify_chain(chain, batch=2)  # batches smaller than the log: streaming works
    assert report.ok and report.records == 6 and report.anchors_checked == 1
    last = records(chain)[-1]
    assert (report.head_seq, report.head_hash) == (6, last.hash)
    assert last.kind == "campaign.draw" and last.payload == {"seed": "abc", "drawn": 12}
    assert "intact" in report.describe()


def test_record_hash_is_sha256_of_prev_hash_and_canonical_record(chain: Engine) -> None:
    first = records(chain)[0]
    assert first.prev_hash == GENESIS_HASH and first.seq == 1
    assembled = {"as_of": first.as_of, "entity": first.entity, "kind": first.kind,
                 "payload": first.payload, "recorded_at": first.recorded_at,
                 "run_id": first.run_id, "seq": first.seq}
    assert record_text(first.seq, first.kind, first.recorded_at, first.entity, first.as_of,
                       first.run_id, canonical_json(first.payload)) == canonical_json(assembled)
    assert chain_hash(GENESIS_HASH, canonical_json(assembled)) == first.hash


def test_an_edited_record_is_found(chain: Engine) -> None:
    with chain.begin() as connection:
        payload = connection.execute(text("SELECT payload FROM audit_log WHERE seq = 3")).scalar()
        edited = json.loads(payload)
        edited["class"] = "A"
        connection.execute(update(audit_log).where(audit_log.c.seq == 3)
                           .values(payload=canonical_json(edited)))
    report = verify_chain(chain)
    assert not report.ok and report.problem is not None
    assert (report.problem.seq, report.problem.problem) == (3, "altered")
    assert "first bad record at seq 3" in report.describe()


def test_a_deleted_record_is_found(chain: Engine) -> None:
    _execute(chain, "DELETE FROM audit_log WHERE seq = 3")
    problem = verify_chain(chain).problem
    assert problem is not None and (problem.seq, problem.problem) == (3, "missing")


def test_reordered_records_are_found(chain: Engine) -> None:
    _execute(chain, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    _execute(chain, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    _execute(chain, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    problem = verify_chain(chain).problem
    assert problem is not None and (problem.seq, problem.problem) == (3, "broken_link")


def test_an_inserted_record_is_found_even_with_a_valid_hash_of_its_own(chain: Engine) -> None:
    _execute(chain, "UPDATE audit_log SET seq = seq + 1000 WHERE seq > 3")
    _execute(chain, "UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000")
    with chain.begin() as connection:
        before = connection.execute(text("SELECT hash FROM audit_log WHERE seq = 3")).scalar()
        payload = canonical_json({"class": "A", "note": "forged"})
        stamp = utc_now().isoformat()
        forged = chain_hash(before, record_text(4, "decision", stamp, "X", None, None, payload))
        connection.execute(audit_log.insert().values(
            seq=4, kind="decision", recorded_at=stamp, entity="X", as_of=None, run_id=None,
            payload=payload, prev_hash=before, hash=forged))
    problem = verify_chain(chain).problem
    assert problem is not None and (problem.seq, problem.problem) == (5, "broken_link")


def test_a_deleted_tail_is_found_through_the_run_anchor(chain: Engine) -> None:
    _execute(chain, "DELETE FROM audit_log WHERE seq >= 5")
    problem = verify_chain(chain).problem
    assert problem is not None and problem.problem == "truncated" and problem.seq == 5


def test_campaign_events_join_the_chain_and_bad_kinds_are_refused(chain: Engine) -> None:
    for kind in CAMPAIGN_EVENTS:
        append_event(chain, kind, {"campaign": "2026-Q4", "list_sha256": "ab" * 32})
    with chain.begin() as connection:  # inside a caller's transaction too
        append_event(connection, "campaign.publication", {"campaign": "2026-Q4"})
    assert verify_chain(chain).records == 11
    with pytest.raises(AuditError, match="invalid audit event kind"):
        append_event(chain, "Campaign Draw!", {})


# --------------------------------------------------------------------------- replay


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home with one published nightly run (SQLite)."""
    home = champion_home(tmp_path_factory.mktemp("audit") / "home")
    settings = settings_for(home, f"sqlite:///{home / 'riskmatrix.db'}")
    run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    return settings


def _some_entity(settings: Settings) -> str:
    with open_store(settings.database_url).connect() as connection:
        return str(connection.execute(text(
            "SELECT uscc FROM enterprise_scores WHERE overrides = '' ORDER BY uscc LIMIT 1"
        )).scalar())


def test_replay_of_a_published_decision_matches(published: Settings) -> None:
    entity = _some_entity(published)
    result = CliRunner().invoke(audit_app, ["replay", entity, "--as-of", "2026-10-01",
                                            "--home", str(published.home)],
                                env={"RISKMATRIX_DB_URL": published.database_url})
    assert result.exit_code == 0, result.output
    assert "一致 / MATCH" in result.output and entity in result.output


def test_replay_shows_what_differs_when_the_store_was_altered(published: Settings) -> None:
    from serving.nightly import replay_decision

    entity = _some_entity(published)
    engine = open_store(published.database_url)
    with engine.begin() as connection:
        original = connection.execute(text(
            f"SELECT risk_class FROM enterprise_scores WHERE uscc = '{entity}'")).scalar()
        forged = "A" if original != "A" else "D"
        connection.execute(update(enterprise_scores).where(enterprise_scores.c.uscc == entity)
                           .values(risk_class=forged))
    try:
        report = replay_decision(published, entity, AS_OF)
        assert not report.matches
        assert [(d.field, d.recorded, d.replayed) for d in report.differences] == [
            ("store.class", forged, original)]
    finally:
        with engine.begin() as connection:
            connection.execute(update(enterprise_scores)
                               .where(enterprise_scores.c.uscc == entity)
                               .values(risk_class=original))


def test_replay_uses_the_stored_policy_and_says_the_file_changed(published: Settings,
                                                                 tmp_path: Path) -> None:
    from dataclasses import replace

    from serving.nightly import replay_decision
    from supervision.policy import default_policy_text

    changed = tmp_path / "policy.yaml"
    original = default_policy_text()
    assert "hysteresis_margin: 0.01\n" in original
    changed.write_text(original.replace("hysteresis_margin: 0.01\n", "hysteresis_margin: 0.03\n"),
                       encoding="utf-8")
    report = replay_decision(replace(published, policy_path=changed), _some_entity(published),
                             AS_OF)
    assert report.matches, report.format()
    assert any("policy file changed" in note for note in report.notes)


def test_replay_needs_the_runs_snapshot_and_a_published_date(published: Settings,
                                                            tmp_path: Path) -> None:
    from dataclasses import replace

    runner = CliRunner()
    env = {"RISKMATRIX_DB_URL": published.database_url}
    missing_date = runner.invoke(audit_app, ["replay", "X", "--as-of", "2020-01-01", "--home",
                                             str(published.home)], env=env)
    assert missing_date.exit_code == 2 and "no published run" in missing_date.output
    elsewhere = replace(published, home=tmp_path)
    from serving.nightly import replay_decision
    from serving.scoring import ServingError

    with pytest.raises(ServingError, match="no longer under"):
        replay_decision(elsewhere, _some_entity(published), pd.Timestamp(AS_OF))


def test_verify_command_exit_codes(published: Settings) -> None:
    runner = CliRunner()
    env = {"RISKMATRIX_DB_URL": published.database_url}
    ok = runner.invoke(audit_app, ["verify", "--home", str(published.home)], env=env)
    assert ok.exit_code == 0 and "audit chain intact" in ok.output
    engine = open_store(published.database_url)
    with engine.begin() as connection:
        saved = connection.execute(text("SELECT payload FROM audit_log WHERE seq = 7")).scalar()
        connection.execute(update(audit_log).where(audit_log.c.seq == 7)
                           .values(payload=saved.replace('"class":"', '"class":"X')))
    try:
        broken = runner.invoke(audit_app, ["verify", "--home", str(published.home)], env=env)
        assert broken.exit_code == 1 and "seq 7" in broken.output
    finally:
        with engine.begin() as connection:
            connection.execute(update(audit_log).where(audit_log.c.seq == 7)
                               .values(payload=saved))


@pytest.mark.parametrize("entity", ["91440105MA5ABCDE1X", 'quote " back \\ slash', "换行\n制表\t",
                                    "\u2028 \x00 \x1f \ud7ff", "", None])
@pytest.mark.parametrize("run_id", [None, 0, 7, 2**40])
def test_record_text_fast_scalars_equal_the_canonical_encoder(entity: str | None,
                                                              run_id: int | None) -> None:
    """The read trail's direct scalar path must hash exactly what `verify_chain` expects."""
    assembled = {"as_of": "2026-10-01", "entity": entity, "kind": "decision.read",
                 "payload": {"reader": "张三", "role": "inspector"},
                 "recorded_at": "2026-11-29T02:00:00.000001+00:00", "run_id": run_id,
                 "seq": 12}
    assert record_text(12, "decision.read", assembled["recorded_at"], entity, "2026-10-01",
                       run_id, canonical_json(assembled["payload"])) == canonical_json(assembled)
