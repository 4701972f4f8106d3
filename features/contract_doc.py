"""Render the source-data contract as Markdown (docs/contract.md), so the docs never drift.

    python -m features.contract_doc > docs/contract.md

Everything shown comes from `features.contract` (tables, columns, enums, row rules) and from
the ingest and snapshot modules (required tables, accepted formats, rule names, dtypes).
"""

from __future__ import annotations

import sys

from features import contract
from features.contract import LIST_SEPARATOR, TABLES, VALIDATION_ORDER, Column, Table
from features.ingest import (
    COLUMN_RULES,
    DATE_FORMATS,
    REQUIRED_TABLES,
    ROW_CHECK_NEEDS,
    is_free_text,
)
from features.snapshot import FALSE_TOKENS, KIND_DTYPES, TRUE_TOKENS

REGENERATE = "python -m features.contract_doc > docs/contract.md"
KIND_LABELS: dict[str, tuple[str, str]] = {
    "str": ("文本", "text"),
    "int": ("整数", "integer"),
    "float": ("数字", "number"),
    "date": ("日期", "date"),
    "bool": ("布尔值", "boolean"),
    "uscc": ("统一社会信用代码", "credit code"),
    "list": ("列表 (分号分隔)", "list (';'-separated)"),
}


def enum_names() -> dict[tuple[str, ...], str]:
    """Contract enum dicts by their codes, to label a column's allowed values."""
    names: dict[tuple[str, ...], str] = {}
    for name, value in vars(contract).items():
        if name.isupper() and isinstance(value, dict) and value and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            names.setdefault(tuple(value), name)
    return names


def _anchor(name: str) -> str:
    """GitHub's heading anchor for a plain identifier heading."""
    return name.lower()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _limits(column: Column, enums: dict[tuple[str, ...], str]) -> str:
    parts: list[str] = []
    if column.allowed is not None:
        enum = enums.get(column.allowed)
        if enum is not None:
            parts.append(f"[{enum}](#{_anchor(enum)})")
        else:
            parts.append(", ".join(f"`{code}`" for code in column.allowed))
    if column.minimum is not None or column.maximum is not None:
        low = _number(column.minimum) if column.minimum is not None else "-∞"
        high = _number(column.maximum) if column.maximum is not None else "∞"
        parts.append(f"{low} … {high}")
    if column.max_length is not None:
        parts.append(f"≤ {column.max_length} 字符 / chars")
    if column.kind == "uscc":
        parts.append("GB 32100 校验位 / check character")
    return "; ".join(parts)


def _references(table: Table, column: Column) -> str:
    if column.references:
        return f"`{column.references[0]}.{column.references[1]}`"
    needs = [
        f"`{t}.{c}` (每一项 / each item)"
        for rule in table.rules if column.name in rule.columns
        for t, c in ROW_CHECK_NEEDS.get(rule.name, ())
    ]
    return ", ".join(needs)


def render_table(table: Table, enums: dict[tuple[str, ...], str]) -> list[str]:
    required = ("是 / yes" if table.name in REQUIRED_TABLES
                else "否 / no (缺省为空表 / absent = empty)")
    key = ", ".join(f"`{k}`" for k in table.key)
    lines = [
        f"### {table.name}",
        "",
        f"**{table.zh}** / {table.en}",
        "",
        f"- 文件 / file: `{table.name}.csv` 或 / or `{table.name}.parquet`",
        f"- 必需的表 / required table: {required}",
        f"- 键 / key: {key} (唯一 / unique)",
        f"- 验证顺序 / validation order: {VALIDATION_ORDER.index(table.name) + 1}",
        "",
        "| 列 / column | 含义 | meaning | 类型 / type | 必填 / required | 取值 / values | "
        "引用 / references |",
        "|---|---|---|---|---|---|---|",
    ]
    for column in table.columns:
        zh_kind, en_kind = KIND_LABELS[column.kind]
        kind = f"{zh_kind} / {en_kind}"
        if is_free_text(table, column):
            kind += " (自由文本 / free text)"
        reference = _references(table, column)
        lines.append(
            f"| `{column.name}` | {_cell(column.zh)} | {_cell(column.en)} | {kind} | "
            f"{'是 / yes' if column.required else '否 / no'} | {_cell(_limits(column, enums))} | "
            f"{reference} |"
        )
    if table.rules:
        lines += ["", "行规则 / row rules:", "", "| 规则 / rule | 中文 | English | 列 / columns |",
                  "|---|---|---|---|"]
        for rule in table.rules:
            columns = ", ".join(f"`{c}`" for c in rule.columns)
            lines.append(f"| `{rule.name}` | {_cell(rule.zh)} | {_cell(rule.en)} | {columns} |")
    return [*lines, ""]


