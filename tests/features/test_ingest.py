"""The malformed corpus: each case corrupts a copy of the valid base district in one
documented way and states exactly which rejects (table, row, column, rule) it must produce.

The base lives in tests/data/malformed/base (see the README there); the corruptions are the
`CASES` below, so a case is readable in one place: what is broken, and what ingest says.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from features.contract import TABLES, RowRule, Table
from features.ingest import (
    ROW_CHECKS,
    IngestError,
    UnknownRuleError,
    ingest_directory,
    row_checks_for,
)
from features.snapshot import load_snapshot
from features.uscc import make_code

BASE = Path(__file__).resolve().parents[1] / "data" / "malformed" / "base"
E8 = "91440105MA0UJH6R5N"  # the one enterprise nothing else refers to

Corruption = Callable[[Path], None]
Expected = tuple[str, int, str, str]  # table, row, column, rule


def read_rows(directory: Path, table: str) -> list[list[str]]:
    with (directory / f"{table}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write_rows(directory: Path, table: str, rows: list[list[str]]) -> None:
    with (directory / f"{table}.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def set_cell(table: str, row: int, column: str, value: str) -> Corruption:
    """Data row `row` (1-based) of `table` gets `value` in `column`."""

    def corrupt(directory: Path) -> None:
        rows = read_rows(directory, table)
        rows[row][rows[0].index(column)] = value
        write_rows(directory, table, rows)

    return corrupt


def append_copy(table: str, row: int, changes: dict[str, str] | None = None) -> Corruption:
    """Append a copy of data row `row`, optionally changed, as the table's last row."""

    def corrupt(directory: Path) -> None:
        rows = read_rows(directory, table)
        copy = list(rows[row])
        for column, value in (changes or {}).items():
            copy[rows[0].index(column)] = value
        write_rows(directory, table, [*rows, copy])

    return corrupt


def edit_text(table: str, edit: Callable[[str], str]) -> Corruption:
    def corrupt(directory: Path) -> None:
        path = directory / f"{table}.csv"
        path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")

    return corrupt


def both(*corruptions: Corruption) -> Corruption:
    def corrupt(directory: Path) -> None:
        for corruption in corruptions:
            corruption(directory)

    return corrupt


def insert_after_line(line: int, text: str) -> Callable[[str], str]:
    def edit(content: str) -> str:
        lines = content.split("\n")
        return "\n".join([*lines[:line], text, *lines[line:]])

    return edit


@dataclass(frozen=True)
class Case:
    name: str
    corrupt: Corruption
    expected: list[Expected]
    message_en: str = ""  # a fragment the first reject's English message must contain
    message_zh: str = ""
    lines: list[int] = field(default_factory=list)  # file lines of the rejects, if not row+1


UNKNOWN_ENTERPRISE = make_code("91440105", 999_999)

