"""The trigger case book (触发式监管案件台账) under the runtime home, and its audit log.

The trigger engine (`supervision.triggers`) is pure: it takes the book and returns the cases it
opened or updated. This module owns where the book lives between nightly runs, behind a few
small functions so it can move into the results database later without touching the CLI.

Layout (``<home>/cases/``)::

    book.parquet          every case, open and closed (list/dict columns as JSON text)
    log.jsonl             append-only: each run, each case opened/updated/closed, with the
                          wall-clock time (UTC), the as-of date and who acted
    classes.parquet       the classes of the last run (uscc, class, as_of): the next run's
                          "previous class", which the class-drop rule compares against
    undisturbed.parquet   "无事不扰" flags (uscc, digital_undisturbed, as_of) for the campaign
                          planner

Runs are write-once and forward-only per as-of date: a date already recorded in the log is not
saved again (the CLI shows the recorded result instead), and a date before the last recorded run
is refused, because the engine's cases for later dates already depend on the book as it stood.
Files are replaced atomically (temporary sibling + `os.replace`); the book is written before the
run is logged, so a crash in between leaves a book the engine's deduplication re-runs cleanly
(case ids are deterministic, same-id cases are replaced, cited evidence never fires twice).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.files import atomic_write, default_actor, utc_now
from serving.settings import Settings
from supervision.triggers import CASE_COLUMNS, CASE_STATUSES, close_cases, empty_case_book

CASES_DIR = "cases"
BOOK = "book.parquet"
LOG = "log.jsonl"
CLASSES = "classes.parquet"
UNDISTURBED = "undisturbed.parquet"

# Case columns holding lists or dicts (or free values): stored as JSON text.
JSON_COLUMNS: tuple[str, ...] = ("rules_fired", "evidence", "pending_corrections", "reasons",
                                 "tags")
_DATE_COLUMNS: tuple[str, ...] = ("opened_on", "updated_on", "closed_on", "correct_by")
_STRING_COLUMNS: tuple[str, ...] = ("case_id", "uscc", "status", "action", "severity")
_CLASS_COLUMNS: tuple[str, ...] = ("risk_class", "previous_class")
_DATE_DTYPE = np.dtype("datetime64[ns]")


class CaseStoreError(Exception):
    """A user mistake about the case book (unknown case, date already run, damaged file)."""


@dataclass(frozen=True)
class LoggedRun:
    """One recorded run: its as-of date and the cases it opened and updated."""

    as_of: pd.Timestamp
    opened: tuple[str, ...]
    updated: tuple[str, ...]
    provenance: dict[str, Any]


# --- paths, time, identity -------------------------------------------------------------------


def cases_dir(settings: Settings) -> Path:
    return settings.home / CASES_DIR


def as_date(value: object, what: str = "as_of") -> pd.Timestamp:
    """A normalised day; a clear bilingual error for text that is not a date."""
    try:
        stamp: Any = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise CaseStoreError(
            f"{what} 日期格式应为 YYYY-MM-DD / {what} must be a date YYYY-MM-DD, got {value!r}"
        )
    return pd.Timestamp(stamp).normalize()


def _iso_day(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


# --- files -------------------------------------------------------------------------------




def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise CaseStoreError(
            f"{path}: 文件损坏或不是 Parquet / damaged or not a Parquet file ({error})"
        ) from None


def _json_default(value: Any) -> Any:
    """JSON for what evidence items may hold besides plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | dt.date):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _to_json(value: Any) -> str | None:
    if value is None or (not isinstance(value, list | dict | tuple | str) and pd.isna(value)):
        return None
    # Key order kept as the engine wrote it (thresholds read in the rule's own order).
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _from_json(text: Any, path: Path, column: str, row: int) -> Any:
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return None
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise CaseStoreError(
            f"{path}: 第 {row + 1} 行 {column} 列不是有效的 JSON / row {row + 1}, column "
            f"{column}: not valid JSON"
        ) from None