def render_enums(enums: dict[tuple[str, ...], str]) -> list[str]:
    """Every code list of the contract, with the columns that must hold one of its codes."""
    lines = ["## 枚举值 / Enumerations", ""]
    for codes, name in enums.items():
        users = [f"`{t.name}.{c.name}`" for t in TABLES.values() for c in t.columns
                 if c.allowed == codes]
        labels: dict[str, str] = getattr(contract, name)
        used_by = ", ".join(users) or "— (见列说明 / see the column descriptions)"
        lines += [f"### {name}", "", f"用于 / used by: {used_by}", "",
                  "| 代码 / code | 含义 / meaning |", "|---|---|"]
        lines += [f"| `{code}` | {_cell(label)} |" for code, label in labels.items()]
        lines.append("")
    return lines


def render_formats() -> list[str]:
    dates = ", ".join(f"`{f}`" for f in DATE_FORMATS)
    true_tokens = ", ".join(f"`{t}`" for t in TRUE_TOKENS)
    false_tokens = ", ".join(f"`{t}`" for t in FALSE_TOKENS)
    required = ", ".join(f"`{t}`" for t in sorted(REQUIRED_TABLES))
    lines = [
        "## 文件格式 / File formats",
        "",
        "- 每张表一个文件 / one file per table: `<table>.csv` 或 / or `<table>.parquet` "
        "(两者同时存在是错误 / both at once is an error). 必需的表 / required tables: "
        f"{required}; 其他表可缺省, 视为空表 / any other table may be absent and is then "
        "empty.",
        "- `truth/` 子目录和其他文件被忽略并在报告中列出 / a `truth/` folder and any other "
        "file are ignored and listed in the report.",
        "- CSV: UTF-8, 可带 BOM (Excel \"CSV UTF-8\") / with or without BOM; 其他编码 "
        "(GBK/GB18030) 用 `--encoding gb18030` / other encodings via `--encoding gb18030`. "
        "首行为表头, 列名与下表一致, 顺序不限 / first line is the header with the column "
        "names below, in any order. 未知或重复的列名是错误 / unknown or repeated names are "
        "an error; 缺少必填列是错误 / a missing required column is an error; 可选列可以省略 "
        "/ optional columns may be left out.",
        "- Parquet: 列可以是文本或相应类型 (日期/零点时间戳、整数、浮点、布尔、字符串列表) / "
        "columns may be text or typed (date or midnight timestamp, integer, float, boolean, "
        "list of strings).",
        "- 空单元格 = 缺失 / an empty cell is missing; `NULL`、`NA` 等不作缺失处理 / `NULL`, "
        "`NA` and the like are values, not missing. 全部为空的行被跳过 / rows whose every "
        "field is empty are skipped.",
        "- 代码、数字、日期、枚举和列表经 NFKC 规范化并去除首尾空白 (全角 `２０２４－０１－０５` "
        "= `2024-01-05`) / codes, numbers, dates, enums and lists are NFKC-normalised and "
        "trimmed; 自由文本 (名称、地址、说明) 只去除首尾空白 / free text (names, addresses, "
        "details) is only trimmed.",
        f"- 日期 / dates: {dates} (月、日可为一位 / month and day may have one digit; 可带 "
        "`00:00:00` / may end in a midnight time).",
        "- 数字 / numbers: 不带千位分隔符, 可用科学计数法 / no thousands separators, "
        "scientific notation allowed (`1.5e3`); 整数列接受 `12.0` / integer columns accept "
        "`12.0`.",
        f"- 布尔值 / booleans: {true_tokens} = true; {false_tokens} = false (不区分大小写 / "
        "any case).",
        f"- 列表 / lists: 以 `{LIST_SEPARATOR}` 分隔 (全角 `；` 亦可) / separated by "
        f"`{LIST_SEPARATOR}` (full-width `；` too); 各项去除空白, 空项忽略 / items trimmed, "
        "empty items dropped.",
        "",
        "## 快照中的类型 / Types in a snapshot",
        "",
        "| 类型 / kind | pandas dtype |",
        "|---|---|",
    ]
    lines += [f"| {' / '.join(KIND_LABELS[k])} (`{k}`) | `{d}` |" for k, d in KIND_DTYPES.items()]
    return [*lines, ""]


