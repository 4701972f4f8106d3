"""Read functions shared by the API and the web pages, returning the API's models.

Every look at a decision goes through `record_read`, so the API and the pages leave the same
trail: one "decision.read" audit event naming who read what, chained like every decision.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Future
from typing import Any

import pandas as pd
from sqlalchemy import Engine, inspect, select

from serving.api.auth import Principal, Role
from serving.api.schemas import (
    CampaignSummary,
    CampaignView,
    ClassHistoryPoint,
    Dashboard,
    EnterpriseDecision,
    InspectorList,
    ListTarget,
    ProjectDecision,
    ProjectMatrix,
    ProjectPlacement,
    Reason,
    Stratum,
)
from serving.audit import DECISION_READ, AuditEntry, append_entries, append_entries_sqlite
from serving.settings import Settings
from serving.store import (
    RunRecord,
    apply_sqlite_pragmas,
    class_history_rows,
    enterprise_scores,
    latest_complete_run,
    list_runs,
    monitoring_payloads,
    reasons,
)

LOG = logging.getLogger("riskmatrix.serving")


class NotFoundError(LookupError):
    """The asked-for entity has no decision (message bilingual, zh first; the API's 404)."""


# --------------------------------------------------------------------------- the read trail


APPEND_ATTEMPTS = 5
MAX_BATCH = 512  # entries per transaction: bounds one commit's time under a burst
WRITER_IDLE_SECONDS = 1.0  # the writer thread ends after this long without work
CHECKPOINT_SECONDS = 0.5  # how often the read trail's WAL pages are copied into the database
# Past this many frames (pages, 4 kB each) the checkpointer rewinds the WAL (see
# `ReadRecorder._rewind_wal`); readers that keep it from doing so make it give up after
# WAL_REWIND_WAIT_SECONDS, retried next round.
WAL_REWIND_FRAMES = 65_536
WAL_REWIND_WAIT_SECONDS = 0.05


def _sqlite_writer(engine: Engine) -> sqlite3.Connection | None:
    """The read trail's own driver connection to `engine`'s SQLite file (None for other
    dialects and in-memory stores, which append through `engine`: PostgreSQL locks the
    chain itself). Its transactions start with BEGIN IMMEDIATE: the write lock is taken
    before the chain head is read, so writers in other processes (more service workers, the
    CLI) queue on `busy_timeout` instead of racing for the same `seq`. Its commits never
    checkpoint the WAL (SQLite's automatic checkpoint syncs the database file inside a
    commit, tens of milliseconds on a loaded disk): the recorder's checkpoint thread does
    that. A bare sqlite3 connection, not a second engine: SQLAlchemy's statement handling
    was a third of a batch's append."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    # Appends come from the event loop's thread and the writer thread, one at a time.
    connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    apply_sqlite_pragmas(connection)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


class ReadRecorder:
    """Appends read events for one engine with group commit: reads waiting at the same time
    share one transaction, so 32 concurrent reads cost about one commit, not 32. A caller
    returns only after its own event committed (or with the error that stopped it), so no
    read is answered without its record.

    Async endpoints (`record_async`) are batched per event-loop iteration and committed on
    the loop's own thread: a commit in WAL mode takes a fraction of a millisecond, less than
    handing work to another thread and back under the GIL. Sync callers (pages, CLI, tests)
    queue for a writer thread that commits everything queued since its last commit. Both
    take `_append_lock`, one append at a time per process; across processes SQLite's write
    lock (BEGIN IMMEDIATE) orders them. The chain's `seq` is its primary key: an append racing
    a writer that does not lock first (the nightly job) fails on the key and is retried on
    the new head, never forked.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._append_lock = threading.Lock()
        self._pending: list[tuple[AuditEntry, Future[None]]] = []
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._loop_batches: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[AuditEntry, asyncio.Future[None]]]
        ] = weakref.WeakKeyDictionary()
        self.commits = 0  # transactions committed (tests check that reads share them)

    # ------------------------------------------------------------------ sync callers

    def submit(self, entry: AuditEntry) -> Future[None]:
        """Queue `entry` for the writer thread; the future completes once it is committed."""
        future: Future[None] = Future()
        with self._condition:
            self._pending.append((entry, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, daemon=True,
                                                name="riskmatrix-audit-writer")
                self._thread.start()
            else:
                self._condition.notify()
        return future

    def record(self, entry: AuditEntry) -> None:
        """Append `entry` and return once it is committed (raises what stopped it)."""
        self.submit(entry).result()

    def _drain(self) -> None:
        while True:
            with self._condition:
                if not self._pending:
                    self._condition.wait(WRITER_IDLE_SECONDS)
                if not self._pending:
                    self._thread = None
                    return
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
            try:
                self.append([entry for entry, _ in batch])
            except BaseException as error:  # every waiter learns why; the thread carries on
                for _, future in batch:
                    future.set_exception(error)
            else:
                for _, future in batch:
                    future.set_result(None)

    # ------------------------------------------------------------------ async callers

    async def record_async(self, entry: AuditEntry) -> None:
        """Append `entry` with every read of this loop iteration; returns once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        batch = self._loop_batches.get(loop)
        if batch is None:  # the first read schedules the commit one loop turn later, so
            batch = self._loop_batches[loop] = []  # requests parsed meanwhile join it
            loop.call_soon(loop.call_soon, self._flush_loop_batch, loop)
        batch.append((entry, future))
        await future

    def _flush_loop_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._loop_batches.pop(loop, [])
        for start in range(0, len(batch), MAX_BATCH):
            part = batch[start:start + MAX_BATCH]
            try:
                self.append([entry for entry, _ in part])
            except Exception as error:
                for _, future in part:
                    if not future.done():
                        future.set_exception(error)
            else:
                for _, future in part:
                    if not future.done():
                        future.set_result(None)

    # ------------------------------------------------------------------ the append

    def append(self, entries: list[AuditEntry]) -> None:
        """Chain and commit `entries` in one transaction (retried on a racing writer)."""
        from sqlalchemy.exc import IntegrityError, OperationalError

        with self._append_lock:
            for attempt in range(APPEND_ATTEMPTS):
                try:
                    if self._driver is None:
                        with self._engine.begin() as connection:
                            append_entries(connection, entries)
                    else:
                        _append_immediately(self._driver, entries)
                    self.commits += 1
                    self._start_checkpointer()
                    return
                except (IntegrityError, OperationalError, sqlite3.IntegrityError,
                        sqlite3.OperationalError):
                    if attempt == APPEND_ATTEMPTS - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))

    @functools.cached_property
    def _driver(self) -> sqlite3.Connection | None:
        """The SQLite writer connection, opened by the first append (see `_sqlite_writer`)."""
        return _sqlite_writer(self._engine)

    def _start_checkpointer(self) -> None:
        if self._checkpointer is None and self._driver is not None:
            self._checkpointer = threading.Thread(target=self._checkpoint_while_busy,
                                                  daemon=True, name="riskmatrix-checkpoint")
            self._checkpointer.start()

    def _checkpoint_while_busy(self) -> None:
        """Copy committed WAL pages into the database every `CHECKPOINT_SECONDS` while
        reads are being recorded (PASSIVE: never waits for, nor blocks, readers or writers);
        ends after an idle period with a last checkpoint."""
        done = self.commits
        idle_since = time.monotonic()
        while True:
            time.sleep(CHECKPOINT_SECONDS)
            if self.commits != done:
                done = self.commits
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > WRITER_IDLE_SECONDS:
                with self._append_lock:
                    self._checkpointer = None
                self._checkpoint()
                return
            if self._checkpoint() > WAL_REWIND_FRAMES:
                self._rewind_wal()

    def _rewind_wal(self) -> None:
        """Keep the WAL bounded under continuous reads. SQLite rewinds it only once every
        frame is checkpointed, which a PASSIVE round never achieves while commits keep
        coming (it grew ~25 MB/s at 5,000 reads/s, gigabytes per sustained burst). Past
        `WAL_REWIND_FRAMES` this process's appends pause for one RESTART checkpoint (the few
        frames committed since the PASSIVE round just before, two syncs: ~20-30 ms), after
        which the next commit writes from the file's start again. Not TRUNCATE: freeing and
        re-allocating a quarter gigabyte stalled appends for 150-600 ms."""
        import sqlite3

        database = self._engine.url.database
        if not database:
            return
        with self._append_lock:
            connection = sqlite3.connect(database, timeout=WAL_REWIND_WAIT_SECONDS)
            try:
                connection.execute("PRAGMA wal_checkpoint(RESTART)")
            except sqlite3.Error:  # a reader held on: the next round tries again
                LOG.debug("WAL rewind skipped", exc_info=True)
            finally:
                connection.close()

    def _checkpoint(self) -> int:
        """A PASSIVE checkpoint; the frames in the WAL (0 when the store was busy)."""
        try:
            with self._engine.connect() as connection:
                row = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").first()
        except Exception:  # a busy store: the next round (or any other writer) catches up
            LOG.debug("WAL checkpoint skipped", exc_info=True)
            return 0
        return int(row[1]) if row is not None and row[1] is not None else 0


def _append_immediately(connection: sqlite3.Connection, entries: list[AuditEntry]) -> None:
    """`entries` appended in one BEGIN IMMEDIATE ... COMMIT on the writer's connection."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        append_entries_sqlite(connection, entries)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