def typed_book(frame: pd.DataFrame) -> pd.DataFrame:
    """Case columns in the engine's order and types (a stored book read back, or a new one)."""
    out = frame.copy()
    for column in CASE_COLUMNS:
        if column not in out.columns:
            out[column] = None
    for column in _DATE_COLUMNS:
        out[column] = pd.to_datetime(out[column]).astype(_DATE_DTYPE)
    for column in _STRING_COLUMNS:
        out[column] = out[column].astype("string")
    for column in _CLASS_COLUMNS:
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    out["tolerated"] = out["tolerated"].astype("boolean").fillna(False).astype(bool)
    out["probability"] = pd.to_numeric(out["probability"], errors="coerce").astype("float64")
    return out.loc[:, list(CASE_COLUMNS)].reset_index(drop=True)


def _encoded_book(book: pd.DataFrame) -> pd.DataFrame:
    out = typed_book(book)
    for column in JSON_COLUMNS:
        out[column] = pd.Series([_to_json(v) for v in out[column]], index=out.index,
                                dtype=object)
    return out


# --- the log ------------------------------------------------------------------------------


def _append_log(settings: Settings, entries: Iterable[Mapping[str, Any]]) -> None:
    """Append entries as JSON lines (one write, flushed to disk: the log is the audit trail)."""
    lines = "".join(
        json.dumps(dict(e), ensure_ascii=False, sort_keys=True, default=_json_default) + "\n"
        for e in entries
    )
    if not lines:
        return
    path = cases_dir(settings) / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(lines)
        stream.flush()
        os.fsync(stream.fileno())


def read_log(settings: Settings) -> list[dict[str, Any]]:
    """Every log entry, oldest first (empty without a log)."""
    path = cases_dir(settings) / LOG
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise CaseStoreError(
                f"{path}: 第 {number} 行不是有效的 JSON / line {number} is not valid JSON"
            ) from None
        if not isinstance(entry, dict) or "event" not in entry:
            raise CaseStoreError(
                f"{path}: 第 {number} 行缺少 event / line {number} lacks an event"
            )
        entries.append(entry)
    return entries


def recorded_runs(settings: Settings) -> list[LoggedRun]:
    """The runs recorded in the log, by as-of date."""
    entries = read_log(settings)
    runs = []
    for entry in entries:
        if entry["event"] != "run":
            continue
        day = str(entry["as_of"])
        opened = tuple(e["case_id"] for e in entries
                       if e["event"] == "opened" and e.get("as_of") == day)
        updated = tuple(e["case_id"] for e in entries
                        if e["event"] == "updated" and e.get("as_of") == day)
        runs.append(LoggedRun(pd.Timestamp(day), opened, updated,
                              dict(entry.get("provenance") or {})))
    return sorted(runs, key=lambda r: r.as_of)


def last_run(settings: Settings) -> LoggedRun | None:
    runs = recorded_runs(settings)
    return runs[-1] if runs else None


def find_run(settings: Settings, as_of: object) -> LoggedRun | None:
    day = as_date(as_of)
    return next((r for r in recorded_runs(settings) if r.as_of == day), None)


def check_can_run(settings: Settings, as_of: object) -> None:
    """Refuse an as-of date already recorded or before the last recorded run."""
    day = as_date(as_of)
    latest = last_run(settings)
    if latest is None:
        return
    if day == latest.as_of:
        raise CaseStoreError(
            f"基准日 {day:%Y-%m-%d} 已运行并记录, 案件台账不重复写入 / as-of date "
            f"{day:%Y-%m-%d} has already been run and recorded; the case book is written once "
            "per date"
        )
    if day < latest.as_of:
        raise CaseStoreError(
            f"基准日 {day:%Y-%m-%d} 早于最近一次运行 {latest.as_of:%Y-%m-%d}, 不能倒序运行 / "
            f"as-of date {day:%Y-%m-%d} is before the last recorded run "
            f"{latest.as_of:%Y-%m-%d}; runs go forward in time"
        )


# --- the case book -------------------------------------------------------------------------


def load_case_book(settings: Settings) -> pd.DataFrame:
    """The stored case book (open and closed cases), typed; an empty book when none exists."""
    path = cases_dir(settings) / BOOK
    if not path.exists():
        return empty_case_book()
    raw = _read_parquet(path)
    missing = [c for c in CASE_COLUMNS if c not in raw.columns]
    if missing:
        raise CaseStoreError(f"{path}: 缺少列 {missing} / lacks columns {missing}")
    for column in JSON_COLUMNS:
        raw[column] = pd.Series(
            [_from_json(v, path, column, i) for i, v in enumerate(raw[column])],
            index=raw.index, dtype=object,
        )
    book = typed_book(raw)
    unknown = sorted(set(book["status"].dropna().astype(str)) - set(CASE_STATUSES))
    if unknown or book["status"].isna().any():
        raise CaseStoreError(
            f"{path}: 案件状态须为 open 或 closed / case status must be open or closed "
            f"({unknown or ['<missing>']})"
        )
    return book


