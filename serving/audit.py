"""The tamper-evident audit trail: an append-only, hash-chained log of decisions and actions.

Every decision of a nightly run (one record per enterprise) and every campaign action
(commitment, draw, assignment, publication) is one record. Record ``n`` stores
``prev_hash`` (the hash of record ``n - 1``, or 64 zeros for the first) and

    hash = sha256(prev_hash ‖ canonical JSON of the record)

where the record is the object ``{as_of, entity, kind, payload, recorded_at, run_id, seq}``
serialised with sorted keys, no whitespace, UTF-8 (``ensure_ascii=False``), NaN written as
null. Anyone can re-implement the check from this paragraph. Editing a record changes its
hash; deleting one leaves a gap in ``seq``; moving or inserting one breaks the next record's
``prev_hash`` (``seq`` is inside the hashed text, so renumbering breaks the hashes too). A
deleted *tail* cannot be seen by the chain alone, so each published run stores the head
(seq, hash) it ended at and `verify_chain` checks those anchors; operators who copy the head
printed by `riskmatrix audit verify` somewhere else can prove the whole history.

Every append takes the chain's write lock (`lock_chain`) before it reads the head, inside
the caller's transaction: an advisory lock on PostgreSQL, the database write lock on SQLite.
Writers in other connections or processes (the nightly job, the API's read trail, the CLI)
queue instead of racing for the same ``seq``; ``seq`` is the primary key as a last guard, so
a writer that skipped the lock would fail rather than fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from serving.store import (
    RUN_COMPLETE,
    audit_log,
    insert_statement,
    insert_tuples,
    json_ready,
    runs,
    utc_now,
)

GENESIS_HASH = "0" * 64
DECISION = "decision"
RUN_PUBLISHED = "run.published"
# Who (username, role) looked at a decision: one record per read through the API or pages.
DECISION_READ = "decision.read"
# One record per project placed on the risk matrix and per trigger case a run opened or
# updated (nightly stages after the enterprise decisions).
PROJECT_GRADE = "project.grade"
TRIGGER_CASE = "trigger.case"
# Campaign actions the campaign engine records through `append_event`.
CAMPAIGN_EVENTS = ("campaign.commitment", "campaign.draw", "campaign.assignment",
                   "campaign.publication")
_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_ADVISORY_LOCK_KEY = 0x72697363  # "risc": one chain per database
VERIFY_BATCH = 50_000


class AuditError(Exception):
    """An audit operation cannot be done as asked (message bilingual, zh first)."""


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False)
_SCALAR = json.JSONEncoder(ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text; NaN/inf become null (JSON has neither).

    Plain payloads go straight to the C encoder (a nightly run writes one per enterprise);
    numpy scalars, dates and non-finite floats take the slower cleaning path.
    """
    try:
        return _CANONICAL.encode(value)
    except (TypeError, ValueError):
        return _CANONICAL.encode(json_ready(value))


def _scalar_json(value: Any) -> str:
    """`_SCALAR.encode(value)`, with the column types a record has (text, whole numbers,
    null) written directly: the read trail chains one record per API read."""
    if value is None:
        return "null"
    if type(value) is str:
        return encode_basestring(value)  # the encoder's own C routine for ensure_ascii=False
    if type(value) is int:
        return int.__repr__(value)
    return _SCALAR.encode(value)