_RECORDERS: weakref.WeakKeyDictionary[Engine, ReadRecorder] = weakref.WeakKeyDictionary()
_RECORDERS_LOCK = threading.Lock()


def read_recorder(engine: Engine) -> ReadRecorder:
    """The one recorder (and writer thread) of `engine` in this process."""
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(engine)
        if recorder is None:
            recorder = _RECORDERS[engine] = ReadRecorder(engine)
        return recorder


def read_entry(principal: Principal, entity: str, what: str, *, run_id: int | None = None,
               as_of: dt.date | None = None) -> AuditEntry:
    """The "decision.read" record of who (username, role) read which decision."""
    payload = {"reader": principal.username, "role": principal.role.value, "what": what}
    return AuditEntry(DECISION_READ, payload, entity=entity,
                      as_of=None if as_of is None else as_of.isoformat(), run_id=run_id)


def record_read(engine: Engine, principal: Principal, entity: str, what: str, *,
                run_id: int | None = None, as_of: dt.date | None = None) -> None:
    """Append who (username, role) read which decision (`what`: enterprise, list, project...)."""
    read_recorder(engine).record(read_entry(principal, entity, what, run_id=run_id,
                                            as_of=as_of))


async def record_read_async(engine: Engine, principal: Principal, entity: str, what: str, *,
                            run_id: int | None = None, as_of: dt.date | None = None) -> None:
    """`record_read` for async endpoints: awaits the group commit without holding a thread."""
    await read_recorder(engine).record_async(read_entry(principal, entity, what,
                                                        run_id=run_id, as_of=as_of))