def _closure_entries(old: pd.DataFrame, new: pd.DataFrame) -> list[dict[str, Any]]:
    """Cases open in `old` and closed in `new` (closed by the caller, not via `close_case`)."""
    was_open = set(old.loc[old["status"] == "open", "case_id"].astype(str))
    closed = new.loc[(new["status"] == "closed").fillna(False)
                     & new["case_id"].astype(str).isin(was_open)]
    return [{"event": "closed", "case_id": str(c.case_id), "uscc": str(c.uscc),
             "closed_on": _iso_day(c.closed_on), "reason": None}
            for c in closed.itertuples()]


def _case_entry(event: str, case: Any) -> dict[str, Any]:
    return {"event": event, "case_id": str(case.case_id), "uscc": str(case.uscc),
            "action": None if pd.isna(case.action) else str(case.action),
            "severity": None if pd.isna(case.severity) else str(case.severity),
            "rules": list(case.rules_fired or [])}


def save_case_book(
    settings: Settings,
    book: pd.DataFrame,
    as_of: object,
    *,
    provenance: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    actor: str | None = None,
) -> LoggedRun:
    """Store the book after the run for `as_of` and log what the run opened, updated and closed.

    Write-once per as-of date and forward only (see the module docstring). A case counts as
    opened by this run when opened_on == as_of, as updated when updated_on == as_of and it was
    opened earlier: so a re-run after a crash between writing the book and logging the run
    logs the same cases. `provenance` (snapshot, policy, model) goes into the run entry.
    """
    day = as_date(as_of)
    check_can_run(settings, day)
    new = typed_book(book)
    if new["case_id"].duplicated().any():
        duplicated = sorted(set(new.loc[new["case_id"].duplicated(), "case_id"].astype(str)))
        raise CaseStoreError(f"案件编号重复 / duplicate case ids: {duplicated[:5]}")
    old = load_case_book(settings)
    digest = atomic_write(cases_dir(settings) / BOOK, _parquet_bytes(_encoded_book(new)))
    opened_now = new.loc[(new["opened_on"] == day).fillna(False)]
    updated_now = new.loc[((new["updated_on"] == day) & (new["opened_on"] < day)).fillna(False)]
    stamp = (now or utc_now()).isoformat(timespec="seconds")
    who = actor or default_actor()
    common = {"at": stamp, "as_of": _iso_day(day), "actor": who}
    entries = [
        *(_case_entry("opened", c) for c in opened_now.sort_values("case_id").itertuples()),
        *(_case_entry("updated", c) for c in updated_now.sort_values("case_id").itertuples()),
        *_closure_entries(old, new),
        {"event": "run", "opened": len(opened_now), "updated": len(updated_now),
         "cases": len(new), "open_cases": int((new["status"] == "open").sum()),
         "book_sha256": digest, "provenance": dict(provenance or {})},
    ]
    _append_log(settings, [{**common, **e} for e in entries])
    return LoggedRun(day, tuple(opened_now["case_id"].astype(str).sort_values()),
                     tuple(updated_now["case_id"].astype(str).sort_values()),
                     dict(provenance or {}))


