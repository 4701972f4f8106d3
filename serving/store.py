"""The results store: runs, scores, classes, reasons, monitoring and the audit log.

One SQLAlchemy Core schema serves SQLite (the default file under the home) and PostgreSQL
(any `postgresql+psycopg://` URL); nothing here is dialect-specific beyond what SQLAlchemy
hides. Publication is atomic by construction: the nightly job writes a run's rows while the
run is `in_progress`, and readers only ever look at runs whose status is `complete` — the
status flips in one transaction, so a reader sees the previous complete run until then.

Schema versions: `schema_version` records what has been applied. A fresh database is created
at head from the table definitions below and stamped (the pattern Alembic recommends for new
databases); an existing one gets the pending entries of `MIGRATIONS` in order, each in its own
transaction. A database newer than this code is refused rather than half-understood.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url

from serving.files import utc_now

SCHEMA_VERSION_TABLE = "schema_version"
RUN_IN_PROGRESS = "in_progress"
RUN_COMPLETE = "complete"
RUN_SUPERSEDED = "superseded"
ENTERPRISE_RUN = "enterprise"


class StoreError(Exception):
    """The store cannot be used as asked (message bilingual, zh first)."""


metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_key", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False, default=ENTERPRISE_RUN),
    Column("as_of", Date, nullable=False),
    Column("snapshot_id", String(128), nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("policy_hash", String(64), nullable=False),
    Column("top_k", SmallInteger, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("n_chunks", Integer, nullable=False),
    Column("n_entities", Integer, nullable=False),
    Column("population_hash", String(64), nullable=False),
    Column("previous_run_id", Integer, ForeignKey("runs.id"), nullable=True),
    Column("reasons_source_run_id", Integer, ForeignKey("runs.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("stage_seconds", JSON, nullable=True),
    Column("summary", JSON, nullable=True),
    Column("audit_head_seq", BigInteger, nullable=True),
    Column("audit_head_hash", String(64), nullable=True),
    Index("ix_runs_status_as_of", "status", "as_of"),
)

run_chunks = Table(
    "run_chunks", metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("n_rows", Integer, nullable=False),
    Column("first_uscc", String(18), nullable=False),
    Column("last_uscc", String(18), nullable=False),
    Column("explained", Integer, nullable=False),
    Column("reused", Integer, nullable=False),
    Column("seconds", JSON, nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=False),
)

enterprise_scores = Table(
    "enterprise_scores", metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("uscc", String(18), primary_key=True),
    Column("raw_score", Double, nullable=False),
    Column("probability", Double, nullable=False),
    Column("score_class", String(4), nullable=False),
    Column("risk_class", String(4), nullable=False),
    Column("overrides", String(256), nullable=False),
    Column("class_reason_zh", Text, nullable=False),
    Column("class_reason_en", Text, nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("explain_key", String(64), nullable=False),
    Column("explained", Boolean, nullable=False),
    Index("ix_enterprise_scores_uscc", "uscc"),
)

reasons = Table(
    "reasons", metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("uscc", String(18), primary_key=True),
    Column("rank", SmallInteger, primary_key=True),
    Column("feature", String(128), nullable=False),
    Column("value", Double, nullable=True),
    Column("contribution", Double, nullable=False),
    Column("raises_risk", Boolean, nullable=False),
    Column("reason_code", String(128), nullable=False),
    Column("text_zh", Text, nullable=False),
    Column("text_en", Text, nullable=False),
)

monitoring = Table(
    "monitoring", metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("payload", JSON, nullable=False),
)

policies = Table(
    "policies", metadata,
    Column("policy_hash", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(64), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("entity", String(64), nullable=True),
    Column("as_of", String(10), nullable=True),
    Column("run_id", Integer, nullable=True),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_entity_as_of", "entity", "as_of"),
    Index("ix_audit_log_run_id", "run_id"),
)

# Project grades, trigger cases, campaigns and draws (migration 3 replaced the reserved,
# never-written tables of the baseline with these). Project grades and trigger cases are rows
# of a nightly run (readers see them once the run is complete); campaigns, draws and campaign
# actions are the published record of the file-based campaign store (`serving.campaign_store`
# keeps working there and publishes every action here, with its audit record).
project_grades = Table(
    "project_grades", metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("project_id", String(64), primary_key=True),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("risk_source_grade", String(4), nullable=False),
    Column("risk_source_points", Double, nullable=True),
    Column("management_grade", String(4), nullable=False),
    Column("probability", Double, nullable=False),
    Column("cell", String(16), nullable=False),
    Column("level", String(32), nullable=False),
    Column("level_rank", SmallInteger, nullable=False),
    Column("interval_days", Integer, nullable=True),
    Column("last_inspection_date", Date, nullable=True),
    Column("next_due_date", Date, nullable=True),
    Column("overrides", String(256), nullable=False),
    Column("reasons", Text, nullable=False),
    Column("input_hash", String(64), nullable=False),
)

trigger_cases = Table(
    "trigger_cases", metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("case_id", String(64), primary_key=True),
    Column("uscc", String(18), nullable=False, index=True),
    Column("today", String(16), nullable=False),
    Column("opened_on", Date, nullable=False),
    Column("updated_on", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("severity", String(16), nullable=True),
    Column("tolerated", Boolean, nullable=False),
    Column("rules", Text, nullable=False),
    Column("risk_class", String(4), nullable=True),
    Column("payload", JSON, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("planned_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("commitment_digest", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
)

draws = Table(
    "draws", metadata,
    Column("campaign_id", String(64), ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("commitment_digest", String(64), nullable=False),
    Column("drawn_at", DateTime(timezone=True), nullable=False),
    Column("drawn", Integer, nullable=False),
    Column("public_entropy", Text, nullable=True),
    Column("evidence_sha256", String(64), nullable=True),
    Column("payload", JSON, nullable=False),
)

campaign_actions = Table(
    "campaign_actions", metadata,
    Column("campaign_id", String(64), ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("log_line", Integer, primary_key=True, autoincrement=False),
    Column("action", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("audit_seq", BigInteger, nullable=False),
    Column("payload", JSON, nullable=False),
)

# Service accounts (migration 2): argon2 password hashes and sha256 hashes of opaque tokens —
# neither a password nor a token is ever stored in the clear.
users = Table(
    "users", metadata,
    Column("username", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("inspector_id", String(64), nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(64), ForeignKey("users.username"), nullable=False, index=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

schema_version = Table(
    SCHEMA_VERSION_TABLE, metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    """One schema step: `upgrade(connection)` runs inside its own transaction."""

    version: int
    description: str
    upgrade: Callable[[Connection], None]


def _baseline(connection: Connection) -> None:
    """Version 1: every table above, as first released."""
    metadata.create_all(connection, checkfirst=True)


def _service_accounts(connection: Connection) -> None:
    """Version 2: the API's users and their hashed tokens."""
    metadata.create_all(connection, tables=[users, api_tokens], checkfirst=True)


