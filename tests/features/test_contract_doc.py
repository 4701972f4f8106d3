"""docs/contract.md is generated from the contract and must never drift from it."""

from __future__ import annotations

from pathlib import Path

from features.contract import TABLES
from features.contract_doc import REGENERATE, render_contract_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def test_committed_contract_doc_matches_the_contract() -> None:
    rendered = render_contract_markdown()
    committed = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert committed == rendered, (
        f"docs/contract.md is out of date with features/contract.py; regenerate it with "
        f"`{REGENERATE}`"
    )


def test_doc_names_every_table_column_rule_and_enum_label() -> None:
    text = render_contract_markdown()
    for table in TABLES.values():
        assert f"### {table.name}\n" in text
        assert table.zh in text and table.en in text
        for column in table.columns:
            assert f"| `{column.name}` | {column.zh} |" in text
        for rule in table.rules:
            assert f"| `{rule.name}` | {rule.zh} | {rule.en} |" in text
    assert "| `limited_company` | 有限责任公司 / limited liability company |" in text
    assert "| [ENTITY_TYPES](#entity_types) |" in text
    assert "0 … 1,000,000,000" in text  # registered capital range
    assert "`enterprises.uscc`" in text
    assert "YYYY/MM/DD" in text and "gb18030" in text