# --------------------------------------------------------------------------- enterprises

_SCORE_FIELDS = ("probability", "score_class", "risk_class", "overrides", "class_reason_zh",
                 "class_reason_en", "input_hash")
_REASON_FIELDS = ("rank", "feature", "value", "contribution", "raises_risk", "reason_code",
                  "text_zh", "text_en")


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def published_class(engine: Engine, run: RunRecord, uscc: str) -> str | None:
    """The enterprise's class in `run` (None when the run did not score it): the previous
    class an on-demand score's hysteresis starts from, one indexed lookup (no reasons)."""
    with engine.connect() as connection:
        value = connection.execute(
            select(enterprise_scores.c.risk_class)
            .where(enterprise_scores.c.run_id == run.id, enterprise_scores.c.uscc == uscc)
        ).scalar()
    return None if value is None else str(value)


def enterprise_history(engine: Engine, uscc: str) -> list[ClassHistoryPoint]:
    """The enterprise's class in every complete run, oldest first."""
    rows = class_history_rows(engine, uscc)
    return [ClassHistoryPoint(as_of=pd.Timestamp(r.as_of).date(), run_id=r.run_id,
                              risk_class=r.risk_class, score_class=r.score_class,
                              probability=float(r.probability), overrides=r.overrides,
                              model_version=r.model_version, policy_version=r.policy_version)
            for r in rows]