_RESERVED_BASELINE_TABLES = ("draws", "campaigns", "trigger_cases", "project_grades")


def _nightly_stages_and_campaigns(connection: Connection) -> None:
    """Version 3: the baseline reserved four tables no release ever wrote; they are replaced
    by run-scoped project grades and trigger cases and by campaigns, draws and campaign
    actions. A reserved table holding rows (written by hand) is refused, never dropped."""
    existing = set(inspect(connection).get_table_names())
    for name in _RESERVED_BASELINE_TABLES:
        if name not in existing:
            continue
        if connection.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar():
            raise StoreError(
                f"保留表 {name} 中有数据, 无法升级结构 / the reserved table {name} holds rows; "
                "move them away before upgrading the schema to version 3")
        connection.execute(text(f"DROP TABLE {name}"))
    metadata.create_all(connection, tables=[project_grades, trigger_cases, campaigns, draws,
                                            campaign_actions], checkfirst=True)


# Append only. A step after the baseline alters existing tables (ALTER, data moves) and the
# table definitions above must be updated to match, so a fresh database created at head and
# an old one migrated step by step end up identical.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: runs, scores, reasons, monitoring, audit log, reserved tables",
              _baseline),
    Migration(2, "service accounts: users and api_tokens", _service_accounts),
    Migration(3, "nightly project grades and trigger cases; campaigns, draws, campaign actions",
              _nightly_stages_and_campaigns),
)


def head_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return max(m.version for m in migrations)


def current_version(engine: Engine) -> int | None:
    """The applied schema version; None for a database riskmatrix never touched."""
    if not inspect(engine).has_table(SCHEMA_VERSION_TABLE):
        return None
    with engine.connect() as connection:
        value = connection.execute(select(func.max(schema_version.c.version))).scalar()
    return None if value is None else int(value)