CASES = [
    Case("int_not_a_number", set_cell("enterprises", 8, "employees", "abc"),
         [("enterprises", 8, "employees", "type")],
         "value 'abc' is not an integer", "值 'abc' 不是整数"),
    Case("month_13", set_cell("enterprises", 8, "established_date", "2024-13-01"),
         [("enterprises", 8, "established_date", "type")], "is not a valid date"),
    Case("february_30_skips_dependent_rule",
         set_cell("projects", 7, "planned_completion_date", "2025-02-30"),
         [("projects", 7, "planned_completion_date", "type")], "'2025-02-30' is not a valid"),
    Case("float_not_a_number", set_cell("inspections", 1, "inclusion_probability", "5%"),
         [("inspections", 1, "inclusion_probability", "type")], "is not a number"),
    Case("bool_not_a_boolean", set_cell("projects", 7, "crowded_surroundings", "maybe"),
         [("projects", 7, "crowded_surroundings", "type")], "is not a boolean"),
    Case("required_missing", set_cell("enterprises", 8, "name", "   "),
         [("enterprises", 8, "name", "required")],
         "required column name is empty", "必填字段 name 为空"),
    Case("not_in_enum", set_cell("enterprises", 8, "entity_type", "company"),
         [("enterprises", 8, "entity_type", "allowed")],
         "value 'company' is not one of {limited_company, joint_stock",
         "值 'company' 不在允许范围 {limited_company"),
    Case("below_minimum", set_cell("enterprises", 8, "registered_capital", "-5"),
         [("enterprises", 8, "registered_capital", "minimum")],
         "value '-5' is below the minimum 0", "小于最小值 0"),
    Case("above_maximum", set_cell("projects", 7, "storeys", "250"),
         [("projects", 7, "storeys", "maximum")], "value '250' is above the maximum 200"),
    Case("too_long", set_cell("enterprises", 8, "industry_code", "F51910"),
         [("enterprises", 8, "industry_code", "max_length")],
         "length 6 exceeds the maximum 5"),
    Case("uscc_wrong_check_character",
         set_cell("enterprises", 8, "uscc", E8[:-1] + ("A" if E8[-1] != "A" else "B")),
         [("enterprises", 8, "uscc", "uscc_check")],
         "has a wrong check character", "校验位错误"),
    Case("uscc_lower_case", set_cell("enterprises", 8, "uscc", E8.lower()),
         [("enterprises", 8, "uscc", "uscc_check")], "outside GB 32100"),
    Case("uscc_wrong_length", set_cell("enterprises", 8, "uscc", E8[:-1]),
         [("enterprises", 8, "uscc", "uscc_check")], "must have 18 characters, not 17"),
    Case("duplicate_key_names_first_row",
         append_copy("enterprise_events", 2, {"detail": "重复导出"}),
         [("enterprise_events", 13, "event_id", "unique_key")],
         "key 'EV2023-0002' duplicates row 2 (line 3); the first is kept", "与第 2 行"),
    Case("duplicate_composite_key", append_copy("digital_tags", 1, {"source": "rule"}),
         [("digital_tags", 6, "uscc,tag", "unique_key")], "duplicates row 1"),
    Case("reference_to_unknown_enterprise",
         set_cell("inspections", 6, "uscc", UNKNOWN_ENTERPRISE),
         [("inspections", 6, "uscc", "reference")],
         "is not among the accepted rows of enterprises.uscc"),
    Case("reference_to_unknown_inspection",
         set_cell("project_events", 2, "inspection_id", "PI2099-999"),
         [("project_events", 2, "inspection_id", "reference")],
         "not among the accepted rows of project_inspections.inspection_id"),
    Case("reference_to_rejected_enterprise_cascades",
         set_cell("enterprises", 5, "ownership_type", "private_owned"),
         [("enterprises", 5, "ownership_type", "allowed"),
          ("inspections", 9, "uscc", "reference"),
          ("project_participants", 3, "uscc", "reference"),
          ("project_participants", 6, "uscc", "reference"),
          ("inspector_conflicts", 3, "uscc", "reference")]),
    Case("status_date_when_closed", set_cell("enterprises", 8, "status_date", ""),
         [("enterprises", 8, "status,status_date", "status_date_when_closed")],
         "status_date is required when status is revoked or cancelled"),
    Case("status_date_after_established",
         set_cell("enterprises", 8, "status_date", "2010-01-01"),
         [("enterprises", 8, "established_date,status_date", "status_date_after_established")],
         "established_date=2017-04-21; status_date=2010-01-01"),
    Case("known_before_occurred",
         both(set_cell("enterprise_events", 3, "known_date", "2023-08-01"),
              set_cell("project_events", 1, "known_date", "2023-03-01")),
         [("enterprise_events", 3, "occurred_date,known_date", "known_not_before_occurred"),
          ("project_events", 1, "occurred_date,known_date", "known_not_before_occurred")],
         "known_date must not be before occurred_date", "知悉日期不得早于发生日期"),
    Case("grade_for_tax_grade", set_cell("enterprise_events", 5, "grade", ""),
         [("enterprise_events", 5, "event_type,grade", "grade_for_tax_grade")]),
    Case("report_year_for_annual_report", set_cell("enterprise_events", 1, "report_year", ""),
         [("enterprise_events", 1, "event_type,report_year", "report_year_for_annual_report")]),
    Case("severity_for_monitoring_hit",
         both(set_cell("enterprise_events", 9, "severity", ""),
              set_cell("enterprise_events", 7, "severity", "")),
         [("enterprise_events", 7, "event_type,severity", "severity_for_monitoring_hit"),
          ("enterprise_events", 9, "event_type,severity", "severity_for_monitoring_hit")]),
    Case("known_before_inspection",
         both(set_cell("inspections", 4, "known_date", "2023-07-01"),
              set_cell("project_inspections", 5, "known_date", "2024-01-15")),
         [("project_inspections", 5, "inspection_date,known_date",
           "known_not_before_inspection"),
          ("inspections", 4, "inspection_date,known_date", "known_not_before_inspection")]),
    Case("inclusion_probability_for_random_draw",
         set_cell("inspections", 1, "inclusion_probability", ""),
         [("inspections", 1, "source,inclusion_probability",
           "inclusion_probability_for_random_draw")]),
    Case("campaign_for_random_draw", set_cell("inspections", 2, "campaign_id", ""),
         [("inspections", 2, "source,campaign_id", "campaign_for_random_draw")]),
    Case("inspector_not_in_roster",
         both(set_cell("inspections", 5, "inspectors", "I008;I099"),
              set_cell("project_inspections", 3, "inspectors", "I404;I004;I405")),
         [("project_inspections", 3, "inspectors", "inspectors_exist"),
          ("inspections", 5, "inspectors", "inspectors_exist")],
         "every inspector id must be in the inspector roster (unknown: I404, I405)"),
    Case("over_scale_within_dangerous",
         set_cell("projects", 7, "over_scale_dangerous_works", "2"),
         [("projects", 7, "dangerous_works,over_scale_dangerous_works",
           "over_scale_within_dangerous")]),
    Case("planned_after_permit",
         set_cell("projects", 7, "planned_completion_date", "2024-06-30"),
         [("projects", 7, "permit_date,planned_completion_date", "planned_after_permit")]),
    Case("stage_for_stage_change", set_cell("project_events", 3, "stage", ""),
         [("project_events", 3, "event_type,stage", "stage_for_stage_change")]),
    Case("one_row_three_broken_columns",
         both(set_cell("enterprises", 8, "employees", "-3"),
              set_cell("enterprises", 8, "established_date", "2017/4/31"),
              set_cell("enterprises", 8, "entity_type", "llp")),
         [("enterprises", 8, "established_date", "type"),
          ("enterprises", 8, "entity_type", "allowed"),
          ("enterprises", 8, "employees", "minimum")]),
    Case("ragged_row", edit_text("inspector_conflicts", lambda t: t.replace(
        "2023-01-06", "2023-01-06,多余字段")),
         [("inspector_conflicts", 2, "", "field_count")],
         "5 fields but the header has 4 columns", "字段数 5 与表头列数 4 不符"),
    Case("line_numbers_after_multiline_value",
         both(set_cell("enterprise_events", 2, "detail", "消费者投诉\n直播间虚假宣传"),
              set_cell("enterprise_events", 10, "severity", "high")),
         [("enterprise_events", 10, "severity", "allowed")], lines=[12]),
    Case("line_numbers_after_multiline_value_and_blank_line",
         both(set_cell("enterprise_events", 2, "detail", "消费者投诉\n直播间虚假宣传"),
              set_cell("enterprise_events", 10, "severity", "high"),
              edit_text("enterprise_events", insert_after_line(6, ""))),
         [("enterprise_events", 10, "severity", "allowed")], lines=[13]),
]


