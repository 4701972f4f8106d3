"""The simulated tables obey every rule of the source-data contract, checked in plain pandas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import LIST_SEPARATOR, TABLES, Column, Table
from features.uscc import make_code, valid_mask
from simulation.district import SimulatedDistrict
from simulation.io import write_district

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string")


def _dates(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, format="%Y-%m-%d", errors="coerce")


def _column_problems(table: Table, frame: pd.DataFrame, column: Column) -> list[str]:
    values = frame[column.name]
    present = values.notna().to_numpy()
    problems: list[str] = []

    def report(rule: str, bad: np.ndarray) -> None:
        if bad.any():
            example = values[bad].iloc[0]
            problems.append(f"{table.name}.{column.name}: {rule} ({int(bad.sum())} rows, "
                            f"e.g. {example!r})")

    if column.required:
        report("required", ~present)
    text = _text(values)
    if column.kind == "uscc":
        report("uscc check character", present & ~valid_mask(values.fillna("")))
    elif column.kind == "date":
        shaped = text.str.match(DATE_PATTERN).fillna(False).to_numpy(dtype=bool)
        parsed = _dates(values).notna().to_numpy()
        report("ISO date", present & ~(shaped & parsed))
    elif column.kind == "bool":
        report("bool", present & ~values.isin([True, False]).to_numpy())
    elif column.kind in ("int", "float"):
        numbers = pd.to_numeric(values, errors="coerce")
        report("number", present & numbers.isna().to_numpy())
        if column.kind == "int":
            report("integer", present & (numbers.fillna(0) % 1 != 0).to_numpy())
        if column.minimum is not None:
            report("minimum", present & (numbers < column.minimum).fillna(False).to_numpy())
        if column.maximum is not None:
            report("maximum", present & (numbers > column.maximum).fillna(False).to_numpy())
    elif column.kind == "list":
        items = text.fillna("").str.split(LIST_SEPARATOR)
        empty_item = items.map(lambda parts: any(p.strip() == "" for p in parts))
        report("list items", present & empty_item.to_numpy(dtype=bool))
    if column.allowed is not None:
        report("allowed values", present & ~values.isin(column.allowed).to_numpy())
    if column.max_length is not None:
        too_long = (text.str.len() > column.max_length).fillna(False).to_numpy(dtype=bool)
        report("max length", present & too_long)
    return problems


def _reference_problems(tables: dict[str, pd.DataFrame], table: Table) -> list[str]:
    problems = []
    frame = tables[table.name]
    for column in table.columns:
        if column.references is None:
            continue
        target_table, target_column = column.references
        values = frame[column.name].dropna()
        missing = ~values.isin(set(tables[target_table][target_column]))
        if missing.any():
            problems.append(f"{table.name}.{column.name} -> {target_table}.{target_column}: "
                            f"{int(missing.sum())} dangling, e.g. {values[missing].iloc[0]!r}")
    return problems


def _not_before(frame: pd.DataFrame, earlier: str, later: str) -> np.ndarray:
    a, b = _dates(frame[earlier]), _dates(frame[later])
    return (b < a).fillna(False).to_numpy(dtype=bool)


def _required_when(frame: pd.DataFrame, column: str, condition: str,
                   values: tuple[str, ...]) -> np.ndarray:
    return (frame[condition].isin(values) & frame[column].isna()).to_numpy(dtype=bool)


def _inspectors_missing(frame: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> np.ndarray:
    roster = set(tables["inspectors"]["inspector_id"])
    return frame["inspectors"].astype(str).str.split(LIST_SEPARATOR).map(
        lambda ids: not set(ids) <= roster).to_numpy(dtype=bool)


RowCheck = Callable[[pd.DataFrame, dict[str, pd.DataFrame]], np.ndarray]
ROW_RULES: dict[str, RowCheck] = {
    "known_not_before_occurred": lambda f, t: _not_before(f, "occurred_date", "known_date"),
    "status_date_when_closed": lambda f, t: _required_when(
        f, "status_date", "status", ("revoked", "cancelled")),
    "status_date_after_established": lambda f, t: _not_before(
        f, "established_date", "status_date"),
    "grade_for_tax_grade": lambda f, t: _required_when(f, "grade", "event_type", ("tax_grade",)),
    "report_year_for_annual_report": lambda f, t: _required_when(
        f, "report_year", "event_type", ("annual_report",)),
    "severity_for_monitoring_hit": lambda f, t: _required_when(
        f, "severity", "event_type", ("monitoring_hit", "public_opinion")),
    "known_not_before_inspection": lambda f, t: _not_before(f, "inspection_date", "known_date"),
    "inclusion_probability_for_random_draw": lambda f, t: _required_when(
        f, "inclusion_probability", "source", ("random_draw",)),
    "campaign_for_random_draw": lambda f, t: _required_when(
        f, "campaign_id", "source", ("random_draw",)),
    "inspectors_exist": _inspectors_missing,
    "over_scale_within_dangerous": lambda f, t: (
        f["over_scale_dangerous_works"] > f["dangerous_works"]).to_numpy(dtype=bool),
    "planned_after_permit": lambda f, t: _not_before(f, "permit_date", "planned_completion_date"),
    "stage_for_stage_change": lambda f, t: _required_when(
        f, "stage", "event_type", ("stage_change",)),
}


def contract_problems(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Every broken contract rule, as readable lines (empty when the tables conform)."""
    problems: list[str] = []
    for name, table in TABLES.items():
        frame = tables[name]
        if list(frame.columns) != table.column_names:
            problems.append(f"{name}: columns {list(frame.columns)} != contract")
            continue
        for column in table.columns:
            problems += _column_problems(table, frame, column)
        problems += _reference_problems(tables, table)
        duplicated = frame.duplicated(subset=list(table.key)).to_numpy()
        if duplicated.any():
            problems.append(f"{name}: {int(duplicated.sum())} duplicate keys {table.key}")
        for rule in table.rules:
            bad = ROW_RULES[rule.name](frame, tables)
            if bad.any():
                problems.append(f"{name}: rule {rule.name} broken in {int(bad.sum())} rows")
    return problems


