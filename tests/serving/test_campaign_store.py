"""The campaign store: files, order of steps, audit log, history and result validation.

Also holds the small simulated district (and its roster with true classes instead of a trained
model) that the CLI tests import, so both files share one simulation per session.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.contract import TABLES
from features.snapshot import coerce_types, staged_snapshot
from serving import campaign_store as cs
from serving.campaign_store import CampaignStore, CampaignStoreError
from serving.cli_campaign import build_spec, digital_undisturbed, roster_undisturbed
from simulation.district import DistrictConfig, simulate_district
from supervision.campaigns import CampaignError, CampaignSpec
from supervision.policy import load_policy
from supervision.sampling_policy import SamplingPolicy
from supervision.tagging import tag_enterprises

AS_OF = pd.Timestamp("2026-10-01")  # the day after the simulated records end
START = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
ROSTER_COLUMNS = ["name", "entity_type", "registered_capital", "employees", "industry_code",
                  "street", "registered_address", "legal_rep_name"]


@functools.cache
def district_tables() -> dict[str, pd.DataFrame]:
    """A 1,500-firm, 2-year simulated district, typed as a snapshot, plus its true classes."""
    district = simulate_district(DistrictConfig(enterprises=1500, years=2, seed=1))
    tables = {name: coerce_types(TABLES[name], frame) for name, frame in district.tables.items()}
    tables["_true_class"] = district.truth["enterprise_class"]
    return tables


@functools.cache
def district_roster() -> pd.DataFrame:
    """What `enterprise_roster` returns, with the simulator's true classes and risks standing
    in for a champion model (training one would take minutes), plus 无事不扰 flags."""
    tables = district_tables()
    firms = tables["enterprises"]
    firms = firms.loc[firms["status"] == "active"].set_index("uscc")
    truth = tables["_true_class"].set_index("uscc")
    roster = firms[ROSTER_COLUMNS].join(truth[["true_class", "true_risk"]], how="inner")
    roster = roster.rename(columns={"true_class": "class", "true_risk": "probability"})
    roster["top_reasons_zh"] = "近一年行政处罚；投诉增多"
    roster["top_reasons_en"] = "penalty in the last year; more complaints"
    roster["digital_undisturbed"] = digital_undisturbed(tables, AS_OF, roster.index,
                                                        load_policy().digital)
    return roster


def snapshot_tables() -> dict[str, pd.DataFrame]:
    return {name: frame for name, frame in district_tables().items() if name in TABLES}


def write_snapshot(home: Path, tables: dict[str, pd.DataFrame] | None = None) -> None:
    with staged_snapshot(home / "snapshots") as stage:
        for name, frame in (tables or snapshot_tables()).items():
            stage.write_table(name, frame)
        stage.commit("simulated", {"input_hash": "simulated-district-seed-1"})


class Clock:
    """A clock that moves five minutes per reading, so every step happens after the last."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=5)
        return self.now


def sampling() -> SamplingPolicy:
    policy = load_policy().sampling
    assert policy is not None
    return policy


def market_spec(store: CampaignStore, **changes: Any) -> CampaignSpec:
    arguments: dict[str, Any] = {
        "department": "market", "items": "SC-GS-01;SC-SP-02", "item_kind": "general",
        "period_start": "2026-10-10", "period_end": "2026-12-31",
    }
    arguments.update(changes)
    return build_spec(store.next_id(arguments["department"], START.date()), **arguments)


def planned(tmp_path: Path, **changes: Any) -> tuple[CampaignStore, cs.PlanRecord]:
    store = CampaignStore(tmp_path / "campaigns")
    spec = market_spec(store, **changes)
    history = cs.plan_history(store, snapshot_tables()["inspections"])
    record = cs.plan(store, spec, district_roster(), sampling(), history,
                     actor="tester", now=START)
    return store, record