def close_case(
    settings: Settings,
    case_id: str,
    reason: str,
    *,
    closed_on: object | None = None,
    now: dt.datetime | None = None,
    actor: str | None = None,
) -> pd.Series:
    """Close one open case (an inspector's finished visit, advice or talk) and log why.

    `closed_on` defaults to the as-of date of the last recorded run — the day the book stands
    at (today in nightly operation). The case then counts as closed from the next run on, and
    its rules' cool-down starts on that day. Returns the closed case.
    """
    if not reason or not reason.strip():
        raise CaseStoreError("结案须说明原因 / closing a case needs a reason (--reason)")
    book = load_case_book(settings)
    matches = book.loc[book["case_id"] == case_id]
    if matches.empty:
        raise CaseStoreError(f"案件 {case_id} 不存在 / no case {case_id} in the case book")
    case = matches.iloc[0]
    if case["status"] != "open":
        raise CaseStoreError(
            f"案件 {case_id} 已于 {_iso_day(case['closed_on'])} 办结 / case {case_id} was "
            f"already closed on {_iso_day(case['closed_on'])}"
        )
    if closed_on is None:
        latest = last_run(settings)
        closed_on = latest.as_of if latest is not None else case["updated_on"]
    day = as_date(closed_on, "closed_on")
    if day < case["updated_on"]:
        raise CaseStoreError(
            f"结案日期 {day:%Y-%m-%d} 早于案件最近更新 {case['updated_on']:%Y-%m-%d} / closing "
            f"date {day:%Y-%m-%d} is before the case's last update "
            f"{case['updated_on']:%Y-%m-%d}"
        )
    closed = close_cases(book, [case_id], day)
    atomic_write(cases_dir(settings) / BOOK, _parquet_bytes(_encoded_book(closed)))
    _append_log(settings, [{
        "at": (now or utc_now()).isoformat(timespec="seconds"), "event": "closed",
        "case_id": case_id, "uscc": str(case["uscc"]), "closed_on": _iso_day(day),
        "reason": reason.strip(), "actor": actor or default_actor(),
    }])
    closed = typed_book(closed)
    return closed.loc[closed["case_id"] == case_id].iloc[0]


def closure_reasons(settings: Settings) -> dict[str, str]:
    """case id → the reason given when it was closed (the last closure wins)."""
    return {str(e["case_id"]): str(e["reason"]) for e in read_log(settings)
            if e["event"] == "closed" and e.get("reason")}


# --- classes of the last run (the class-drop rule's "previous class") -----------------------


def save_classes(settings: Settings, classes: pd.Series, as_of: object) -> None:
    """Keep this run's class per firm (index uscc) as the next run's previous class."""
    frame = pd.DataFrame({
        "uscc": classes.index.astype(str),
        "class": classes.astype("string").to_numpy(),
        "as_of": as_date(as_of),
    })
    atomic_write(cases_dir(settings) / CLASSES, _parquet_bytes(frame))


def load_previous_classes(settings: Settings) -> pd.Series:
    """Class per firm from the last run (index uscc, named `previous_class`); empty if none."""
    path = cases_dir(settings) / CLASSES
    if not path.exists():
        return pd.Series([], dtype="string", index=pd.Index([], dtype="string", name="uscc"),
                         name="previous_class")
    frame = _read_parquet(path)
    return pd.Series(frame["class"].astype("string").to_numpy(),
                     index=pd.Index(frame["uscc"].astype("string"), name="uscc"),
                     name="previous_class")


# --- "无事不扰" flags for the campaign planner ------------------------------------------------


def write_undisturbed(settings: Settings, flags: pd.Series, as_of: object) -> Path:
    """Store the flags (index uscc, bool) as undisturbed.parquet: uscc, digital_undisturbed,
    as_of."""
    path = cases_dir(settings) / UNDISTURBED
    frame = pd.DataFrame({
        "uscc": flags.index.astype(str),
        "digital_undisturbed": flags.astype(bool).to_numpy(),
        "as_of": as_date(as_of),
    })
    atomic_write(path, _parquet_bytes(frame))
    return path


def load_undisturbed(settings: Settings) -> pd.Series:
    """"无事不扰" flag per tagged firm (index uscc, bool, named `digital_undisturbed`).

    Empty when no flags were written yet; firms not in the index are not undisturbed.
    """
    path = cases_dir(settings) / UNDISTURBED
    if not path.exists():
        return pd.Series([], dtype=bool, index=pd.Index([], dtype="string", name="uscc"),
                         name="digital_undisturbed")
    frame = _read_parquet(path)
    return pd.Series(frame["digital_undisturbed"].astype(bool).to_numpy(),
                     index=pd.Index(frame["uscc"].astype("string"), name="uscc"),
                     name="digital_undisturbed")


def undisturbed_as_of(settings: Settings) -> pd.Timestamp | None:
    """The as-of date of the stored flags (None when none were written)."""
    path = cases_dir(settings) / UNDISTURBED
    if not path.exists():
        return None
    frame = _read_parquet(path)
    return None if frame.empty else pd.Timestamp(frame["as_of"].iloc[0])