def render_rules() -> list[str]:
    lines = [
        "## 拒绝规则 / Reject rules",
        "",
        "每条被拒绝的行在快照的 `rejects.csv` 中按违反的规则各记一条: 表、文件、行号 (数据行, "
        "从 1 起)、文件行号 (表头为第 1 行)、列、原值、规则、中英文说明。依赖已报错单元格的规则"
        "不再重复评估。/ Every rejected row appears in the snapshot's `rejects.csv` once per "
        "broken rule: table, file, row (1-based data row), line (file line, header = 1), "
        "column, value as exported, rule, and messages in Chinese and English. A rule that "
        "depends on a cell already reported broken is not evaluated again.",
        "",
        "| 规则 / rule | 中文 | English |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {zh} | {en} |" for name, (zh, en) in COLUMN_RULES.items()]
    lines += ["", "各表的行规则见下文 / each table's row rules are listed with the table.", ""]
    return lines


def render_byo() -> list[str]:
    return [
        "## 接入自己的数据 / Bringing your own data",
        "",
        "1. 按下文每张表的列导出 (至少 `enterprises`) / export each table with the columns "
        "below (at least `enterprises`).",
        "2. 放入同一目录 / put the files in one directory.",
        "3. 运行 / run `riskmatrix ingest DIR` (GBK/GB18030 文件加 / add `--encoding gb18030`).",
        "4. 查看汇总和 `rejects.csv` (Excel 可直接打开), 按行号、列和规则修正后重新导入 / read "
        "the summary and `rejects.csv` (opens in Excel), fix by row, column and rule, ingest "
        "again. 每次导入生成新快照, 上一个快照在完成前一直有效 / each ingest makes a new "
        "snapshot; the previous one stays current until the new one is complete.",
        "",
    ]


def render_contract_markdown() -> str:
    """The whole contract reference, deterministic (same contract, same text)."""
    enums = enum_names()
    lines = [
        "# 数据契约 / Source-data contract",
        "",
        f"> 由 `features/contract.py` 生成, 请勿手工编辑 / generated from "
        f"`features/contract.py`, do not edit: `{REGENERATE}`",
        "",
        "## 表一览 / Tables",
        "",
        "| 表 / table | 中文 | English | 必需 / required | 键 / key |",
        "|---|---|---|---|---|",
    ]
    for name in VALIDATION_ORDER:
        table = TABLES[name]
        required = "是 / yes" if name in REQUIRED_TABLES else "否 / no"
        key = ", ".join(f"`{k}`" for k in table.key)
        lines.append(f"| [{name}](#{_anchor(name)}) | {_cell(table.zh)} | {_cell(table.en)} | "
                     f"{required} | {key} |")
    lines.append("")
    lines += render_formats()
    lines += render_byo()
    lines += render_rules()
    lines += ["## 表 / Tables in detail", ""]
    for name in VALIDATION_ORDER:
        lines += render_table(TABLES[name], enums)
    lines += render_enums(enums)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    sys.stdout.write(render_contract_markdown())


if __name__ == "__main__":
    main()
