"""`riskmatrix campaign ...` end to end on a simulated district, and `simulate-policy`.

The roster comes from the simulator's true classes (injected in place of a trained champion);
the snapshot is a real one written under a temporary home.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import typer
import yaml
from test_campaign_store import START, Clock, district_roster, snapshot_tables, write_snapshot
from typer.testing import CliRunner, Result

from serving import campaign_store as cs
from serving.cli_campaign import (
    RosterSource,
    SnapshotTables,
    build_campaign_app,
    current_snapshot_tables,
    simulate_policy,
)
from serving.files import sha256_bytes
from supervision.policy import default_policy_text
from supervision.publication import INTERNAL_COLUMNS, PUBLIC_COLUMNS

MARKET = ["--department", "market", "--items", "SC-GS-01;SC-SP-02", "--period-start",
          "2026-10-10", "--period-end", "2026-12-31"]
MARKET_ID = "market-20261005-01"
runner = CliRunner()


def app_for(
    clock: Clock, tables: dict[str, pd.DataFrame] | None = None
) -> typer.Typer:
    """The campaign app with the true-class roster and, optionally, edited snapshot tables."""
    snapshot: Callable[..., SnapshotTables] = (
        current_snapshot_tables if tables is None
        else (lambda settings: SnapshotTables("edited", tables)))
    return build_campaign_app(
        roster_provider=lambda settings: RosterSource(district_roster(), {"model": "truth"}),
        snapshot_provider=snapshot, clock=clock, actor=lambda: "tester")


def invoke(app: typer.Typer, home: Path, *args: str) -> Result:
    result = runner.invoke(app, [*args, "--home", str(home)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def drawn_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a snapshot and one market campaign planned and drawn through the CLI."""
    home = tmp_path_factory.mktemp("home")
    write_snapshot(home)
    app = app_for(Clock())
    planned = invoke(app, home, "plan", *MARKET)
    assert planned.exit_code == 0, planned.output
    assert MARKET_ID in planned.output and "承诺摘要" in planned.output
    digest = json.loads((home / "campaigns" / MARKET_ID / "log.jsonl").read_text()
                        .splitlines()[0])["details"]["commitment_digest"]
    assert digest in planned.output
    drawn = invoke(app, home, "draw", MARKET_ID, "--public-entropy", "福彩3D 2026270")
    assert drawn.exit_code == 0, drawn.output
    assert "入样概率" in drawn.output and "种子已公开 / seed revealed" in drawn.output
    return home