def _stamp(connection: Connection, migration: Migration) -> None:
    connection.execute(schema_version.insert().values(
        version=migration.version, description=migration.description, applied_at=utc_now()))


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to head and return the version; safe to call every time."""
    ordered = sorted(migrations, key=lambda m: m.version)
    head = ordered[-1].version
    version = current_version(engine)
    if version is None:
        with engine.begin() as connection:
            metadata.create_all(connection, checkfirst=True)
            _stamp(connection, ordered[-1])
        return head
    if version > head:
        raise StoreError(
            f"数据库结构版本 {version} 比本程序支持的 {head} 新, 请升级 riskmatrix / the "
            f"database schema is at version {version}, newer than this riskmatrix ({head}): "
            "upgrade riskmatrix before using this database"
        )
    for migration in ordered:
        if migration.version > version:
            with engine.begin() as connection:
                migration.upgrade(connection)
                _stamp(connection, migration)
    return head


def apply_sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """WAL lets the API read the published run while the nightly job writes the next."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their directory created and WAL mode."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", apply_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def open_store(url: str) -> Engine:
    """Engine for `url`, migrated to head: what every command starts with."""
    try:
        engine = create_store_engine(url)
        migrate(engine)
    except StoreError:
        raise
    except Exception as error:
        where = make_url(url).render_as_string(hide_password=True)
        raise StoreError(
            f"无法打开结果库 {where} / cannot open the results store {where}: {error}"
        ) from error
    return engine


# --------------------------------------------------------------------------- small helpers


def as_date(value: date | datetime | pd.Timestamp | str) -> date:
    return pd.Timestamp(value).date()