def enterprise_decision(engine: Engine, uscc: str, *, run: RunRecord | None = None,
                        name: str | None = None) -> EnterpriseDecision:
    """The enterprise's decision in `run` (default: the latest complete run) with its reasons
    and class history; plain Core queries (no data frames) — this is the hot read path."""
    record = run or latest_complete_run(engine)
    if record is None:
        raise NotFoundError("还没有已发布的评分运行, 请先运行 riskmatrix nightly / no published "
                            "run yet: run `riskmatrix nightly` first")
    with engine.connect() as connection:
        row = connection.execute(
            select(*[enterprise_scores.c[c] for c in _SCORE_FIELDS])
            .where(enterprise_scores.c.run_id == record.id, enterprise_scores.c.uscc == uscc)
        ).first()
        if row is None:
            raise NotFoundError(f"运行 {record.id} ({record.as_of}) 中没有企业 {uscc} 的决定 / "
                                f"no decision for {uscc} in run {record.id} ({record.as_of})")
        reason_rows = connection.execute(
            select(*[reasons.c[c] for c in _REASON_FIELDS])
            .where(reasons.c.run_id == record.id, reasons.c.uscc == uscc)
            .order_by(reasons.c.rank)).all()
    return EnterpriseDecision(
        uscc=uscc, name=name, risk_class=row.risk_class, score_class=row.score_class,
        probability=float(row.probability),
        overrides=[o for o in str(row.overrides).split(",") if o],
        class_reason_zh=row.class_reason_zh, class_reason_en=row.class_reason_en,
        as_of=record.as_of, run_id=record.id, model_name=record.model_name,
        model_version=record.model_version, policy_version=record.policy_version,
        policy_hash=record.policy_hash, snapshot_id=record.snapshot_id,
        input_hash=row.input_hash,
        reasons=[Reason(rank=int(r.rank), feature=r.feature, value=_finite(r.value),
                        contribution=float(r.contribution), raises_risk=bool(r.raises_risk),
                        reason_code=r.reason_code, text_zh=r.text_zh, text_en=r.text_en)
                 for r in reason_rows],
        history=enterprise_history(engine, uscc),
    )


# --------------------------------------------------------------------------- inspector lists


def ranked_lists_frame(settings: Settings) -> pd.DataFrame:
    """Every open visit (campaigns with visits and no results yet), ranked per team, with the
    class, probability and top reasons frozen in the campaign roster."""
    from serving.campaign_store import CampaignStore, list_roster, stored_visits
    from supervision.visits import ranked_inspection_lists

    store = CampaignStore(settings.campaigns)
    visits, involved = stored_visits(store, None)
    if not involved:
        return pd.DataFrame(columns=["team_id", "rank", "visit_id", "visit_date", "uscc",
                                     "name", "class", "probability", "top_reasons_zh",
                                     "top_reasons_en", "departments", "check_items",
                                     "campaign_ids"])
    roster = list_roster(involved)
    ranked = ranked_inspection_lists(visits, roster)
    texts = roster.set_index(roster["uscc"].astype(str))
    for language in ("zh", "en"):
        column = f"top_reasons_{language}"
        source = texts[column] if column in texts.columns else pd.Series(dtype=object)
        ranked[column] = ranked["uscc"].astype(str).map(source).fillna("").astype(str)
    ranked["campaign_ids"] = ranked["visit_id"].map(
        visits.set_index("visit_id")["campaign_ids"]).fillna("")
    return ranked


def _team_members(team_id: str) -> set[str]:
    from features.contract import LIST_SEPARATOR

    return {m.strip() for m in str(team_id).split(LIST_SEPARATOR) if m.strip()}


def _optional_date(value: Any) -> dt.date | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return None
    return pd.Timestamp(value).date()


def inspector_list(engine: Engine, settings: Settings, inspector_id: str, *,
                   ranked: pd.DataFrame | None = None) -> InspectorList:
    """The visits of every team `inspector_id` belongs to, highest risk first per team.

    `ranked` (from `ranked_lists_frame`) lets a caller reuse a cached build; `engine` is kept
    for symmetry with the other readers.
    """
    del engine
    frame = ranked_lists_frame(settings) if ranked is None else ranked
    mine = frame[[inspector_id in _team_members(t) for t in frame["team_id"]]]
    targets = [
        ListTarget(
            team_id=str(r["team_id"]), rank=int(r["rank"]), visit_id=str(r["visit_id"]),
            visit_date=_optional_date(r["visit_date"]), uscc=str(r["uscc"]),
            name=None if pd.isna(r["name"]) else str(r["name"]),
            risk_class=None if pd.isna(r["class"]) else str(r["class"]),
            probability=None if pd.isna(r["probability"]) else float(r["probability"]),
            top_reasons_zh=str(r["top_reasons_zh"]), top_reasons_en=str(r["top_reasons_en"]),
            departments=str(r["departments"]), check_items=str(r["check_items"]))
        for r in mine.to_dict(orient="records")
    ]
    campaign_ids = sorted({c for cell in mine["campaign_ids"] for c in str(cell).split(";")
                           if c})
    return InspectorList(inspector_id=inspector_id, campaign_ids=campaign_ids, targets=targets)


