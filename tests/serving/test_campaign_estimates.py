"""`riskmatrix campaign estimates` and `export-inspections` on a simulated district.

A market campaign is planned, drawn, assigned and given recorded outcomes through the CLI (as
in test_campaign_cli); the exported rows must ingest cleanly beside the district's other tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_campaign_cli import MARKET, MARKET_ID, app_for, invoke, later_clock
from test_campaign_store import Clock, district_roster, snapshot_tables, write_snapshot

from features.contract import TABLES
from features.ingest import ingest_directory
from simulation.io import write_table

KNOWN_DATE = "2026-10-08"


@pytest.fixture(scope="module")
def recorded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose market campaign has every drawn firm's outcome recorded (one in three
    firms with a problem, so every class has both outcomes in expectation)."""
    home = tmp_path_factory.mktemp("home")
    write_snapshot(home)
    app = app_for(Clock())
    assert invoke(app, home, "plan", *MARKET).exit_code == 0
    assert invoke(app, home, "draw", MARKET_ID).exit_code == 0
    app = app_for(later_clock())
    assert invoke(app, home, "assign", MARKET_ID).exit_code == 0
    assert invoke(app, home, "visits").exit_code == 0
    template_path = home / "template.csv"
    assert invoke(app, home, "results", MARKET_ID, "--template", "--file",
                  str(template_path)).exit_code == 0
    rows = pd.read_csv(template_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    firms = sorted(set(rows["uscc"]))
    problem = {u for i, u in enumerate(firms) if i % 3 == 0}
    rows["outcome"] = ["order_to_correct" if u in problem else "no_problem"
                       for u in rows["uscc"]]
    rows["inspection_date"] = "2026-10-06"
    filled = home / "filled.csv"
    rows.to_csv(filled, index=False)
    recorded = invoke(app, home, "results", MARKET_ID, "--file", str(filled))
    assert recorded.exit_code == 0, recorded.output
    return home


def test_estimates_cover_every_drawn_class_and_overall_with_intervals(
    recorded_home: Path,
) -> None:
    app = app_for(later_clock())
    shown = invoke(app, recorded_home, "estimates", MARKET_ID)
    assert shown.exit_code == 0, shown.output
    assert "问题发生率估计" in shown.output and "总体 overall" in shown.output
    result = invoke(app, recorded_home, "estimates", MARKET_ID, "--json")
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output)
    assert parsed["campaigns"] == [MARKET_ID]
    table = pd.DataFrame(parsed["estimates"]).set_index("domain")
    drawn = pd.read_csv(recorded_home / "campaigns" / MARKET_ID / "results.csv", dtype=str)
    classes = set(drawn["class"])
    assert classes and set(table.index) == classes | {"overall"}
    for domain, row in table.iterrows():
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"], domain
        assert row["ci_low"] >= 0 and row["ci_high"] <= 1
    overall = table.loc["overall"]
    assert overall["sampled"] == drawn["uscc"].nunique()
    assert 0 < overall["estimate"] < 1 and overall["ci_low"] < overall["ci_high"]
    assert overall["effective_sample_size"] > 0
    # weighted by N_h / n_h (N_h from the draw evidence), not the raw hit rate that the
    # over-sampled high-risk classes dominate
    firms = drawn.groupby("uscc").agg(stratum=("stratum", "first"),
                                      problem=("outcome", lambda s: (s != "no_problem").any()))
    evidence = json.loads((recorded_home / "campaigns" / MARKET_ID / "evidence.json")
                          .read_text(encoding="utf-8"))
    population = {s["stratum"]: s["population"] for s in evidence["strata"]}
    weight = firms["stratum"].map(population) / firms["stratum"].map(firms["stratum"]
                                                                     .value_counts())
    hajek = float((weight * firms["problem"]).sum() / weight.sum())
    assert overall["estimate"] == pytest.approx(hajek)
    assert hajek != pytest.approx(float(firms["problem"].mean()), abs=1e-3)
    pooled = invoke(app, recorded_home, "estimates", "--all", "--json")
    assert json.loads(pooled.output)["estimates"] == parsed["estimates"]


def test_exported_inspections_have_contract_columns_and_ingest_without_rejects(
    recorded_home: Path, tmp_path: Path,
) -> None:
    app = app_for(later_clock())
    source = tmp_path / "next-ingest"
    source.mkdir()
    out = source / "inspections.csv"
    exported = invoke(app, recorded_home, "export-inspections", MARKET_ID, "--out", str(out),
                      "--known-date", KNOWN_DATE)
    assert exported.exit_code == 0, exported.output
    rows = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8")
    assert list(rows.columns) == TABLES["inspections"].column_names
    assert len(rows) > 0 and set(rows["source"]) == {"random_draw"}
    assert set(rows["known_date"]) == {KNOWN_DATE}
    probabilities = pd.to_numeric(rows["inclusion_probability"])
    assert ((probabilities > 0) & (probabilities <= 1)).all()
    assert set(rows["uscc"]) <= set(district_roster().index)

    for name, frame in snapshot_tables().items():
        if name != "inspections":
            write_table(frame, source / f"{name}.parquet", "parquet")
    report = ingest_directory(source, tmp_path / "snapshots")
    counts = report.tables["inspections"]
    assert counts.rejected == 0, (tmp_path / "snapshots", report.rule_counts)
    assert counts.accepted == len(rows)


def test_export_and_estimates_refuse_a_campaign_without_results(
    recorded_home: Path, tmp_path: Path,
) -> None:
    app = app_for(later_clock())
    home = tmp_path / "home"
    write_snapshot(home)
    assert invoke(app, home, "plan", *MARKET).exit_code == 0
    campaign_id = MARKET_ID.replace("20261005", "20261006")
    out = tmp_path / "x.csv"
    export = invoke(app, home, "export-inspections", campaign_id, "--out", str(out))
    assert export.exit_code == 2 and "record results" in export.output
    assert not out.exists()
    none_yet = invoke(app, home, "estimates", "--all")
    assert none_yet.exit_code == 2 and "no campaign with recorded results" in none_yet.output
    both = invoke(app, recorded_home, "estimates", MARKET_ID, "--all")
    assert both.exit_code == 2 and "exactly one" in both.output