def _json_ready(value: Any) -> Any:
    """Plain JSON types (numpy scalars, NaN → None, dates → ISO text)."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return value


def json_ready(value: Any) -> Any:
    """`value` with only JSON types inside, so every dialect stores it the same way."""
    return _json_ready(value)


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """One executemany INSERT of plain rows (text, numbers, booleans, None)."""
    if not rows:
        return
    columns = tuple(rows[0])
    if connection.dialect.name != "sqlite":
        connection.execute(table.insert(), list(rows))
        return
    insert_tuples(connection, table, columns, [tuple(row[c] for c in columns) for row in rows])


def insert_tuples(connection: Connection, table: Table, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]]) -> None:
    """One executemany INSERT of rows given as value tuples in `columns` order.

    On SQLite the tuples go to the driver as they are: SQLAlchemy's per-row parameter
    processing would otherwise double the cost of writing a nightly chunk. Other dialects
    use Core (psycopg batches the rows into multi-row VALUES).
    """
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        connection.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    connection.exec_driver_sql(insert_statement(table, columns), list(rows))


def insert_statement(table: Table, columns: Sequence[str]) -> str:
    """The positional (`?`) INSERT of `columns` into `table`, for SQLite's driver."""
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})")


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`."""

    id: int
    run_key: str
    kind: str
    as_of: date
    snapshot_id: str
    input_hash: str
    model_name: str
    model_version: str
    policy_version: str
    policy_hash: str
    top_k: int
    chunk_size: int
    n_chunks: int
    n_entities: int
    population_hash: str
    previous_run_id: int | None
    reasons_source_run_id: int | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    stage_seconds: dict[str, Any] | None
    summary: dict[str, Any] | None
    audit_head_seq: int | None
    audit_head_hash: str | None


def _run(row: Any) -> RunRecord:
    data = dict(row._mapping)
    data["as_of"] = as_date(data["as_of"])
    return RunRecord(**data)


def get_run(engine: Engine | Connection, run_id: int) -> RunRecord | None:
    return _first_run(engine, select(runs).where(runs.c.id == run_id))


def run_by_key(engine: Engine | Connection, run_key: str) -> RunRecord | None:
    return _first_run(engine, select(runs).where(runs.c.run_key == run_key))


def _first_run(engine: Engine | Connection, query: Any) -> RunRecord | None:
    if isinstance(engine, Connection):
        row = engine.execute(query).first()
    else:
        with engine.connect() as connection:
            row = connection.execute(query).first()
    return None if row is None else _run(row)


def latest_complete_run(
    engine: Engine | Connection, *, before: date | None = None, kind: str = ENTERPRISE_RUN
) -> RunRecord | None:
    """The run readers see: the latest as-of date, then the latest finished, among complete
    runs (strictly before `before` when given: the previous run of a new date)."""
    query = select(runs).where(runs.c.status == RUN_COMPLETE, runs.c.kind == kind)
    if before is not None:
        query = query.where(runs.c.as_of < before)
    query = query.order_by(runs.c.as_of.desc(), runs.c.finished_at.desc(), runs.c.id.desc())
    return _first_run(engine, query.limit(1))


def complete_run_on(engine: Engine | Connection, as_of: date,
                    kind: str = ENTERPRISE_RUN) -> RunRecord | None:
    """The latest complete run for exactly `as_of` (what a replay of that date refers to)."""
    query = (select(runs)
             .where(runs.c.status == RUN_COMPLETE, runs.c.kind == kind, runs.c.as_of == as_of)
             .order_by(runs.c.finished_at.desc(), runs.c.id.desc()).limit(1))
    return _first_run(engine, query)


def latest_reusable_run(
    engine: Engine | Connection, *, model_name: str, model_version: str, policy_hash: str,
    top_k: int,
) -> RunRecord | None:
    """The most recently finished complete run made by the same model version and policy:
    the only runs whose SHAP reasons a new run may reuse."""
    query = (select(runs)
             .where(runs.c.status == RUN_COMPLETE, runs.c.model_name == model_name,
                    runs.c.model_version == model_version, runs.c.policy_hash == policy_hash,
                    runs.c.top_k == top_k)
             .order_by(runs.c.finished_at.desc(), runs.c.id.desc()).limit(1))
    return _first_run(engine, query)


def list_runs(engine: Engine) -> pd.DataFrame:
    """Every run, newest first (status included: operators see crashed runs too)."""
    columns = [runs.c.id, runs.c.as_of, runs.c.status, runs.c.model_name, runs.c.model_version,
               runs.c.policy_version, runs.c.snapshot_id, runs.c.n_entities, runs.c.started_at,
               runs.c.finished_at]
    with engine.connect() as connection:
        return pd.read_sql(select(*columns).order_by(runs.c.id.desc()), connection)


def completed_chunks(connection: Connection, run_id: int) -> set[int]:
    rows = connection.execute(select(run_chunks.c.chunk).where(run_chunks.c.run_id == run_id))
    return {int(r[0]) for r in rows}


def chunk_totals(connection: Connection, run_id: int) -> dict[str, Any]:
    """Explained/reused counts and summed stage seconds over a run's committed chunks."""
    rows = connection.execute(
        select(run_chunks.c.explained, run_chunks.c.reused, run_chunks.c.seconds)
        .where(run_chunks.c.run_id == run_id)).all()
    seconds: dict[str, float] = {}
    for row in rows:
        for stage, value in (row.seconds or {}).items():
            seconds[stage] = seconds.get(stage, 0.0) + float(value)
    return {"explained": sum(int(r.explained) for r in rows),
            "reused": sum(int(r.reused) for r in rows), "seconds": seconds}


# --------------------------------------------------------------------------- policies


def record_policy(connection: Connection, policy_hash: str, version: str, content: str) -> None:
    """Keep the exact policy a run used, so a replay works after the file has changed."""
    exists = connection.execute(
        select(policies.c.policy_hash).where(policies.c.policy_hash == policy_hash)).first()
    if exists is None:
        connection.execute(policies.insert().values(
            policy_hash=policy_hash, version=version, content=content, recorded_at=utc_now()))


def stored_policy(engine: Engine, policy_hash: str) -> str | None:
    with engine.connect() as connection:
        value = connection.execute(
            select(policies.c.content).where(policies.c.policy_hash == policy_hash)).scalar()
    return None if value is None else str(value)


# --------------------------------------------------------------------------- readers

_SCORE_COLUMNS = ["uscc", "raw_score", "probability", "score_class", "risk_class", "overrides",
                  "class_reason_zh", "class_reason_en", "input_hash", "explain_key",
                  "explained"]
REASON_COLUMNS = ["uscc", "rank", "feature", "value", "contribution", "raises_risk",
                  "reason_code", "text_zh", "text_en"]


def _resolve_run(engine: Engine, run: RunRecord | int | None) -> RunRecord | None:
    if run is None:
        return latest_complete_run(engine)
    if isinstance(run, RunRecord):
        return run
    return get_run(engine, int(run))


def _scores_from_rows(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.rename(columns={"risk_class": "class"})
    frame["explained"] = frame["explained"].astype(bool)
    return frame.set_index("uscc")


def scores_frame(engine: Engine, run: RunRecord | int | None = None, *,
                 with_reasons: bool = False) -> pd.DataFrame:
    """One row per enterprise of `run` (default: the latest complete run), indexed by uscc.

    Columns: raw_score, probability, score_class, class, overrides, class_reason_zh/en,
    input_hash, explain_key, explained; with `with_reasons`, top_reasons_zh/en joined by
    "；" in rank order, as `models.scoring.score_population` shows them.
    """
    record = _resolve_run(engine, run)
    if record is None:
        return pd.DataFrame(columns=_SCORE_COLUMNS[1:]).rename_axis("uscc")
    query = (select(*[enterprise_scores.c[c] for c in _SCORE_COLUMNS])
             .where(enterprise_scores.c.run_id == record.id)
             .order_by(enterprise_scores.c.uscc))
    with engine.connect() as connection:
        frame = _scores_from_rows(pd.read_sql(query, connection))
    if with_reasons:
        texts = reasons_frame(engine, record)
        for language in ("zh", "en"):
            joined = texts.groupby("uscc", sort=False)[f"text_{language}"].agg("；".join)
            frame[f"top_reasons_{language}"] = joined.reindex(frame.index).fillna("")
    return frame


def reasons_frame(engine: Engine, run: RunRecord | int | None = None,
                  usccs: Sequence[str] | None = None) -> pd.DataFrame:
    """The run's reasons in long format (uscc, rank, feature, value, contribution, ...)."""
    record = _resolve_run(engine, run)
    if record is None:
        return pd.DataFrame(columns=REASON_COLUMNS)
    query = select(*[reasons.c[c] for c in REASON_COLUMNS]).where(reasons.c.run_id == record.id)
    if usccs is not None:
        query = query.where(reasons.c.uscc.in_(list(usccs)))
    with engine.connect() as connection:
        frame = pd.read_sql(query.order_by(reasons.c.uscc, reasons.c.rank), connection)
    frame["value"] = frame["value"].astype(float)
    frame["raises_risk"] = frame["raises_risk"].astype(bool)
    return frame


def enterprise_score(engine: Engine, uscc: str,
                     run: RunRecord | int | None = None) -> dict[str, Any] | None:
    """One enterprise's decision in `run` (default: the latest complete run), with its reasons
    and the identity of what made it; None when the run did not score it."""
    record = _resolve_run(engine, run)
    if record is None:
        return None
    query = select(*[enterprise_scores.c[c] for c in _SCORE_COLUMNS]).where(
        enterprise_scores.c.run_id == record.id, enterprise_scores.c.uscc == uscc)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    decision = dict(row._mapping)
    decision["class"] = decision.pop("risk_class")
    decision["explained"] = bool(decision["explained"])
    decision.update(run_id=record.id, as_of=record.as_of, model_name=record.model_name,
                    model_version=record.model_version, policy_version=record.policy_version,
                    policy_hash=record.policy_hash, snapshot_id=record.snapshot_id)
    decision["reasons"] = reasons_frame(engine, record, [uscc]).drop(columns="uscc").to_dict(
        orient="records")
    return decision


_HISTORY_COLUMNS = ("as_of", "run_id", "risk_class", "score_class", "probability", "overrides",
                    "model_version", "policy_version")


def class_history_rows(engine: Engine, uscc: str) -> list[Any]:
    """The enterprise's class over every complete run, oldest first, as plain rows (the
    service's hot read path builds no data frame); columns `_HISTORY_COLUMNS`."""
    query = (select(runs.c.as_of, enterprise_scores.c.run_id, enterprise_scores.c.risk_class,
                    enterprise_scores.c.score_class, enterprise_scores.c.probability,
                    enterprise_scores.c.overrides, runs.c.model_version, runs.c.policy_version)
             .join(runs, runs.c.id == enterprise_scores.c.run_id)
             .where(enterprise_scores.c.uscc == uscc, runs.c.status == RUN_COMPLETE)
             .order_by(runs.c.as_of, runs.c.finished_at, runs.c.id))
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def class_history(engine: Engine, uscc: str) -> pd.DataFrame:
    """The enterprise's class over every complete run, oldest first."""
    frame = pd.DataFrame([tuple(r) for r in class_history_rows(engine, uscc)],
                         columns=list(_HISTORY_COLUMNS)).rename(columns={"risk_class": "class"})
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    return frame


def monitoring_payloads(engine: Engine, run: RunRecord | int | None = None
                        ) -> dict[str, Any]:
    """Every monitoring payload stored with `run` (default: latest complete), by kind."""
    record = _resolve_run(engine, run)
    if record is None:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(select(monitoring.c.kind, monitoring.c.payload)
                                  .where(monitoring.c.run_id == record.id)).all()
    return {str(r.kind): _loaded(r.payload) for r in rows}


def _loaded(payload: Any) -> Any:
    return json.loads(payload) if isinstance(payload, str) else payload


_PROJECT_GRADE_COLUMNS = ["project_id", "model_name", "model_version", "risk_source_grade",
                          "risk_source_points", "management_grade", "probability", "cell",
                          "level", "level_rank", "interval_days", "last_inspection_date",
                          "next_due_date", "overrides", "reasons", "input_hash"]
_TRIGGER_CASE_COLUMNS = ["case_id", "uscc", "today", "opened_on", "updated_on", "status",
                         "action", "severity", "tolerated", "rules", "risk_class", "payload"]


def _dates(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def project_grades_frame(engine: Engine, run: RunRecord | int | None = None) -> pd.DataFrame:
    """Every project graded by `run` (default: the latest complete run), by project id.

    One row per project under construction on the run's as-of date: the project model's
    name and version, risk-source grade (R1–R4) and points, management grade (M1–M4) and
    probability, matrix cell, supervision level (code and rank, 0 = most intensive), its
    interval, last inspection, next due date, override codes (comma-joined), the reasons as
    the matrix shows them ("中文 / English; …": risk source, model, overrides) and the hash of
    the project's model inputs.
    Empty when the run had no project champion (its summary says the stage was skipped).
    """
    record = _resolve_run(engine, run)
    if record is None:
        return pd.DataFrame(columns=_PROJECT_GRADE_COLUMNS)
    query = (select(*[project_grades.c[c] for c in _PROJECT_GRADE_COLUMNS])
             .where(project_grades.c.run_id == record.id)
             .order_by(project_grades.c.project_id))
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    frame["probability"] = frame["probability"].astype(float)
    return _dates(frame, ["last_inspection_date", "next_due_date"])


def trigger_cases_frame(engine: Engine, run: RunRecord | int | None = None) -> pd.DataFrame:
    """The trigger cases published with `run` (default: the latest complete run).

    One row per case open on the run's as-of date or touched by that day's evaluation:
    `today` is "opened", "updated" or "" (still open, untouched). `rules` is comma-joined;
    `payload` holds the evidence (rule, records, observed values against thresholds,
    bilingual text), tags, class reasons and tolerance details as a dict.
    """
    record = _resolve_run(engine, run)
    if record is None:
        return pd.DataFrame(columns=_TRIGGER_CASE_COLUMNS)
    query = (select(*[trigger_cases.c[c] for c in _TRIGGER_CASE_COLUMNS])
             .where(trigger_cases.c.run_id == record.id)
             .order_by(trigger_cases.c.case_id))
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    frame["tolerated"] = frame["tolerated"].astype(bool)
    frame["payload"] = [_loaded(p) for p in frame["payload"]]
    return _dates(frame, ["opened_on", "updated_on"])


def campaigns_frame(engine: Engine) -> pd.DataFrame:
    """Every published campaign (status = its last published step), newest plan first."""
    with engine.connect() as connection:
        frame = pd.read_sql(select(campaigns).order_by(campaigns.c.planned_at.desc(),
                                                       campaigns.c.campaign_id), connection)
    frame["payload"] = [_loaded(p) for p in frame["payload"]]
    return frame


def draws_frame(engine: Engine, campaign_id: str | None = None) -> pd.DataFrame:
    """Published draws (one per campaign), with the public notice as `payload`."""
    query = select(draws).order_by(draws.c.drawn_at, draws.c.campaign_id)
    if campaign_id is not None:
        query = query.where(draws.c.campaign_id == campaign_id)
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    frame["payload"] = [_loaded(p) for p in frame["payload"]]
    return frame


def campaign_actions_frame(engine: Engine, campaign_id: str | None = None) -> pd.DataFrame:
    """Published campaign actions in log order, each with the audit record's sequence."""
    query = select(campaign_actions).order_by(campaign_actions.c.audit_seq)
    if campaign_id is not None:
        query = query.where(campaign_actions.c.campaign_id == campaign_id)
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    frame["payload"] = [_loaded(p) for p in frame["payload"]]
    return frame