def inspector_targets(ranked: pd.DataFrame, inspector_id: str) -> set[str]:
    """The firms on `inspector_id`'s lists: the only enterprises an inspector may open."""
    return {str(u) for t, u in zip(ranked["team_id"], ranked["uscc"], strict=True)
            if inspector_id in _team_members(t)}


def may_read_enterprise(principal: Principal, uscc: str,
                        targets: Callable[[str], AbstractSet[str]]) -> bool:
    """Regulators and admins read any firm; an inspector only the firms on their own lists."""
    if principal.role in (Role.regulator, Role.admin):
        return True
    return principal.inspector_id is not None and uscc in targets(principal.inspector_id)


# --------------------------------------------------------------------------- projects


def _has_rows(engine: Engine, table: str) -> bool:
    from sqlalchemy import text

    if not inspect(engine).has_table(table):
        return False
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None


def _placement(row: Mapping[str, Any], names: Mapping[str, str]) -> ProjectPlacement:
    project_id = str(row["project_id"])
    probability = row.get("probability")
    interval = row.get("interval_days")
    return ProjectPlacement(
        project_id=project_id, name=names.get(project_id),
        risk_source_grade=str(row["risk_source_grade"]),
        management_grade=str(row["management_grade"]),
        probability=None if probability is None or pd.isna(probability) else float(probability),
        cell=str(row.get("cell") or row.get("matrix_cell") or ""),
        level=str(row.get("level") or row.get("supervision_level") or ""),
        level_zh=None if pd.isna(row.get("level_zh")) else row.get("level_zh"),
        level_en=None if pd.isna(row.get("level_en")) else row.get("level_en"),
        interval_days=None if interval is None or pd.isna(interval) else int(interval),
        next_due=_optional_date(row.get("next_due_date", row.get("next_due"))),
        reasons=str(row.get("reasons") or " / ".join(
            str(row.get(k) or "") for k in ("reasons_zh", "reasons_en")).strip(" /")),
    )


def project_matrix(engine: Engine, settings: Settings) -> ProjectMatrix:
    """Every active project's grades, cell, level, interval and due date: from the results
    store's project table when the nightly job fills it, else computed now with the
    registered project model on the current snapshot (`cli_project.matrix_view`)."""
    if _has_rows(engine, "project_grades"):
        from serving.store import project_grades

        run = latest_complete_run(engine)
        with engine.connect() as connection:
            latest = connection.execute(
                select(project_grades.c.run_id).order_by(project_grades.c.run_id.desc())
                .limit(1)).scalar()
            frame = pd.read_sql(select(project_grades)
                                .where(project_grades.c.run_id == latest), connection)
        placements = [_placement({str(k): v for k, v in r.items()}, {})
                      for r in frame.to_dict(orient="records")]
        return ProjectMatrix(
            as_of=run.as_of if run else dt.date.today(), source=f"store:run {latest}",
            model_version=None, policy_version=run.policy_version if run else None,
            counts=_counts(frame.rename(columns={"matrix_cell": "cell"})),
            projects=placements)
    from serving.cli_project import REGISTERED_NAME, ProjectCliError, matrix_view
    from training.registry import configure_mlflow, get_version_by_alias

    configure_mlflow(settings.home, settings.mlflow_uri)
    if get_version_by_alias(REGISTERED_NAME, "champion") is None:  # fail before loading data
        raise ProjectCliError(f"模型 {REGISTERED_NAME} 还没有冠军版本, 请先运行 riskmatrix train "
                              f"project / no champion for {REGISTERED_NAME}: run `riskmatrix "
                              "train project` first")
    view = matrix_view(settings, None)
    names = {str(k): str(v) for k, v in view.names.items()}
    return ProjectMatrix(
        as_of=view.as_of.date(), source=f"computed:snapshot {view.snapshot_id}",
        model_version=view.model_version, policy_version=view.policy_version,
        counts=_counts(view.placements),
        projects=[_placement({str(k): v for k, v in r.items()}, names)
                  for r in view.placements.to_dict(orient="records")])


def _counts(placements: pd.DataFrame) -> list[dict[str, Any]]:
    if placements.empty:
        return []
    grouped = placements.groupby(["risk_source_grade", "management_grade"]).size()
    return [{"risk_source_grade": str(key[0]), "management_grade": str(key[1]),
             "projects": int(n)} for key, n in zip(grouped.index, grouped.to_numpy(), strict=True)]


