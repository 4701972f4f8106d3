"""On-demand scoring of a submitted enterprise record, validated by the contract's own rules.

The record is one `enterprises` row plus that firm's `enterprise_events` and `inspections`
rows, in the export's columns. Each table goes through `features.ingest.validate_table` — the
same types, enums, ranges, USCC check character, row rules and references as a nightly
ingest — and any broken rule is a 422 naming the table, row, column and rule in Chinese and
English. Accepted rows join the firms of the current snapshot that share the legal
representative or registered address (all that related-party features read), so the submitted
firm gets exactly the features, score, class and SHAP reasons the nightly job would give it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract import TABLES
from features.ingest import TEXT, RawTable, validate_table
from serving.api.cache import OnDemandContext, address_key

SUBMITTED_TABLES = {"enterprise": "enterprises", "events": "enterprise_events",
                    "inspections": "inspections"}


@dataclass(frozen=True)
class RecordProblem:
    """One broken rule of a submitted record (what a 422 lists)."""

    table: str
    row: int
    column: str
    value: Any
    rule: str
    message_zh: str
    message_en: str

    def as_dict(self, field: str) -> dict[str, Any]:
        return {"field": field, "table": self.table, "row": self.row, "column": self.column,
                "value": self.value, "rule": self.rule, "message_zh": self.message_zh,
                "message_en": self.message_en,
                "msg": f"{self.message_zh} / {self.message_en}"}


class RecordRejected(Exception):
    """The submitted record breaks contract rules; `problems` says where and which."""

    def __init__(self, problems: Sequence[dict[str, Any]]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = list(problems)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def _raw_table(table_name: str, rows: Sequence[Mapping[str, Any]], field: str
               ) -> tuple[RawTable, list[dict[str, Any]]]:
    """Rows as the contract's text table; unknown column names are problems of their own."""
    table = TABLES[table_name]
    known = set(table.column_names)
    problems: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        for column in sorted(set(row) - known):
            problems.append(RecordProblem(
                table_name, number, column, row[column], "unknown_column",
                f"{table_name} 表没有列 {column}", f"table {table_name} has no column {column}",
            ).as_dict(field))
    values = pa.table({name: pa.array([_text(r.get(name)) for r in rows], TEXT)
                       for name in table.column_names})
    positions = np.arange(1, len(rows) + 1, dtype=np.int64)
    structural = pd.DataFrame(columns=["table", "file", "row", "line", "column", "value",
                                       "rule", "message_zh", "message_en"], dtype=object)
    return RawTable(field, values, positions, positions.copy(), structural), problems


def _rejects_as_problems(rejects: pd.DataFrame, field: str) -> list[dict[str, Any]]:
    if rejects.empty:
        return []
    problems = []
    for r in rejects.to_dict(orient="records"):
        value = r["value"]
        if value is not None and not isinstance(value, str) and pd.isna(value):
            value = None
        problems.append(RecordProblem(str(r["table"]), int(r["row"]), str(r["column"]),
                                      value, str(r["rule"]), str(r["message_zh"]),
                                      str(r["message_en"])).as_dict(field))
    return problems


def validate_record(enterprise: Mapping[str, Any], events: Sequence[Mapping[str, Any]],
                    inspections: Sequence[Mapping[str, Any]], inspector_ids: frozenset[str]
                    ) -> dict[str, pd.DataFrame]:
    """The three tables typed as ingest types them; `RecordRejected` lists every problem."""
    submitted = {"enterprise": [enterprise], "events": list(events),
                 "inspections": list(inspections)}
    problems: list[dict[str, Any]] = []
    typed: dict[str, pd.DataFrame] = {}
    uscc_values = pa.array([_text(enterprise.get("uscc"))], TEXT)
    references = {
        ("enterprises", "uscc"): uscc_values,
        ("inspectors", "inspector_id"): pa.array(sorted(inspector_ids), TEXT),
    }
    for field, table_name in SUBMITTED_TABLES.items():
        raw, unknown = _raw_table(table_name, submitted[field], field)
        problems += unknown
        if not submitted[field]:
            typed[table_name] = pd.DataFrame(columns=TABLES[table_name].column_names)
            continue
        result = validate_table(TABLES[table_name], raw, references)
        problems += _rejects_as_problems(result.rejects, field)
        typed[table_name] = result.accepted
    if typed["enterprises"].empty and not problems:
        problems.append(RecordProblem(
            "enterprises", 1, "uscc", None, "required", "企业记录为空, 至少需要必填列",
            "the enterprise record is empty: the required columns are needed",
        ).as_dict("enterprise"))
    if problems:
        raise RecordRejected(problems)
    return typed