def test_every_contract_rule_has_a_check() -> None:
    rules = {rule.name for table in TABLES.values() for rule in table.rules}
    assert rules <= set(ROW_RULES), f"unchecked rules: {rules - set(ROW_RULES)}"


def test_tables_conform_to_contract(small_district: SimulatedDistrict) -> None:
    assert set(small_district.tables) == set(TABLES)
    assert contract_problems(small_district.tables) == []


def test_every_table_and_event_kind_is_populated(small_district: SimulatedDistrict) -> None:
    tables = small_district.tables
    assert all(len(frame) > 0 for frame in tables.values())
    event_types = set(tables["enterprise_events"]["event_type"])
    assert event_types == set(TABLES["enterprise_events"].column("event_type").allowed or ())
    project_events = set(tables["project_events"]["event_type"])
    assert project_events == set(TABLES["project_events"].column("event_type").allowed or ())
    assert set(tables["inspections"]["outcome"]) == set(
        TABLES["inspections"].column("outcome").allowed or ())


def test_codes_are_those_of_make_code(small_district: SimulatedDistrict) -> None:
    codes = small_district.tables["enterprises"]["uscc"]
    assert codes.str.slice(0, 8).isin(["91440105", "92440105", "93440105"]).all()
    sample = codes.iloc[[0, 1, 2, len(codes) - 1]]
    for code in sample:
        assert make_code(code[:8], _serial(code[8:17])) == code


def _serial(digits: str) -> int:
    from features.uscc import ALPHABET

    value = 0
    for ch in digits:
        value = value * 31 + ALPHABET.index(ch)
    return value


def test_records_respect_lifetimes(small_district: SimulatedDistrict) -> None:
    tables = small_district.tables
    firms = tables["enterprises"].set_index("uscc")
    end = small_district.config.end_date.isoformat()
    for name, date_column in (("enterprise_events", "occurred_date"),
                              ("inspections", "inspection_date")):
        frame = tables[name]
        established = frame["uscc"].map(firms["established_date"])
        closed = frame["uscc"].map(firms["status_date"]).fillna("9999-12-31")
        assert (frame[date_column] <= closed).all(), name
        assert (frame["known_date"] <= end).all(), name
        if name == "inspections":
            assert (frame[date_column] >= established).all()


def test_exempt_lapses_never_penalised(small_district: SimulatedDistrict) -> None:
    tables = small_district.tables
    penalties = tables["enterprise_events"].query("event_type == 'penalty'")
    assert penalties["item_code"].str.match(r"^WF-\d{3}$").all()
    exempt = tables["inspections"]["violation_code"].fillna("").str.startswith("GZMJ-")
    assert (tables["inspections"].loc[exempt, "outcome"] == "order_to_correct").all()


def test_inspectors_have_department_and_no_conflict(small_district: SimulatedDistrict) -> None:
    tables = small_district.tables
    roster = tables["inspectors"].set_index("inspector_id")
    conflicts = set(zip(tables["inspector_conflicts"]["inspector_id"],
                        tables["inspector_conflicts"]["uscc"], strict=True))
    assert conflicts, "the roster should declare some conflicts"
    for frame, department in ((tables["inspections"], None),
                              (tables["project_inspections"], "housing")):
        pairs = frame["inspectors"].str.split(LIST_SEPARATOR)
        assert (pairs.map(len) == 2).all()
        assert (pairs.map(lambda p: p[0] != p[1])).all()
        first = pairs.str[0].map(roster["department"])
        expected = frame["department"] if department is None else department
        assert (first == expected).all()
        if department is None:
            for ids, firm in zip(pairs, frame["uscc"], strict=True):
                assert (ids[0], firm) not in conflicts and (ids[1], firm) not in conflicts


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_accepts_every_row(small_district: SimulatedDistrict, tmp_path: Path,
                                  fmt: str) -> None:
    ingest = pytest.importorskip("features.ingest")
    source = tmp_path / "district"
    write_district(small_district, source, fmt=fmt)  # type: ignore[arg-type]
    report = ingest.ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0, report.rule_counts
    assert all(report.tables[name].accepted == len(small_district.tables[name]) for name in TABLES)


def test_registration_changes_use_the_contract_vocabulary() -> None:
    from features.contract import REGISTRATION_CHANGE_ITEMS
    from simulation.vocabulary import REGISTRATION_CHANGE_CODES

    assert set(REGISTRATION_CHANGE_CODES) <= set(REGISTRATION_CHANGE_ITEMS)
    assert {"legal_rep", "address"} <= set(REGISTRATION_CHANGE_CODES)
