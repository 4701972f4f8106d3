"""Snapshots: typed round trip, equivalent encodings of the same data, atomic publication."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import snapshot as snapshot_module
from features.contract import TABLES
from features.ingest import IngestError, format_summary, ingest_directory
from features.snapshot import (
    CURRENT_POINTER,
    SnapshotError,
    current_snapshot,
    load_snapshot,
    snapshot_manifest,
)

BASE = Path(__file__).resolve().parents[1] / "data" / "malformed" / "base"
EXPECTED_DTYPES = {
    "date": "datetime64[ns]", "int": "Int64", "float": "float64", "bool": "boolean",
    "str": "string", "uscc": "string", "list": "string",
}


def source_rows(directory: Path, table: str) -> list[dict[str, str]]:
    with (directory / f"{table}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def as_text(value: object, kind: str) -> str:
    """A typed snapshot value written the way the base CSV writes it."""
    if pd.isna(value):  # type: ignore[call-overload]
        return ""
    if kind == "date":
        return pd.Timestamp(value).strftime("%Y-%m-%d")  # type: ignore[arg-type]
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() else str(number)
    return str(value)


@pytest.fixture(scope="module")
def base_snapshot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("snapshots")
    report = ingest_directory(BASE, root)
    assert report.total_rejected == 0
    return load_snapshot(report.snapshot_dir)


def test_snapshot_has_contract_columns_and_documented_dtypes(
        base_snapshot: dict[str, pd.DataFrame]) -> None:
    assert set(base_snapshot) == set(TABLES)
    for name, table in TABLES.items():
        frame = base_snapshot[name]
        assert list(frame.columns) == table.column_names
        for column in table.columns:
            assert str(frame[column.name].dtype) == EXPECTED_DTYPES[column.kind], column.name


def test_round_trip_gives_the_source_values(base_snapshot: dict[str, pd.DataFrame]) -> None:
    for name, table in TABLES.items():
        expected = source_rows(BASE, name)
        frame = base_snapshot[name]
        assert len(frame) == len(expected)
        for column in table.columns:
            got = [as_text(v, column.kind) for v in frame[column.name]]
            assert got == [row[column.name] for row in expected], f"{name}.{column.name}"


def test_missing_values_are_typed_missing(base_snapshot: dict[str, pd.DataFrame]) -> None:
    enterprises = base_snapshot["enterprises"]
    assert enterprises["status_date"].isna().sum() == 8
    assert enterprises["employees"].isna().sum() == 1
    assert base_snapshot["inspections"]["inclusion_probability"].isna().sum() == 5


def copy_base(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(BASE, source)
    return source


def rewrite(directory: Path, table: str, *, encoding: str = "utf-8", newline: str = "\n",
            transform: dict[str, object] | None = None) -> None:
    """Rewrite a base table, applying per-column functions to every value."""
    rows = source_rows(BASE, table)
    header = list(rows[0])
    functions = transform or {}
    with (directory / f"{table}.csv").open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator=newline)
        writer.writerow(header)
        for row in rows:
            writer.writerow([functions.get(c, lambda v: v)(row[c]) for c in header])  # type: ignore[operator]


def full_width(text: str) -> str:
    """What a Chinese input method in full-width mode types for ASCII text."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def assert_same_snapshot(report_dir: Path, base: dict[str, pd.DataFrame]) -> None:
    loaded = load_snapshot(report_dir)
    for name in TABLES:
        pd.testing.assert_frame_equal(loaded[name], base[name], check_exact=True)