def test_plan_freezes_the_roster_seals_the_seed_and_logs_every_file(tmp_path: Path) -> None:
    store, record = planned(tmp_path)
    campaign = record.campaign
    assert campaign.campaign_id == "market-20261005-01"
    assert store.next_id("market", START.date()) == "market-20261005-02"
    seed_file = campaign.file(cs.SEALED_SEED)
    assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
    seed = seed_file.read_text()
    commitment_text = campaign.file(cs.COMMITMENT).read_text()
    assert seed not in commitment_text
    assert hashlib.sha256(seed.encode()).hexdigest() == record.commitment.seed_sha256
    frozen = campaign.roster()
    assert len(frozen) == len(district_roster()) == record.commitment.roster_rows
    assert frozen["class"].equals(district_roster()["class"])
    (entry,) = campaign.log()
    assert entry["action"] == "plan" and entry["actor"] == "tester"
    assert entry["details"]["commitment_digest"] == record.commitment.digest()
    for written in entry["files"]:
        data = campaign.file(written["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == written["sha256"]
    assert campaign.status == "plan"
    assert not [p for p in campaign.directory.iterdir() if p.name.startswith(".")]


def test_a_plan_that_fails_leaves_no_campaign_behind(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "campaigns")
    with pytest.raises(CampaignError, match="budget 3 is below"):
        spec = market_spec(store, budget=3, ratio_set=None)
        cs.plan(store, spec, district_roster(), sampling(), None,
                actor="tester", now=START)
    assert store.campaign_ids() == []
    assert not any((tmp_path / "campaigns").iterdir())


def test_steps_refuse_to_run_out_of_order_or_twice(tmp_path: Path) -> None:
    store, record = planned(tmp_path)
    cid = record.campaign.campaign_id
    tables = snapshot_tables()
    with pytest.raises(CampaignStoreError, match="draw"):
        cs.assign(store, cid, tables["inspectors"], None, None, actor="t", now=START)
    with pytest.raises(CampaignStoreError, match="joint visits"):
        cs.record(store, cid, pd.DataFrame(), "r.csv", actor="t", now=START)
    with pytest.raises(CampaignStoreError, match="record results"):
        cs.publish(store, cid, tables["inspectors"], actor="t", now=START)
    assert cs.merge_visits(store, 30, actor="t", now=START).joint is None

    later = START + dt.timedelta(hours=1)
    cs.draw(store, cid, "", actor="t", now=later)
    with pytest.raises(CampaignStoreError, match="never re-run"):
        cs.draw(store, cid, "", actor="t", now=later)
    first = cs.assign(store, cid, tables["inspectors"], None, None, actor="t", now=later)
    with pytest.raises(CampaignStoreError, match="--force"):
        cs.assign(store, cid, tables["inspectors"], None, None, actor="t", now=later)
    again = cs.assign(store, cid, tables["inspectors"], None, None, actor="t", now=later,
                      force=True)
    assert again.equals(first)  # seeded by the revealed draw seed: reproducible
    cs.merge_visits(store, 30, actor="t", now=later)
    with pytest.raises(CampaignStoreError, match="already used"):
        cs.assign(store, cid, tables["inspectors"], None, None, actor="t", now=later,
                  force=True)
    assert [e["action"] for e in record.campaign.log()] == [
        "plan", "draw", "assign", "assign", "visits"]
    with pytest.raises(CampaignStoreError, match="no campaign"):
        store.campaign("market-20990101-01")


def test_firms_drawn_earlier_this_year_are_excluded_from_the_next_plan(tmp_path: Path) -> None:
    store, first = planned(tmp_path)
    evidence = cs.draw(store, first.campaign.campaign_id, "", actor="t",
                       now=START + dt.timedelta(hours=1))
    drawn = {r.uscc for r in evidence.drawn}
    history = cs.plan_history(store, snapshot_tables()["inspections"])
    spec = market_spec(store, items="SC-GS-01", period_start="2026-11-01")
    second = cs.plan(store, spec, district_roster(), sampling(), history,
                     actor="t", now=START + dt.timedelta(hours=2))
    assert drawn <= set(second.commitment.excluded)
    assert not drawn & set(second.frame.units["uscc"])
    snapshot_draws = snapshot_tables()["inspections"]
    snapshot_draws = snapshot_draws.loc[(snapshot_draws["source"] == "random_draw")
                                        & (snapshot_draws["inspection_date"].dt.year == 2026)]
    assert set(first.commitment.excluded) <= set(snapshot_draws["uscc"].astype(str))


def test_verify_from_published_files_and_refuses_a_csv_roster(tmp_path: Path) -> None:
    store, record = planned(tmp_path)
    campaign = record.campaign
    cs.draw(store, campaign.campaign_id, "lottery 2026-10-05", actor="t",
            now=START + dt.timedelta(hours=1))
    result = cs.verify_files(campaign.file(cs.EVIDENCE), campaign.file(cs.ROSTER), sampling(),
                             published_digest=record.commitment.digest())
    assert result.match
    csv_roster = tmp_path / "roster.csv"
    campaign.roster().to_csv(csv_roster)
    with pytest.raises(CampaignStoreError, match="Parquet"):
        cs.verify_files(campaign.file(cs.EVIDENCE), csv_roster, sampling())
    wrong_digest = cs.verify_files(campaign.file(cs.EVIDENCE), campaign.file(cs.ROSTER),
                                   sampling(), published_digest="0" * 64)
    assert not wrong_digest.match and wrong_digest.failed == ["commitment_digest"]


def test_results_are_validated_all_or_nothing_with_row_column_and_rule(tmp_path: Path) -> None:
    store, record = planned(tmp_path)
    cid = record.campaign.campaign_id
    later = START + dt.timedelta(days=2)
    cs.draw(store, cid, "", actor="t", now=START + dt.timedelta(hours=1))
    cs.assign(store, cid, snapshot_tables()["inspectors"], None, None, actor="t", now=later)
    cs.merge_visits(store, 30, actor="t", now=later)
    template = cs.results_template(store, cid)
    assert template["outcome"].eq("").all() and template["enterprise_name"].notna().all()
    filled = template.astype(str).copy()
    filled["outcome"] = "no_problem"
    filled["inspection_date"] = "2026-10-06"
    filled.loc[1, "outcome"] = "fine_paid"
    filled.loc[2, "inspection_date"] = "2026/10/06"
    filled.loc[3, "inspection_date"] = "2026-09-01"  # before the draw
    filled.loc[4, "check_item"] = "NOT-AN-ITEM"
    filled.loc[5, ["visit_id", "check_item"]] = filled.loc[6, ["visit_id", "check_item"]]
    with pytest.raises(CampaignStoreError) as error:
        cs.record(store, cid, filled, "results.csv", actor="t", now=later)
    message = str(error.value)
    for expected in ("row 2, 列 column outcome", "outcome_allowed", "row 3, 列 column "
                     "inspection_date", "(规则 rule date)", "row 4", "date_in_range", "row 5",
                     "item_in_visit", "row 7", "unique_result", "nothing recorded"):
        assert expected in message
    assert not record.campaign.done("results")

    ok = template.astype(str).copy()
    ok["outcome"] = ["order_to_correct" if i % 5 == 0 else "no_problem" for i in range(len(ok))]
    ok["inspection_date"] = "2026-10-06"
    ok.loc[ok.index[-3:], "outcome"] = ""  # not inspected yet: pending
    stored = cs.record(store, cid, ok, "results.csv", actor="t", now=later)
    assert stored.recorded == len(ok) - 3 and stored.pending == 3
    published = cs.publish(store, cid, snapshot_tables()["inspectors"], actor="t", now=later)
    assert published.rows == len(ok) - 3 and published.pending == 3
    assert set(published.deadlines["status"]) == {"published"}


def test_undisturbed_flags_only_tagged_firms_without_an_open_case() -> None:
    """无事不扰: tagged and no open trigger case (evaluated at as_of, or from a case book)."""
    tables = snapshot_tables()
    roster = district_roster()
    flagged = set(roster.index[roster["digital_undisturbed"]])
    digital = load_policy().digital
    assert digital is not None
    tagged = set(tag_enterprises(tables["enterprises"], tables["digital_tags"], digital,
                                 AS_OF)["uscc"].astype(str))
    # the trigger engine opens cases on recent evidence: those tagged firms are disturbed
    assert flagged and flagged < tagged
    one = sorted(flagged)[0]
    book = pd.DataFrame({
        "case_id": [f"DT-{one}-20260901"], "uscc": [one], "opened_on": [pd.Timestamp("2026-09-01")],
        "updated_on": [pd.Timestamp("2026-09-01")], "status": ["open"], "closed_on": [pd.NaT],
        "rules_fired": [["complaint_surge"]], "evidence": [[]], "action": ["inspection"],
        "severity": ["general"],
    })
    with_case = digital_undisturbed(tables, AS_OF, roster.index, load_policy().digital,
                                    open_cases=book)
    assert not with_case[one]
    assert set(with_case.index[with_case]) == (tagged & set(roster.index)) - {one}
    untagged = roster.index[~roster.index.isin(list(tagged))]
    assert not with_case[untagged].any()


def test_log_is_append_only_json_lines(tmp_path: Path) -> None:
    store, record = planned(tmp_path)
    before = record.campaign.file(cs.LOG).read_bytes()
    cs.draw(store, record.campaign.campaign_id, "x", actor="alice",
            now=START + dt.timedelta(hours=1))
    after = record.campaign.file(cs.LOG).read_bytes()
    assert after.startswith(before)
    last = json.loads(after.decode().splitlines()[-1])
    assert last["actor"] == "alice" and last["details"]["public_entropy"] == "x"
    assert {f["path"] for f in last["files"]} == {cs.EVIDENCE, cs.NOTICE}


def test_campaign_rosters_take_the_trigger_runs_stored_flags_when_there_are_any(
    tmp_path: Path,
) -> None:
    from serving import case_store
    from serving.settings import load_settings

    settings = load_settings(tmp_path)
    tables, roster = snapshot_tables(), district_roster()
    computed, source = roster_undisturbed(settings, tables, AS_OF, roster.index,
                                          load_policy().digital)
    assert computed.equals(roster["digital_undisturbed"]) and source.startswith("computed")
    stored = pd.Series(True, index=pd.Index(roster.index[:3], name="uscc"))
    case_store.write_undisturbed(settings, stored, AS_OF)
    flags, source = roster_undisturbed(settings, tables, AS_OF, roster.index,
                                       load_policy().digital)
    assert source == "trigger run 2026-10-01"
    assert list(flags.index[flags]) == list(roster.index[:3])
    nothing, _ = roster_undisturbed(load_settings(tmp_path / "other"), tables, AS_OF,
                                    roster.index, None)
    assert not nothing.any()


def test_a_damaged_campaign_file_is_a_clear_error(tmp_path: Path) -> None:
    store, record = planned(tmp_path)
    record.campaign.file(cs.COMMITMENT).write_text("{not json", encoding="utf-8")
    with pytest.raises(CampaignStoreError, match="damaged or unreadable"):
        cs.draw(store, record.campaign.campaign_id, "", actor="t", now=START)