def copy_base(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(BASE, source)
    return source


def rejects_of(report_dir: Path) -> pd.DataFrame:
    return pd.read_csv(report_dir / "rejects.csv", dtype=str, keep_default_na=False,
                       encoding="utf-8-sig")


def test_base_district_ingests_without_rejects(tmp_path: Path) -> None:
    report = ingest_directory(BASE, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert all(c.accepted == c.read > 0 for c in report.tables.values())
    assert rejects_of(report.snapshot_dir).empty


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_case_gives_exactly_the_expected_rejects(tmp_path: Path, case: Case) -> None:
    source = copy_base(tmp_path)
    case.corrupt(source)
    report = ingest_directory(source, tmp_path / "snapshots")
    rejects = rejects_of(report.snapshot_dir)
    found = [(str(r["table"]), int(r["row"]), str(r["column"]), str(r["rule"]))
             for r in rejects.to_dict("records")]
    assert sorted(found) == sorted(case.expected)
    first = rejects.iloc[0]
    assert case.message_en in first["message_en"]
    assert case.message_zh in first["message_zh"]
    assert first["file"] == f"{first['table']}.csv"
    expected_lines = case.lines or [int(r) + 1 for r in rejects["row"]]
    assert [int(x) for x in rejects["line"]] == expected_lines
    rejected_rows = {(t, r) for t, r, _, _ in case.expected}
    snapshot = load_snapshot(report.snapshot_dir)
    for table, counts in report.tables.items():
        broken = sum(1 for t, _ in rejected_rows if t == table)
        assert counts.rejected == broken
        assert counts.accepted == counts.read - broken
        assert len(snapshot[table]) == counts.accepted


def test_corpus_breaks_every_rule_at_least_once() -> None:
    column_rules = {"type", "required", "allowed", "minimum", "maximum", "max_length",
                    "uscc_check", "unique_key", "reference", "field_count"}
    broken = {rule for case in CASES for *_, rule in case.expected}
    assert column_rules | set(ROW_CHECKS) <= broken
    contract_rules = {rule.name for table in TABLES.values() for rule in table.rules}
    assert contract_rules <= broken


def test_reject_value_is_the_text_as_exported(tmp_path: Path) -> None:
    source = copy_base(tmp_path)
    set_cell("enterprises", 2, "employees", " ４x ")(source)
    report = ingest_directory(source, tmp_path / "snapshots")
    reject = rejects_of(report.snapshot_dir).iloc[0]
    assert (reject["value"], reject["rule"]) == (" ４x ", "type")


def test_rows_of_only_separators_are_skipped_not_rejected(tmp_path: Path) -> None:
    source = copy_base(tmp_path)
    edit_text("inspectors", lambda t: t + ",,,,,\n,,,,,\n")(source)
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert report.tables["inspectors"].blank_rows == 2
    assert report.tables["inspectors"].read == 8


# --- fatal cases: IngestError naming the file, and no snapshot at all ------------------


def drop_column(table: str, column: str) -> Corruption:
    def corrupt(directory: Path) -> None:
        rows = read_rows(directory, table)
        index = rows[0].index(column)
        write_rows(directory, table, [r[:index] + r[index + 1:] for r in rows])

    return corrupt


def rename_header(table: str, old: str, new: str) -> Corruption:
    def corrupt(directory: Path) -> None:
        rows = read_rows(directory, table)
        rows[0][rows[0].index(old)] = new
        write_rows(directory, table, rows)

    return corrupt


def write_bytes(name: str, data: bytes) -> Corruption:
    def corrupt(directory: Path) -> None:
        (directory / name).write_bytes(data)

    return corrupt


def remove(name: str) -> Corruption:
    def corrupt(directory: Path) -> None:
        (directory / name).unlink()

    return corrupt


def invalid_byte_at_second_name(directory: Path) -> None:
    path = directory / "enterprises.csv"
    data = path.read_bytes()
    offset = data.index("广州琶洲".encode())
    path.write_bytes(data[:offset] + b"\xff" + data[offset:])


def first_chinese_byte() -> int:
    """Where a GB18030 copy of the base enterprises file stops being valid UTF-8."""
    data = (BASE / "enterprises.csv").read_bytes()
    return data.index("广州市海珠区珠江".encode())


def reencode(table: str, encoding: str) -> Corruption:
    def corrupt(directory: Path) -> None:
        path = directory / f"{table}.csv"
        path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))

    return corrupt