def test_excel_bom_and_crlf_ingest_cleanly(tmp_path: Path,
                                           base_snapshot: dict[str, pd.DataFrame]) -> None:
    source = copy_base(tmp_path)
    for name in TABLES:
        rewrite(source, name, encoding="utf-8-sig", newline="\r\n")
    assert (source / "enterprises.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert_same_snapshot(report.snapshot_dir, base_snapshot)


def test_full_width_codes_numbers_dates_and_enums_ingest_cleanly(
        tmp_path: Path, base_snapshot: dict[str, pd.DataFrame]) -> None:
    source = copy_base(tmp_path)
    padded = {"status": lambda v: f"\u3000{full_width(v)} "}
    wide = dict.fromkeys(["uscc", "registered_capital", "established_date", "entity_type",
                          "industry_code"], full_width)
    rewrite(source, "enterprises", transform={**wide, **padded})
    rewrite(source, "inspections", transform=dict.fromkeys(
        ["uscc", "inspectors", "check_items", "inclusion_probability", "inspection_date"],
        full_width))
    assert "９１４４０１０５" in (source / "enterprises.csv").read_text(encoding="utf-8")
    assert "Ｉ００１；Ｉ００２" in (source / "inspections.csv").read_text(encoding="utf-8")
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert_same_snapshot(report.snapshot_dir, base_snapshot)


def test_names_keep_their_full_width_characters(tmp_path: Path) -> None:
    source = copy_base(tmp_path)
    rewrite(source, "enterprises", transform={"name": lambda v: v + "（ＡＢＣ）"})
    report = ingest_directory(source, tmp_path / "snapshots")
    names = load_snapshot(report.snapshot_dir)["enterprises"]["name"]
    assert names[0] == "广州市海珠区珠江数字科技有限公司（ＡＢＣ）"


def test_chinese_date_formats_are_accepted(tmp_path: Path,
                                           base_snapshot: dict[str, pd.DataFrame]) -> None:
    source = copy_base(tmp_path)
    styles = [lambda y, m, d: f"{y}/{int(m)}/{int(d)}", lambda y, m, d: f"{y}{m}{d}",
              lambda y, m, d: f"{y}年{int(m)}月{int(d)}日", lambda y, m, d: f"{y}.{m}.{d}",
              lambda y, m, d: f"{y}-{m}-{d} 00:00:00"]
    counter = iter(range(1000))

    def restyle(value: str) -> str:
        if not value:
            return value
        return styles[next(counter) % len(styles)](*value.split("-"))

    rewrite(source, "enterprises", transform={"established_date": restyle,
                                              "status_date": restyle})
    text = (source / "enterprises.csv").read_text(encoding="utf-8")
    assert "2015/3/12" in text and "20190820" in text and "2008年5月6日" in text
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert_same_snapshot(report.snapshot_dir, base_snapshot)


def test_gb18030_export_ingests_with_the_encoding_option(
        tmp_path: Path, base_snapshot: dict[str, pd.DataFrame]) -> None:
    source = copy_base(tmp_path)
    for name in TABLES:
        rewrite(source, name, encoding="gb18030")
    with pytest.raises(IngestError, match='encoding="gb18030"'):
        ingest_directory(source, tmp_path / "snapshots")
    report = ingest_directory(source, tmp_path / "snapshots", encoding="gb18030")
    assert report.total_rejected == 0
    assert_same_snapshot(report.snapshot_dir, base_snapshot)


def test_typed_parquet_sources_ingest_like_csv(tmp_path: Path,
                                               base_snapshot: dict[str, pd.DataFrame]) -> None:
    source = copy_base(tmp_path)
    for name in ("enterprises", "projects", "inspectors", "inspections"):
        (source / f"{name}.csv").unlink()
        frame = base_snapshot[name].copy()
        if name == "inspectors":  # lists as Arrow lists, as some exporters write them
            frame["fields"] = frame["fields"].str.split(";")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if name == "inspections":  # missing floats written as NaN, not null
            probability = pa.array(frame["inclusion_probability"].to_numpy(), from_pandas=False)
            assert probability.null_count == 0
            table = table.set_column(table.schema.get_field_index("inclusion_probability"),
                                     "inclusion_probability", probability)
        pq.write_table(table, source / f"{name}.parquet")
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert report.source_files["projects"] == "projects.parquet"
    assert_same_snapshot(report.snapshot_dir, base_snapshot)


def test_parquet_rejects_report_row_as_line(tmp_path: Path,
                                            base_snapshot: dict[str, pd.DataFrame]) -> None:
    source = copy_base(tmp_path)
    (source / "inspectors.csv").unlink()
    frame = base_snapshot["inspectors"].copy()
    frame.loc[2, "department"] = "police"
    frame.to_parquet(source / "inspectors.parquet", index=False)
    report = ingest_directory(source, tmp_path / "snapshots")
    rejects = pd.read_parquet(report.snapshot_dir / "rejects.parquet")
    first = rejects.iloc[0]
    assert (first["file"], first["row"], first["line"], first["rule"]) == (
        "inspectors.parquet", 3, 3, "allowed")


def test_only_enterprises_is_required_and_absent_tables_are_empty_typed(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "truth").mkdir(parents=True)
    shutil.copy(BASE / "enterprises.csv", source)
    shutil.copy(BASE / "digital_tags.csv", source)
    (source / "truth" / "labels.csv").write_text("x\n1\n", encoding="utf-8")
    (source / "notes.txt").write_text("说明", encoding="utf-8")
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.ignored_files == ("notes.txt", "truth/")
    assert report.tables["projects"].status == "absent"
    assert report.tables["digital_tags"].accepted == 5
    frames = load_snapshot(report.snapshot_dir)
    assert frames["projects"].empty
    assert str(frames["projects"]["permit_date"].dtype) == "datetime64[ns]"
    assert list(frames["projects"].columns) == TABLES["projects"].column_names


def test_reference_to_an_absent_table_says_so(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("enterprises", "inspections"):
        shutil.copy(BASE / f"{name}.csv", source)
    report = ingest_directory(source, tmp_path / "snapshots")
    rejects = pd.read_csv(report.rejects_path, encoding="utf-8-sig")
    assert set(rejects["rule"]) == {"inspectors_exist"}
    assert report.tables["inspections"].accepted == 0


def test_missing_optional_column_reads_as_missing(tmp_path: Path) -> None:
    source = copy_base(tmp_path)
    rows = source_rows(BASE, "enterprises")
    with (source / "enterprises.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, [c for c in rows[0] if c != "business_scope"],
                                extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.total_rejected == 0
    assert report.tables["enterprises"].missing_optional_columns == ("business_scope",)
    assert load_snapshot(report.snapshot_dir)["enterprises"]["business_scope"].isna().all()


def test_manifest_and_identical_input_give_the_same_input_hash(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    first = ingest_directory(BASE, root)
    second = ingest_directory(copy_base(tmp_path), root)
    assert first.input_hash == second.input_hash
    assert first.snapshot_id != second.snapshot_id
    assert current_snapshot(root) == second.snapshot_dir
    manifest = snapshot_manifest(second.snapshot_dir)
    assert manifest["input_hash"] == second.input_hash
    assert manifest["snapshot_id"] == second.snapshot_id
    assert manifest["contract_tables"] == list(TABLES)
    assert manifest["tables"]["projects"]["accepted"] == 7
    assert len(manifest["source_files"]["enterprises"]["sha256"]) == 64
    assert manifest["created_at"].endswith("+00:00")
    changed = copy_base(tmp_path / "changed")
    (changed / "notes.txt").write_text("ignored files do not change the hash")
    assert ingest_directory(changed, root).input_hash == first.input_hash
    (changed / "inspectors.csv").write_text(
        (BASE / "inspectors.csv").read_text(encoding="utf-8").replace("刘芳", "刘方"),
        encoding="utf-8")
    assert ingest_directory(changed, root).input_hash != first.input_hash


def snapshot_state(root: Path) -> tuple[list[str], str]:
    return sorted(p.name for p in root.iterdir()), (root / CURRENT_POINTER).read_text()


def test_fatal_error_leaves_previous_snapshot_current(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    ingest_directory(BASE, root)
    before = snapshot_state(root)
    source = copy_base(tmp_path)
    # The last table validated is broken: earlier tables were already staged.
    (source / "inspector_conflicts.csv").write_bytes(b"inspector_id,uscc\n")
    with pytest.raises(IngestError, match=r"inspector_conflicts\.csv"):
        ingest_directory(source, root)
    assert snapshot_state(root) == before


def test_crash_while_writing_leaves_no_half_snapshot(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "snapshots"
    ingest_directory(BASE, root)
    before = snapshot_state(root)
    written: list[str] = []
    original = snapshot_module._write_table

    def failing_write(directory: Path, name: str, frame: pd.DataFrame) -> None:
        if len(written) == 4:
            raise OSError("disk full (injected)")
        written.append(name)
        original(directory, name, frame)

    monkeypatch.setattr(snapshot_module, "_write_table", failing_write)
    with pytest.raises(OSError, match="injected"):
        ingest_directory(BASE, root)
    assert len(written) == 4
    assert snapshot_state(root) == before


def test_current_snapshot_without_any_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="riskmatrix ingest"):
        current_snapshot(tmp_path)
    (tmp_path / CURRENT_POINTER).write_text("20240101T000000Z-deadbeef0000\n")
    with pytest.raises(SnapshotError, match="missing or incomplete"):
        current_snapshot(tmp_path)


def test_rejects_csv_opens_in_excel_and_summary_is_bilingual(tmp_path: Path) -> None:
    source = copy_base(tmp_path)
    text = (source / "inspectors.csv").read_text(encoding="utf-8")
    (source / "inspectors.csv").write_text(text.replace(",fire,", ",police,"), encoding="utf-8")
    report = ingest_directory(source, tmp_path / "snapshots")
    assert report.rejects_path.read_bytes().startswith(b"\xef\xbb\xbf")
    rejects = pd.read_csv(report.rejects_path, encoding="utf-8-sig")
    assert list(rejects.columns) == ["table", "file", "row", "line", "column", "value", "rule",
                                     "message_zh", "message_en"]
    summary = format_summary(report)
    for label in ("表 / table", "读入 / read", "接受 / accepted", "拒绝 / rejected"):
        assert label in summary
    assert "allowed: 1" in summary  # the roster row
    assert "inspectors_exist: 1" in summary  # the inspection that named I007
    assert report.snapshot_id in summary
    manifest = json.loads((report.snapshot_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rejects"]["by_rule"] == {"allowed": 1, "inspectors_exist": 1}


def test_coerce_types_matches_the_snapshot_typing(base_snapshot: dict[str, pd.DataFrame]) -> None:
    frame = pd.DataFrame({
        "inspector_id": ["I100"], "name": ["测试"], "department": ["market"],
        "certificate_no": ["1"], "fields": [["market", "food"]], "active": [True],
    })
    typed = snapshot_module.coerce_types(TABLES["inspectors"], frame)
    assert typed.dtypes.equals(base_snapshot["inspectors"].dtypes)
    assert typed.loc[0, "fields"] == "market;food"
    with pytest.raises(ValueError, match="active"):
        snapshot_module.coerce_types(TABLES["inspectors"], frame.drop(columns="active"))
    spelled = frame.assign(active=["否"])
    assert snapshot_module.coerce_types(TABLES["inspectors"], spelled)["active"].tolist() == [False]
    assert np.all(typed.columns == TABLES["inspectors"].column_names)