def project_decision(engine: Engine, settings: Settings, project_id: str, *,
                     matrix: ProjectMatrix | None = None) -> ProjectDecision:
    view = matrix or project_matrix(engine, settings)
    for placement in view.projects:
        if placement.project_id == project_id:
            return ProjectDecision(as_of=view.as_of, source=view.source,
                                   model_version=view.model_version,
                                   policy_version=view.policy_version, project=placement)
    raise NotFoundError(f"项目 {project_id} 不在当前矩阵中 (不存在或未在建) / project "
                        f"{project_id} is not on the current matrix (unknown or not active)")


# --------------------------------------------------------------------------- campaigns


def campaign_summary(campaign: Any) -> CampaignSummary:
    from serving.campaign_store import STEP_NAMES

    spec = campaign.spec()
    drawn = len(campaign.evidence().drawn) if campaign.done("draw") else None
    return CampaignSummary(
        campaign_id=campaign.campaign_id, department=spec.department, title=spec.title,
        check_items=list(spec.check_items), period_start=spec.period_start,
        period_end=spec.period_end, status=campaign.status,
        status_label=STEP_NAMES[campaign.status], drawn=drawn)


def campaign_summaries(settings: Settings) -> list[CampaignSummary]:
    from serving.campaign_store import CampaignStore

    return [campaign_summary(c) for c in CampaignStore(settings.campaigns).campaigns()]


def open_campaign(settings: Settings, campaign_id: str) -> Any:
    from serving.campaign_store import CampaignStore, CampaignStoreError

    try:
        return CampaignStore(settings.campaigns).campaign(campaign_id)
    except CampaignStoreError as error:
        raise NotFoundError(str(error)) from None


def campaign_view(settings: Settings, campaign_id: str) -> CampaignView:
    """The plan, the commitment (published before the draw), the revealed seed and strata."""
    from serving.campaign_store import STEP_NAMES, STEPS

    campaign = open_campaign(settings, campaign_id)
    commitment = campaign.commitment()
    evidence = campaign.evidence() if campaign.done("draw") else None
    steps = []
    for step in STEPS:
        entry = campaign.last_action(step)
        steps.append({"step": step, "label": STEP_NAMES[step], "done": campaign.done(step),
                      "at": entry["at"] if entry else None,
                      "actor": entry["actor"] if entry else None})
    return CampaignView(
        summary=campaign_summary(campaign), steps=steps,
        commitment_digest=commitment.digest(),
        commitment=commitment.model_dump(mode="json"),
        seed_revealed=evidence.seed if evidence else None,
        public_entropy=evidence.public_entropy if evidence else None,
        strata=[Stratum(**s.model_dump()) for s in evidence.strata] if evidence else [])


# --------------------------------------------------------------------------- dashboard


def class_counts(engine: Engine, run: RunRecord) -> dict[str, int]:
    from sqlalchemy import func

    with engine.connect() as connection:
        rows = connection.execute(
            select(enterprise_scores.c.risk_class, func.count())
            .where(enterprise_scores.c.run_id == run.id)
            .group_by(enterprise_scores.c.risk_class)).all()
    return {str(c): int(n) for c, n in sorted(rows)}


def regulator_dashboard(engine: Engine) -> Dashboard:
    """Class distribution, drift, fairness flags, transitions and the recent runs."""
    run = latest_complete_run(engine)
    history = list_runs(engine).head(10)
    recent = [{str(k): (v.isoformat() if isinstance(v, dt.date | dt.datetime | pd.Timestamp)
                   else None if v is None or (isinstance(v, float) and pd.isna(v)) else v)
               for k, v in row.items()} for row in history.to_dict(orient="records")]
    if run is None:
        return Dashboard(run_id=None, as_of=None, class_counts={}, model_name=None,
                         model_version=None, policy_version=None, drift={},
                         fairness_flags=None, transitions={}, runs=recent)
    payloads = monitoring_payloads(engine, run)
    drift = {k: v for k, v in payloads.get("drift", {}).items() if k != "table"}
    fairness = payloads.get("fairness", {})
    return Dashboard(
        run_id=run.id, as_of=run.as_of, class_counts=class_counts(engine, run),
        model_name=run.model_name, model_version=run.model_version,
        policy_version=run.policy_version, drift=drift,
        fairness_flags=fairness.get("flags"), transitions=payloads.get("transitions", {}),
        runs=recent)
