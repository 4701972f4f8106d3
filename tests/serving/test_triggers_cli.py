"""`riskmatrix triggers` as an operator uses it on a small simulated district, run night after
night: cases with their evidence, a re-run that changes nothing, updates, closing, the
cool-down, the "无事不扰" flags, and the evaluation on a simulated district."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.ingest import ingest_directory
from features.snapshot import current_snapshot, load_snapshot
from serving import case_store
from serving.cli_triggers import (
    Classification,
    build_triggers_app,
    engine_classes,
    trigger_snapshot,
)
from serving.settings import load_settings
from simulation.district import DistrictConfig, simulate_district
from simulation.io import write_district
from supervision.policy import load_policy
from supervision.tagging import tag_enterprises, tagged_firms
from supervision.triggers import evaluate_triggers

RUNNER = CliRunner()
WATCHED_EVENT_TYPES = ["complaint", "monitoring_hit", "case_lead", "abnormal_list_in", "penalty",
                       "serious_dishonesty_in", "public_opinion"]


class TruthClasses:
    """Classes from the simulated truth, with per-date overrides (a firm falling to C or D)."""

    def __init__(self, truth: pd.DataFrame) -> None:
        self.truth = truth.set_index("uscc")
        self.overrides: dict[pd.Timestamp, dict[str, str]] = {}

    def __call__(self, settings: Any, as_of: pd.Timestamp) -> Classification:
        classes = self.truth["true_class"].astype(str).copy()
        for firm, value in self.overrides.get(as_of, {}).items():
            classes[firm] = value
        frame = pd.DataFrame({"class": classes, "probability": self.truth["true_risk"],
                              "top_reasons_zh": "模拟真值", "top_reasons_en": "simulated truth"})
        return Classification(frame, "simulated truth")


@pytest.fixture(scope="module")
def district_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("triggers")
    district = simulate_district(DistrictConfig(enterprises=1_500, years=2, seed=5))
    write_district(district, root / "source", fmt="parquet")
    home = root / "home"
    ingest_directory(root / "source", home / "snapshots")
    provider = TruthClasses(district.truth["enterprise_class"])
    end = pd.Timestamp(district.config.end_date)
    days = [end - pd.Timedelta(days=60) + pd.Timedelta(weeks=w) for w in range(4)]
    return {"home": home, "provider": provider, "app": build_triggers_app(provider),
            "days": days}


def invoke(app: Any, *args: str, code: int = 0) -> str:
    result = RUNNER.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def iso(day: pd.Timestamp) -> str:
    return f"{day:%Y-%m-%d}"


def quiet_tagged_firm(home: Path, day: pd.Timestamp, until: pd.Timestamp,
                      classes: pd.Series, exclude: set[str]) -> str:
    """A tagged firm without an open case at `day` and no watched records near the runs."""
    flags = case_store.load_undisturbed(load_settings(home))
    events = load_snapshot(current_snapshot(home / "snapshots"))["enterprise_events"]
    watched = events["event_type"].isin(WATCHED_EVENT_TYPES)
    near = (events["known_date"] >= day - pd.Timedelta(days=60)) & (events["known_date"] <= until)
    busy = set(events.loc[watched & near, "uscc"].astype(str))
    candidates = [u for u in flags.index[flags.to_numpy()].astype(str)
                  if u not in busy and u not in exclude and classes.get(u) in ("A", "B")]
    assert candidates, "the small district should have a quiet tagged firm"
    return candidates[0]


def test_nightly_runs_open_update_close_and_cool_down(district_home: dict[str, Any]) -> None:
    app, home, provider = district_home["app"], str(district_home["home"]), \
        district_home["provider"]
    d0, d1, d2, d3 = district_home["days"]
    settings = load_settings(district_home["home"])
    true_class = provider.truth["true_class"].astype(str)

    # Night 0: cases opened with their evidence.
    first = invoke(app, "--as-of", iso(d0), "--home", home)
    book = case_store.load_case_book(settings)
    opened = book.loc[book["opened_on"] == d0]
    assert len(opened) > 3 and book["case_id"].is_unique
    assert "带标签企业 / tagged firms" in first and "无事不扰 / undisturbed" in first
    for case in opened.itertuples():
        assert f"[新立案件 / case opened] {case.case_id}" in first
    sample = opened.iloc[0]
    item = sample["evidence"][0]
    assert item["zh"] in first and item["en"] in first and "阈值 / threshold" in first
    assert f"分类 / class: {true_class[str(sample['uscc'])]}" in first

    # The same night again: nothing evaluated, nothing written, nothing duplicated.
    book_file = case_store.cases_dir(settings) / case_store.BOOK
    before = book_file.read_bytes()
    again = invoke(app, "--as-of", iso(d0), "--home", home)
    assert "已运行" in again and "already run" in again
    assert book_file.read_bytes() == before
    assert len(case_store.load_case_book(settings)) == len(book)
    logged = [e["case_id"] for e in case_store.read_log(settings) if e["event"] == "opened"]
    assert sorted(logged) == sorted(opened["case_id"]) and len(set(logged)) == len(logged)
    # ...and an earlier night is refused with one clear message.
    refused = invoke(app, "--as-of", iso(d0 - pd.Timedelta(days=1)), "--home", home, code=2)
    assert "before the last recorded run" in refused and "Traceback" not in refused

    # Night 1: firm X falls from A/B to D -> a class-drop case; close it the same day.
    firm_x = quiet_tagged_firm(district_home["home"], d0, d3, true_class,
                               set(book["uscc"].astype(str)))
    provider.overrides[d1] = {firm_x: "D"}
    night1 = invoke(app, "run", "--as-of", iso(d1), "--home", home)
    case_x = f"DT-{firm_x}-{d1:%Y%m%d}"
    assert f"[新立案件 / case opened] {case_x}" in night1
    assert f"信用风险分类由{true_class[firm_x]}类降为D类" in night1
    closed = invoke(app, "close", case_x, "--reason", "约谈后已整改 / rectified after a talk",
                    "--home", home)
    assert "已办结 / closed" in closed and iso(d1) in closed
    invoke(app, "close", case_x, "--reason", "again", "--home", home, code=2)

    # Night 2: firm Y, whose night-0 case is still open, falls to D -> its case is updated.
    still_open = case_store.load_case_book(settings)
    still_open = still_open.loc[(still_open["status"] == "open")
                                & (still_open["opened_on"] == d0)]
    firm_y_case = next(c for c in still_open.itertuples() if true_class.get(str(c.uscc)) != "D")
    provider.overrides[d2] = {str(firm_y_case.uscc): "D"}
    night2 = invoke(app, "--as-of", iso(d2), "--home", home)
    assert f"[并入在办案件 / open case updated] {firm_y_case.case_id}" in night2
    updated = case_store.load_case_book(settings).set_index("case_id").loc[firm_y_case.case_id]
    assert updated["updated_on"] == d2 and "class_drop" in updated["rules_fired"]
    assert updated["risk_class"] == "D"

    # Night 3: X falls again (to C, less severe than the closed case's D) within the cool-down.
    provider.overrides[d3] = {firm_x: "C"}
    night3 = invoke(app, "--as-of", iso(d3), "--home", home)
    assert "suppressed by cool-down" in night3
    suppressed_section = night3.split("a recently closed case dealt with the same rule")[1]
    assert firm_x in suppressed_section
    cases_x = case_store.load_case_book(settings)
    assert cases_x.loc[cases_x["uscc"] == firm_x, "case_id"].tolist() == [case_x]

    # The case list: all cases with the closing reason; --open leaves the closed one out.
    listing = invoke(app, "cases", "--home", home)
    assert case_x in listing and "约谈后已整改" in listing
    open_listing = invoke(app, "cases", "--open", "--home", home)
    assert case_x not in open_listing and firm_y_case.case_id in open_listing

    # "无事不扰" flags: tagged firms without an open case, written for the campaign planner.
    flags_text = invoke(app, "undisturbed", "--as-of", iso(d3), "--home", home)
    assert "undisturbed.parquet" in flags_text
    flags = case_store.load_undisturbed(settings)
    assert bool(flags[firm_x]) and not bool(flags[str(firm_y_case.uscc)])
    final = case_store.load_case_book(settings)
    with_case = set(final.loc[final["status"] == "open", "uscc"].astype(str))
    assert set(flags.index[~flags.to_numpy()].astype(str)) == with_case & set(flags.index)


def test_the_trimmed_trigger_tables_give_what_the_whole_snapshot_gives(
        district_home: dict[str, Any]) -> None:
    """The nightly reads only the tagged firms' registry rows and records (a 1M-firm district's
    full record table was its peak memory): same tags, same typing, same cases and firings."""
    snapshot_dir = current_snapshot(district_home["home"] / "snapshots")
    full = load_snapshot(snapshot_dir)
    digital = load_policy().digital
    assert digital is not None and not digital.apply_to_all_firms
    day = district_home["days"][-1]
    tables, tags = trigger_snapshot(snapshot_dir, digital, day)
    pd.testing.assert_frame_equal(
        tags, tag_enterprises(full["enterprises"], full["digital_tags"], digital, day))
    tagged = set(tags["uscc"].astype(str))
    assert 0 < len(tagged) < len(full["enterprises"])
    assert set(tables["enterprises"]["uscc"].astype(str)) == tagged
    events = full["enterprise_events"]
    kept = events.loc[events["uscc"].astype(str).isin(tagged), list(
        tables["enterprise_events"].columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(tables["enterprise_events"], kept)
    registry = tables["enterprises"].columns
    assert (tables["enterprises"].dtypes == full["enterprises"][registry].dtypes).all()
    classification = district_home["provider"](None, day)
    classes = engine_classes(classification, pd.Series([], dtype="string"), day)
    # reason texts loaded for the watched firms only give the same class frame
    texts = ["top_reasons_zh", "top_reasons_en"]
    asked: list[int] = []

    def load(firms: pd.Index) -> pd.DataFrame:
        asked.append(len(firms))
        return classification.classes.loc[firms.astype(str), texts]

    lazily = Classification(classification.classes.drop(columns=texts), "lazy", reasons=load)
    scope = tagged_firms(tags)
    pd.testing.assert_frame_equal(
        engine_classes(lazily, pd.Series([], dtype="string"), day, scope),
        engine_classes(classification, pd.Series([], dtype="string"), day, scope))
    assert asked == [len(scope)]
    results = [evaluate_triggers(snapshot, day, tags=tags, classes=classes, open_cases=None,
                                 policy=digital) for snapshot in (full, tables)]
    assert results[0].opened, "the small district should open cases"
    pd.testing.assert_frame_equal(results[1].cases, results[0].cases)
    pd.testing.assert_frame_equal(results[1].firings, results[0].firings)


def test_user_mistakes_exit_2_with_one_message(tmp_path: Path) -> None:
    app = build_triggers_app(lambda settings, as_of: pytest.fail("no classes needed"))
    no_snapshot = invoke(app, "--as-of", "2026-01-01", "--home", str(tmp_path), code=2)
    assert "riskmatrix ingest" in no_snapshot
    bad_date = invoke(app, "--as-of", "2026-13-01", "--home", str(tmp_path), code=2)
    assert "YYYY-MM-DD" in bad_date
    unknown = invoke(app, "close", "DT-X", "--reason", "r", "--home", str(tmp_path), code=2)
    assert "no case DT-X" in unknown


def test_evaluate_prints_the_figures_and_the_targets() -> None:
    app = build_triggers_app()
    output = invoke(app, "evaluate", "--enterprises", "1500", "--years", "2", "--seed", "5",
                    "--weeks", "8")
    for label in ("random-check hit rate", "precision", "recall", "median days problem → case",
                  "avoided", "serious problems reach",
                  "by rule", "class-driven routine sampling"):
        assert label in output, label
    targets = output.split("目标 / targets:")[1]
    assert targets.count("PASS") + targets.count("FAIL") == 3
    assert "8 (每周 / weekly" in output