FATAL_CASES = [
    ("missing_required_column", drop_column("enterprises", "legal_rep_name"),
     ["enterprises.csv", "missing required column(s) ['legal_rep_name']", "缺少必填列"]),
    ("unknown_header", rename_header("projects", "storeys", "floors"),
     ["projects.csv", "unknown column(s) ['floors']", "未知列"]),
    ("duplicate_header", rename_header("inspectors", "certificate_no", "name"),
     ["inspectors.csv", "duplicated header column(s) ['name']", "表头列名重复"]),
    ("empty_file", write_bytes("digital_tags.csv", b""),
     ["digital_tags.csv", "file is empty", "文件为空"]),
    ("bom_only_file", write_bytes("digital_tags.csv", b"\xef\xbb\xbf\r\n"),
     ["digital_tags.csv", "file is empty"]),
    ("unreadable_parquet",
     both(remove("digital_tags.csv"), write_bytes("digital_tags.parquet", b"PAR1 not really")),
     ["digital_tags.parquet", "cannot read Parquet file", "无法读取 Parquet 文件"]),
    ("csv_and_parquet_for_one_table",
     write_bytes("inspectors.parquet", (BASE / "inspectors.csv").read_bytes()),
     ["inspectors.csv", "inspectors.parquet", "keep exactly one"]),
    ("utf16_excel_unicode_text", reencode("enterprises", "utf-16"),
     ["enterprises.csv", "UTF-16", 'save it as "CSV UTF-8"']),
    ("required_table_missing", remove("enterprises.csv"),
     ["enterprises.csv", "required table missing", "缺少必需的表"]),
    ("invalid_utf8_byte", invalid_byte_at_second_name,
     ["enterprises.csv", "invalid utf-8 byte at offset "
      + str((BASE / "enterprises.csv").read_bytes().index("广州琶洲".encode())),
      'encoding="gb18030"']),
    ("gb18030_file_read_as_utf8", reencode("enterprises", "gb18030"),
     ["enterprises.csv", f"invalid utf-8 byte at offset {first_chinese_byte()}",
      '请使用 encoding="gb18030"', 'pass encoding="gb18030"']),
]


@pytest.mark.parametrize("name,corrupt,fragments", FATAL_CASES, ids=[c[0] for c in FATAL_CASES])
def test_fatal_case_raises_and_writes_nothing(tmp_path: Path, name: str, corrupt: Corruption,
                                             fragments: list[str]) -> None:
    source = copy_base(tmp_path)
    corrupt(source)
    root = tmp_path / "snapshots"
    with pytest.raises(IngestError) as raised:
        ingest_directory(source, root)
    for fragment in fragments:
        assert fragment in str(raised.value)
    assert not root.exists() or list(root.iterdir()) == []


def test_unknown_row_rule_cannot_be_skipped() -> None:
    table = Table("t", "表", "table", TABLES["projects"].columns, ("project_id",),
                  rules=(RowRule("no_such_rule", "不存在", "missing", ("stage",)),))
    with pytest.raises(UnknownRuleError, match="no_such_rule"):
        row_checks_for(table)