def record_text(seq: int, kind: str, recorded_at: str, entity: str | None, as_of: str | None,
                run_id: int | None, payload_json: str) -> str:
    """The canonical JSON of one record, from its columns (payload already canonical).

    Built by concatenation in sorted-key order so a million decisions are not serialised
    twice; equal to `canonical_json` of the assembled object (a test checks it).
    """
    return (f'{{"as_of":{_scalar_json(as_of)},"entity":{_scalar_json(entity)},'
            f'"kind":{_scalar_json(kind)},"payload":{payload_json},'
            f'"recorded_at":{_scalar_json(recorded_at)},"run_id":{_scalar_json(run_id)},'
            f'"seq":{int(seq)}}}')


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256((prev_hash + record_json).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """What a caller appends: the chain fields (seq, hashes, time) are added here."""

    kind: str
    payload: Mapping[str, Any]
    entity: str | None = None
    as_of: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One stored record of the chain."""

    seq: int
    kind: str
    recorded_at: str
    entity: str | None
    as_of: str | None
    run_id: int | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def lock_chain(connection: Connection) -> None:
    """Hold the chain's write lock until the caller's transaction ends; call it before
    reading the head, so no other writer can append between the read and the insert.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the database write lock, taken
    by a statement that writes nothing (the driver opens the transaction before it, and the
    statement takes SQLite's RESERVED lock, waiting on `busy_timeout` for other writers) —
    the same lock the API's audit writer takes with BEGIN IMMEDIATE. A transaction that has
    already written holds it; taking it again is free.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": _ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        connection.execute(text(f"UPDATE {audit_log.name} SET seq = seq WHERE 0"))


HEAD_SQL = f"SELECT seq, hash FROM {audit_log.name} ORDER BY seq DESC LIMIT 1"
RECORD_COLUMNS = ("seq", "kind", "recorded_at", "entity", "as_of", "run_id", "payload",
                  "prev_hash", "hash")
_INSERT_SQL = insert_statement(audit_log, RECORD_COLUMNS)


def _head(row: Any) -> tuple[int, str]:
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def chain_head(connection: Connection) -> tuple[int, str]:
    """(seq, hash) of the last record; (0, genesis) for an empty log."""
    return _head(connection.exec_driver_sql(HEAD_SQL).first())


def _check_kind(kind: str) -> None:
    if not _KIND.match(kind):
        raise AuditError(f"审计事件类型无效 {kind!r} / invalid audit event kind {kind!r}: "
                         "lower-case letters, digits, '.', '_' or '-', at most 64 characters")


def chain_rows(seq: int, head: str, entries: Sequence[AuditEntry],
               recorded_at: str) -> list[tuple[Any, ...]]:
    """The rows (in `RECORD_COLUMNS` order) that append `entries` after record `seq` whose
    hash is `head`: numbered, stamped and chained. Pure; the callers insert them."""
    rows = []
    for entry in entries:
        _check_kind(entry.kind)
        seq += 1
        payload_json = canonical_json(entry.payload)
        digest = chain_hash(head, record_text(seq, entry.kind, recorded_at, entry.entity,
                                              entry.as_of, entry.run_id, payload_json))
        rows.append((seq, entry.kind, recorded_at, entry.entity, entry.as_of, entry.run_id,
                     payload_json, head, digest))
        head = digest
    return rows


def append_entries(connection: Connection, entries: Sequence[AuditEntry]) -> tuple[int, str]:
    """Chain and insert `entries` in order with one INSERT; returns the new head.

    Runs inside the caller's transaction, so the records commit (or vanish) together with
    whatever they record — a nightly chunk and its decisions are one unit.
    """
    lock_chain(connection)
    seq, head = chain_head(connection)
    if not entries:
        return seq, head
    rows = chain_rows(seq, head, entries, utc_now().isoformat(timespec="microseconds"))
    insert_tuples(connection, audit_log, RECORD_COLUMNS, rows)
    return rows[-1][0], rows[-1][-1]


def append_entries_sqlite(connection: sqlite3.Connection,
                          entries: Sequence[AuditEntry]) -> tuple[int, str]:
    """`append_entries` on a bare sqlite3 connection whose transaction already holds the
    write lock (BEGIN IMMEDIATE): the API's read trail appends a batch per event-loop turn,
    and SQLAlchemy's statement handling was a third of that append's time."""
    seq, head = _head(connection.execute(HEAD_SQL).fetchone())
    if not entries:
        return seq, head
    rows = chain_rows(seq, head, entries, utc_now().isoformat(timespec="microseconds"))
    connection.executemany(_INSERT_SQL, rows)
    return rows[-1][0], rows[-1][-1]


def append_event(store: Engine | Connection, kind: str, payload: Mapping[str, Any], *,
                 entity: str | None = None, as_of: str | None = None,
                 run_id: int | None = None) -> AuditRecord:
    """Append one action (e.g. "campaign.draw" with its seed and list hash) and return it.

    With an Engine the record commits on its own; with a Connection it joins the caller's
    transaction (append the record in the same transaction as the action it records).
    """
    entry = AuditEntry(kind, payload, entity, as_of, run_id)
    if isinstance(store, Engine):
        with store.begin() as connection:
            seq, _ = append_entries(connection, [entry])
            return _record_at(connection, seq)
    seq, _ = append_entries(store, [entry])
    return _record_at(store, seq)


def _as_record(row: Any) -> AuditRecord:
    data = dict(row._mapping)
    data["payload"] = json.loads(data["payload"])
    data["seq"] = int(data["seq"])
    return AuditRecord(**data)


def _record_at(connection: Connection, seq: int) -> AuditRecord:
    row = connection.execute(select(audit_log).where(audit_log.c.seq == seq)).one()
    return _as_record(row)


def decision_record(engine: Engine, entity: str, run_id: int) -> AuditRecord | None:
    """The decision record a run wrote for `entity` (the latest, should there be several)."""
    query = (select(audit_log)
             .where(audit_log.c.kind == DECISION, audit_log.c.entity == entity,
                    audit_log.c.run_id == run_id)
             .order_by(audit_log.c.seq.desc()).limit(1))
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else _as_record(row)


def records(engine: Engine, *, entity: str | None = None, limit: int = 100,
            include_reads: bool = True) -> list[AuditRecord]:
    """The latest `limit` records, oldest first (all kinds, or one entity's); without
    `include_reads` the reads of decisions are left out, so a firm that is looked at often
    still shows its decisions and actions."""
    query = select(audit_log)
    if entity is not None:
        query = query.where(audit_log.c.entity == entity)
    if not include_reads:
        query = query.where(audit_log.c.kind != DECISION_READ)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(audit_log.c.seq.desc()).limit(limit)).all()
    return [_as_record(r) for r in reversed(rows)]


# --------------------------------------------------------------------------- decisions


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def decision_payload(*, as_of: str, model_name: str, model_version: str, policy_version: str,
                     policy_hash: str, snapshot_id: str, input_hash: str, raw_score: float,
                     probability: float, score_class: str, risk_class: str,
                     overrides: Sequence[str], reasons: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """What one decision record holds; `reasons` are (reason_code, value, contribution)
    in rank order. Replay rebuilds this payload and compares it field by field."""
    return {
        "as_of": as_of, "model_name": model_name, "model_version": model_version,
        "policy_version": policy_version, "policy_hash": policy_hash,
        "snapshot_id": snapshot_id, "input_hash": input_hash,
        "raw_score": _number(raw_score), "probability": _number(probability),
        "score_class": score_class, "class": risk_class, "overrides": list(overrides),
        "reasons": [[str(code), None if value is None else _number(value), _number(share)]
                    for code, value, share in reasons],
    }


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ChainProblem:
    """The first bad place in the chain."""

    seq: int
    problem: str
    zh: str
    en: str


@dataclass(frozen=True)
class ChainReport:
    """What `verify_chain` found: record count, head and the first problem (if any)."""

    records: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None
    anchors_checked: int

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if self.problem is None:
            return (f"审计链完好: {self.records} 条记录, 已核对 {self.anchors_checked} "
                    f"个运行锚点 / audit chain intact: {self.records} records, "
                    f"{self.anchors_checked} run anchors checked\n"
                    f"链头 / head: seq {self.head_seq} {self.head_hash}")
        p = self.problem
        return (f"审计链被破坏, 第一处问题在序号 {p.seq}: {p.zh} / audit chain broken, first "
                f"bad record at seq {p.seq}: {p.en}")


def _recompute(row: Any) -> str:
    return chain_hash(str(row.prev_hash), record_text(
        int(row.seq), str(row.kind), str(row.recorded_at), row.entity, row.as_of, row.run_id,
        str(row.payload)))


def _row_problem(row: Any, expected_seq: int, previous_hash: str) -> ChainProblem | None:
    seq = int(row.seq)
    if seq != expected_seq:
        return ChainProblem(
            expected_seq, "missing",
            f"缺少序号 {expected_seq} 至 {seq - 1} 的记录 (记录被删除)",
            f"records {expected_seq}..{seq - 1} are missing (deleted)")
    if row.prev_hash != previous_hash:
        return ChainProblem(
            seq, "broken_link",
            "前序哈希与上一条记录不符 (其前有记录被插入、删除或调换顺序)",
            "prev_hash does not match the record before it (a record was inserted, "
            "deleted or reordered before it)")
    if _recompute(row) != row.hash:
        return ChainProblem(
            seq, "altered", "记录内容与其哈希不符 (记录被修改)",
            "the record's content does not match its hash (the record was altered)")
    return None


def _anchor_problem(connection: Connection, head_seq: int) -> tuple[ChainProblem | None, int]:
    """Each complete run's stored head must still be in the chain, with the same hash."""
    anchors = connection.execute(
        select(runs.c.id, runs.c.audit_head_seq, runs.c.audit_head_hash)
        .where(runs.c.status == RUN_COMPLETE, runs.c.audit_head_seq.is_not(None))
        .order_by(runs.c.audit_head_seq)).all()
    for anchor in anchors:
        seq = int(anchor.audit_head_seq)
        if seq > head_seq:
            return ChainProblem(
                head_seq + 1, "truncated",
                f"运行 {anchor.id} 发布于序号 {seq}, 但链只到 {head_seq} (末尾记录被删除)",
                f"run {anchor.id} was published at seq {seq} but the chain ends at "
                f"{head_seq} (records at the end were deleted)"), len(anchors)
        stored = connection.execute(select(audit_log.c.hash)
                                    .where(audit_log.c.seq == seq)).scalar()
        if stored != anchor.audit_head_hash:
            return ChainProblem(
                seq, "anchor_mismatch",
                f"运行 {anchor.id} 记录的链头哈希与序号 {seq} 的记录不符",
                f"run {anchor.id}'s recorded head hash differs from record {seq}"), len(anchors)
    return None, len(anchors)


def verify_chain(engine: Engine, batch: int = VERIFY_BATCH) -> ChainReport:
    """Recompute the whole chain in `seq` order, streaming; report the first bad record."""
    expected_seq, previous_hash, count = 1, GENESIS_HASH, 0
    problem: ChainProblem | None = None
    with engine.connect() as connection:
        last_seq = 0
        while problem is None:
            rows = connection.execute(
                select(audit_log).where(audit_log.c.seq > last_seq)
                .order_by(audit_log.c.seq).limit(batch)).all()
            if not rows:
                break
            for row in rows:
                problem = _row_problem(row, expected_seq, previous_hash)
                if problem is not None:
                    break
                count += 1
                expected_seq, previous_hash = int(row.seq) + 1, str(row.hash)
            last_seq = int(rows[-1].seq)
        anchors = 0
        if problem is None:
            problem, anchors = _anchor_problem(connection, expected_seq - 1)
    return ChainReport(count, expected_seq - 1, previous_hash, problem, anchors)