def _related_positions(context: OnDemandContext, enterprise: pd.Series) -> np.ndarray:
    """Snapshot rows of the firms sharing the legal representative or registered address."""
    parts = [context.by_rep.get(str(enterprise["legal_rep_id"]), np.empty(0, np.int64))]
    key = address_key(enterprise["registered_address"])
    if key:
        parts.append(context.by_address.get(key, np.empty(0, np.int64)))
    return np.unique(np.concatenate(parts)).astype(np.int64)


def _rows_of(frame: pd.DataFrame, index: Mapping[str, np.ndarray], usccs: Sequence[str]
             ) -> pd.DataFrame:
    chosen = [index[u] for u in usccs if u in index]
    if not chosen:
        return frame.iloc[0:0]
    return frame.iloc[np.concatenate(chosen)]


def _stacked(base: pd.DataFrame, submitted: pd.DataFrame) -> pd.DataFrame:
    if submitted.empty:
        return base.reset_index(drop=True)
    if base.empty:
        return submitted.reset_index(drop=True)
    return pd.concat([base, submitted.astype(base.dtypes.to_dict(), errors="ignore")],
                     ignore_index=True)


def mini_snapshot(context: OnDemandContext, typed: Mapping[str, pd.DataFrame]
                  ) -> tuple[dict[str, pd.DataFrame], str]:
    """The submitted firm (replacing any stored record of the same code) with its related
    firms and their records: everything its features read."""
    enterprise = typed["enterprises"].iloc[0]
    uscc = str(enterprise["uscc"])
    snapshot = context.snapshot
    related = snapshot["enterprises"].iloc[_related_positions(context, enterprise)]
    related = related[related["uscc"].astype(str) != uscc]
    others = related["uscc"].astype(str).tolist()
    events = _rows_of(snapshot["enterprise_events"], context.events_by_uscc, others)
    inspections = _rows_of(snapshot["inspections"], context.inspections_by_uscc, others)
    mini = dict(snapshot)
    mini["enterprises"] = _stacked(related, typed["enterprises"])
    mini["enterprise_events"] = _stacked(events, typed["enterprise_events"])
    mini["inspections"] = _stacked(inspections, typed["inspections"])
    return mini, uscc


@dataclass(frozen=True)
class OnDemandScore:
    uscc: str
    as_of: pd.Timestamp
    scores: pd.Series
    reasons: pd.DataFrame


def score_record(context: OnDemandContext, model: Any, typed: Mapping[str, pd.DataFrame],
                 as_of: dt.date | None, previous_class: str | None, top_k: int) -> OnDemandScore:
    """Features, probability, class and top SHAP reasons of the submitted firm at `as_of`."""
    from features.enterprise_features import build_enterprise_features
    from models.scoring import score_population
    from training.enterprise import class_rules

    policy = context.policy
    day = pd.Timestamp(as_of) if as_of is not None else context.default_as_of
    mini, uscc = mini_snapshot(context, typed)
    features = build_enterprise_features(mini, day, **policy.enterprise_feature_kwargs())
    if uscc not in features.index:
        raise RecordRejected([RecordProblem(
            "enterprises", 1, "established_date", str(typed["enterprises"].iloc[0][
                "established_date"]), "not_existing_on_as_of",
            f"企业在基准日 {day.date()} 不存续 (未成立或已注销/吊销)",
            f"the enterprise does not exist on the as-of date {day.date()} (not yet "
            "established, or closed)").as_dict("enterprise")])
    previous = None if previous_class is None else pd.Series({uscc: previous_class},
                                                              dtype=object)
    catalogue = context.catalogue if context.catalogue is not None else (
        policy.feature_catalogue())
    # What the nightly's `score_chunk` computes without reuse (a nightly test holds the two
    # together), minus the explanation keys only reuse needs (they dump the whole booster).
    scored = score_population(model, features.loc[[uscc]], catalogue, class_rules(policy),
                              previous=previous, k=top_k)
    return OnDemandScore(uscc, day, scored.scores.iloc[0], scored.reasons)