@pytest.fixture
def home(drawn_home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(drawn_home, copy)
    return copy


def later_clock() -> Clock:
    return Clock(START + dt.timedelta(days=1))


def campaign_dir(home: Path, campaign_id: str = MARKET_ID) -> Path:
    return home / "campaigns" / campaign_id


def test_plan_prints_strata_and_a_draw_verifies_from_the_store_and_from_files(
    home: Path,
) -> None:
    app = app_for(later_clock())
    verified = invoke(app, home, "verify", MARKET_ID)
    assert verified.exit_code == 0, verified.output
    assert "一致 / match" in verified.output and "FAIL" not in verified.output
    directory = campaign_dir(home)
    digest = json.loads((directory / "commitment.json").read_text())
    published = cs.Campaign(MARKET_ID, directory).commitment().digest()
    assert digest["campaign_id"] == MARKET_ID
    from_files = invoke(app, home, "verify", "--evidence", str(directory / "evidence.json"),
                        "--roster", str(directory / "roster.parquet"), "--digest", published)
    assert from_files.exit_code == 0 and "一致 / match" in from_files.output
    listed = invoke(app, home, "list")
    assert MARKET_ID in listed.output and "抽取 / draw" in listed.output


def _tamper_evidence(home: Path) -> list[str]:
    path = campaign_dir(home) / "evidence.json"
    evidence = json.loads(path.read_text())
    drawn = {r["uscc"] for r in evidence["drawn"]}
    outsider = next(u for u in district_roster().index if u not in drawn)
    evidence["drawn"][0]["uscc"] = outsider
    path.write_text(json.dumps(evidence))
    return []


def _tamper_seed(home: Path) -> list[str]:
    path = campaign_dir(home) / "evidence.json"
    evidence = json.loads(path.read_text())
    evidence["seed"] = "0" * 64
    path.write_text(json.dumps(evidence))
    return []


def _tamper_roster(home: Path) -> list[str]:
    path = campaign_dir(home) / "roster.parquet"
    roster = pd.read_parquet(path)
    first_a = roster.index[roster["class"] == "A"][0]
    roster.loc[first_a, "class"] = "D"
    roster.to_parquet(path)
    return []


def _tamper_policy(home: Path) -> list[str]:
    policy = yaml.safe_load(default_policy_text())
    policy["sampling"]["ratio_sets"]["default"]["C"] = 0.35
    path = home / "edited-policy.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return ["--policy", str(path)]


@pytest.mark.parametrize(("tamper", "failed_check"), [
    (_tamper_evidence, "drawn_list"),
    (_tamper_seed, "seed_hash"),
    (_tamper_roster, "roster_hash"),
    (_tamper_policy, "policy_hash"),
])
def test_verify_detects_a_changed_list_seed_roster_or_policy(
    home: Path, tamper: Callable[[Path], list[str]], failed_check: str
) -> None:
    extra = tamper(home)
    result = invoke(app_for(later_clock()), home, "verify", MARKET_ID, *extra)
    assert result.exit_code == 1
    assert "不一致 / mismatch" in result.output
    assert f"[FAIL] {failed_check}" in result.output


def test_steps_out_of_order_and_re_draws_are_refused(home: Path, tmp_path: Path) -> None:
    app = app_for(later_clock())
    redraw = invoke(app, home, "draw", MARKET_ID)
    assert redraw.exit_code == 2 and "never re-run" in redraw.output
    second = invoke(app, home, "plan", *MARKET[:4], "--period-start", "2026-11-01",
                    "--period-end", "2026-11-30", "--budget", "60")
    assert second.exit_code == 0, second.output
    second_id = "market-20261006-01"
    early = invoke(app, home, "assign", second_id)
    assert early.exit_code == 2
    assert "尚未完成「抽取」" in early.output and f"campaign draw {second_id}" in early.output
    assert not (campaign_dir(home, second_id) / "assignment.csv").exists()
    publish = invoke(app, home, "publish", MARKET_ID)
    assert publish.exit_code == 2 and "record results" in publish.output
    unknown = invoke(app, home, "show", "market-20990101-01")
    assert unknown.exit_code == 2 and "no campaign" in unknown.output
    empty = tmp_path / "empty-home"
    no_snapshot = invoke(app_for(later_clock()), empty, "plan", *MARKET)
    assert no_snapshot.exit_code == 2 and "ingest" in no_snapshot.output
    assert not (empty / "campaigns").exists() or not any((empty / "campaigns").iterdir())


def test_assignment_respects_recusal_and_names_targets_that_cannot_be_staffed(
    home: Path,
) -> None:
    tables = dict(snapshot_tables())
    market = sorted(tables["inspectors"].loc[tables["inspectors"]["department"] == "market",
                                              "inspector_id"].astype(str))
    drawn = cs.Campaign(MARKET_ID, campaign_dir(home)).evidence().drawn_frame()["uscc"]
    recused, unstaffable = str(drawn.iloc[0]), str(drawn.iloc[1])
    conflicts = pd.DataFrame({
        "inspector_id": market[:2] + market[:5],
        "uscc": [recused] * 2 + [unstaffable] * 5,
        "reason": "亲属关系 / relative", "declared_date": pd.Timestamp("2026-01-05"),
    })
    tables["inspector_conflicts"] = conflicts
    failed = invoke(app_for(later_clock(), tables), home, "assign", MARKET_ID)
    assert failed.exit_code == 2
    assert unstaffable in failed.output and "conflict of interest" in failed.output
    assert "需回避" in failed.output and recused not in failed.output
    assert not (campaign_dir(home) / "assignment.csv").exists()

    tables["inspector_conflicts"] = conflicts.iloc[:2]
    staffed = invoke(app_for(later_clock(), tables), home, "assign", MARKET_ID)
    assert staffed.exit_code == 0, staffed.output
    teams = pd.read_csv(campaign_dir(home) / "assignment.csv", dtype=str).set_index("uscc")
    assert len(teams) == len(drawn)
    assert teams["inspectors"].str.split(";").map(len).min() >= 2
    assert not set(str(teams.loc[recused, "inspectors"]).split(";")) & set(market[:2])


def test_joint_visits_merge_departments_and_lists_rank_by_risk(home: Path) -> None:
    app = app_for(later_clock())
    tax = invoke(app, home, "plan", "--department", "tax", "--items", "SW-FP-01",
                 "--period-start", "2026-10-25", "--period-end", "2026-12-31",
                 "--ratio-set", "yuexiu_2022")
    assert tax.exit_code == 0, tax.output
    tax_id = "tax-20261006-01"
    assert invoke(app, home, "draw", tax_id).exit_code == 0
    for campaign_id in (MARKET_ID, tax_id):
        assert invoke(app, home, "assign", campaign_id).exit_code == 0
    market_drawn = set(cs.Campaign(MARKET_ID, campaign_dir(home)).evidence()
                       .drawn_frame()["uscc"])
    tax_drawn = set(cs.Campaign(tax_id, campaign_dir(home, tax_id)).evidence()
                    .drawn_frame()["uscc"])
    both = market_drawn & tax_drawn
    assert both

    apart = invoke(app, home, "visits", "--window-days", "5")  # period starts 15 days apart
    assert apart.exit_code == 0 and "减少0次进门" in apart.output
    again = invoke(app, home, "visits")
    assert again.exit_code == 0 and "no assigned campaign awaits" in again.output
    merged = invoke(app, home, "visits", "--window-days", "30", "--force")
    assert merged.exit_code == 0, merged.output
    assert f"{len(both)} visits saved" in merged.output
    market_items = pd.read_csv(campaign_dir(home) / "visits.csv", dtype=str)
    tax_items = pd.read_csv(campaign_dir(home, tax_id) / "visits.csv", dtype=str)
    shared = set(market_items["visit_id"]) & set(tax_items["visit_id"])
    assert len(shared) == len(both)
    assert set(market_items.loc[market_items["visit_id"].isin(shared), "uscc"]) == both

    lists = invoke(app, home, "lists", MARKET_ID)
    assert lists.exit_code == 0 and "never publish" in lists.output
    joint_line = next(line for line in lists.output.splitlines() if "market;tax" in line)
    assert "SC-GS-01;SC-SP-02;SW-FP-01" in joint_line and "类 class" in joint_line
    ranked = [float(p) for p in re.findall(r"p=([0-9.]+)", lists.output.split("== ")[1])]
    assert ranked == sorted(ranked, reverse=True)
    everything = invoke(app, home, "lists", "--all")
    assert everything.output.count("== 执法小组") >= lists.output.count("== 执法小组")


def test_results_are_validated_and_publication_is_masked_without_classes(home: Path) -> None:
    app = app_for(later_clock())
    assert invoke(app, home, "assign", MARKET_ID).exit_code == 0
    assert invoke(app, home, "visits").exit_code == 0
    template_path = home / "template.csv"
    template = invoke(app, home, "results", MARKET_ID, "--template", "--file",
                      str(template_path))
    assert template.exit_code == 0 and "no_problem" in template.output
    rows = pd.read_csv(template_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    rows["outcome"] = ["order_to_correct" if i % 4 == 0 else "no_problem"
                       for i in range(len(rows))]
    rows["inspection_date"] = "2026-10-06"
    bad = rows.copy()
    bad.loc[1, "outcome"] = "warning"
    bad.loc[3, "inspection_date"] = "06/10/2026"
    bad_path = home / "bad.csv"
    bad.to_csv(bad_path, index=False)
    rejected = invoke(app, home, "results", MARKET_ID, "--file", str(bad_path))
    assert rejected.exit_code == 2
    assert "row 2, 列 column outcome" in rejected.output and "outcome_allowed" in rejected.output
    assert "row 4, 列 column inspection_date" in rejected.output
    assert not (campaign_dir(home) / "results.csv").exists()
    good_path = home / "good.csv"
    rows.to_csv(good_path, index=False)
    recorded = invoke(app, home, "results", MARKET_ID, "--file", str(good_path))
    assert recorded.exit_code == 0 and f"recorded: {len(rows)}" in recorded.output

    published = invoke(app, home, "publish", MARKET_ID)
    assert published.exit_code == 0, published.output
    assert "20个工作日" in published.output and "已公示 / published" in published.output
    exports = campaign_dir(home) / "exports"
    public = pd.read_csv(exports / "results.csv", dtype=str, encoding="utf-8-sig")
    assert list(public.columns) == PUBLIC_COLUMNS
    assert not set(public.columns) & INTERNAL_COLUMNS
    records = json.loads((exports / "results.json").read_text(encoding="utf-8"))
    assert len(records) == len(public) == len(rows)
    roster = district_roster()
    reps = roster.loc[public["uscc"], "legal_rep_name"].astype(str).to_numpy()
    assert all(re.fullmatch(r".\*+", masked) for masked in public["legal_representative"])
    assert not set(public["legal_representative"]) & set(reps)
    text = (exports / "results.csv").read_text(encoding="utf-8-sig")
    for secret in ("probability", "top_reasons", "近一年行政处罚"):
        assert secret not in text
    inspector_names = set(snapshot_tables()["inspectors"]["name"].astype(str))
    teams = ";".join(public["inspectors"])
    assert "**" in teams and not any(name in teams for name in inspector_names)
    shown = invoke(app, home, "show", MARKET_ID)
    assert "[x] 结果公示 / publish" in shown.output and "tester" in shown.output


def test_simulate_policy_finds_twice_the_problems_of_uniform_sampling(tmp_path: Path) -> None:
    cli = typer.Typer()
    cli.command("simulate-policy")(simulate_policy)
    cli.callback()(lambda: None)
    result = runner.invoke(cli, ["simulate-policy", "--enterprises", "1500", "--years", "2",
                                 "--cycles", "12", "--ratio-sets", "default,henan_2021",
                                 "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "true classes" in result.output
    table = {line.split()[0]: line.split() for line in result.output.splitlines()
             if line.strip().startswith(("default", "uniform@default", "henan_2021"))}
    default, uniform = table["default"], table["uniform@default"]
    assert default[1] == uniform[1]  # equal total inspections
    assert float(default[4].rstrip("×")) >= 2.0
    assert float(default[3]) >= 2 * float(uniform[3])
    assert int(default[5]) > 0  # 不免抽: class A keeps its floor
    unknown = runner.invoke(cli, ["simulate-policy", "--ratio-sets", "nope",
                                  "--home", str(tmp_path)])
    assert unknown.exit_code == 2 and "unknown ratio sets" in unknown.output


def test_each_campaign_action_is_audited_and_published_to_the_results_store(
    home: Path,
) -> None:
    from serving.audit import CAMPAIGN_EVENTS, records, verify_chain
    from serving.store import (
        campaign_actions_frame,
        campaigns_frame,
        draws_frame,
        open_store,
    )

    app = app_for(later_clock())
    assert invoke(app, home, "assign", MARKET_ID).exit_code == 0
    assert invoke(app, home, "visits").exit_code == 0
    template_path = home / "template.csv"
    invoke(app, home, "results", MARKET_ID, "--template", "--file", str(template_path))
    rows = pd.read_csv(template_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    rows["outcome"], rows["inspection_date"] = "no_problem", "2026-10-06"
    rows.to_csv(home / "good.csv", index=False)
    assert invoke(app, home, "results", MARKET_ID, "--file", str(home / "good.csv")
                  ).exit_code == 0
    assert invoke(app, home, "publish", MARKET_ID).exit_code == 0

    engine = open_store(f"sqlite:///{home / 'riskmatrix.db'}")
    try:
        events = records(engine, entity=MARKET_ID)
        assert [r.kind for r in events] == list(CAMPAIGN_EVENTS)
        log = cs.Campaign(MARKET_ID, campaign_dir(home)).log()
        commitment = events[0].payload
        assert commitment["details"]["commitment_digest"] == log[0]["details"][
            "commitment_digest"]
        evidence_hash = next(f["sha256"] for f in events[1].payload["files"]
                             if f["path"] == "evidence.json")
        assert evidence_hash == sha256_bytes((campaign_dir(home) / "evidence.json").read_bytes())

        campaign = campaigns_frame(engine).set_index("campaign_id").loc[MARKET_ID]
        assert campaign["status"] == "publish" and campaign["department"] == "market"
        assert campaign["commitment_digest"] == commitment["details"]["commitment_digest"]
        draw = draws_frame(engine, MARKET_ID).iloc[0]
        assert draw["drawn"] == len(cs.Campaign(MARKET_ID, campaign_dir(home)).evidence().drawn)
        assert draw["public_entropy"] == "福彩3D 2026270" and draw["evidence_sha256"] == \
            evidence_hash
        actions = campaign_actions_frame(engine, MARKET_ID)
        assert actions["action"].tolist() == ["plan", "draw", "assign", "publish"]
        assert actions["audit_seq"].tolist() == [r.seq for r in events]
        # a later action never publishes an earlier one twice
        assert cs.publish_records(cs.CampaignStore(home / "campaigns",
                                                   f"sqlite:///{home / 'riskmatrix.db'}"),
                                  cs.Campaign(MARKET_ID, campaign_dir(home))) == 0
        assert verify_chain(engine).ok
    finally:
        engine.dispose()


def test_an_action_whose_publication_failed_is_published_by_the_next_one(
    home: Path, tmp_path: Path,
) -> None:
    from serving.store import campaign_actions_frame, open_store

    url = f"sqlite:///{tmp_path / 'late.db'}"  # this store has never seen the campaign
    store = cs.CampaignStore(home / "campaigns", url)
    campaign = cs.Campaign(MARKET_ID, campaign_dir(home))
    assert cs.publish_records(store, campaign) == 2  # plan and draw, in log order
    engine = open_store(url)
    try:
        assert campaign_actions_frame(engine)["action"].tolist() == ["plan", "draw"]
    finally:
        engine.dispose()
