"""Persistence of "双随机、一公开" campaigns under the runtime home, one directory per campaign.

The engine (`supervision.*`) is pure; this module owns the files, their order and their audit
trail, so that every published number can be traced to the exact bytes it came from.

Layout (``<home>/campaigns/<campaign_id>/``)::

    spec.json           the campaign spec (department, items, scope, period, ratios/budget)
    policy.json         the sampling policy section as committed (frozen copy)
    roster.parquet      the frozen roster snapshot the commitment hashes (internal: classes)
    sealed_seed         the draw seed, private until the draw (file mode 0600)
    commitment.json     published BEFORE the draw (its digest is what the public holds)
    evidence.json       after the draw: revealed seed, strata, drawn list with probabilities
    notice.json         the public part of the evidence (no classes)
    assignment.csv      inspectors per target (uscc, inspectors, team_id)
    visits.csv          this campaign's visit items after joint-visit merging
    results.csv         recorded outcomes per visit and item
    exports/results.csv publishable results (UTF-8 with BOM), masked, no internal data
    exports/results.json
    log.jsonl           append-only: who, when, what, and the sha256 of every file written

The files are the working area; the results store is the published record. With a database
URL (`CampaignStore(root, database_url)`, as the CLI builds it), every action of record —
commitment (plan), draw, assignment, publication — is published there after its files are
written: one hash-chained audit event (`serving.audit`, kinds `campaign.commitment`,
`campaign.draw`, `campaign.assignment`, `campaign.publication`) and its rows in `campaigns`,
`draws` and `campaign_actions`, in one transaction. Publication is keyed by the log line, so
an action whose publication failed (database down) is published by the campaign's next
action, never twice.

Campaign id: ``<department>-<yyyymmdd>-<nn>``, the planning day (UTC) and a two-digit
sequence number per department and day, e.g. ``market-20250320-01``.

Steps run in order — plan → draw → assign → visits → results → publish — and each refuses to
run before the previous one. The evidential steps (plan, draw) never run twice; the others may
be re-run with ``force`` only while the next step has not used them (results and publish can
always be corrected, the log keeps every version's hash). Every file is written atomically
(temporary file + ``os.replace``), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from features.contract import INSPECTION_OUTCOMES, LIST_SEPARATOR, TABLES
from serving.files import PUBLIC_MODE, atomic_write
from supervision.assignment import assign_inspectors, workload
from supervision.campaigns import CampaignSpec, SamplingFrame, plan_campaign, spec_from_json
from supervision.draw import (
    Commitment,
    DrawEvidence,
    VerificationResult,
    commit_campaign,
    commitment_from_json,
    draw_campaign,
    draw_history_rows,
    evidence_from_json,
    evidence_to_json,
    new_seed,
    public_notice,
    seed_sha256,
    verify_draw,
)
from supervision.estimates import outcome_units, problem_rate_estimates
from supervision.publication import (
    publication_deadlines,
    publishable_results,
    record_results,
    results_as_inspections,
    to_csv_text,
    to_json_text,
)
from supervision.sampling_policy import SamplingPolicy
from supervision.visits import JointVisits, merge_joint_visits, tasks_from_draw

SPEC = "spec.json"
POLICY = "policy.json"
ROSTER = "roster.parquet"
SEALED_SEED = "sealed_seed"
COMMITMENT = "commitment.json"
EVIDENCE = "evidence.json"
NOTICE = "notice.json"
ASSIGNMENT = "assignment.csv"
VISITS = "visits.csv"
RESULTS = "results.csv"
EXPORTS = "exports"
EXPORT_CSV = "exports/results.csv"
EXPORT_JSON = "exports/results.json"
LOG = "log.jsonl"

SECRET_MODE = 0o600

# The steps in order; the file whose presence marks each step done; bilingual names.
STEPS: tuple[str, ...] = ("plan", "draw", "assign", "visits", "results", "publish")
STEP_FILES: dict[str, str] = {
    "plan": COMMITMENT, "draw": EVIDENCE, "assign": ASSIGNMENT, "visits": VISITS,
    "results": RESULTS, "publish": EXPORT_CSV,
}
STEP_NAMES: dict[str, str] = {
    "plan": "制定计划并公布承诺 / plan and commit",
    "draw": "抽取 / draw",
    "assign": "分配执法人员 / assign inspectors",
    "visits": "合并联合检查 / joint visits",
    "results": "录入检查结果 / record results",
    "publish": "结果公示 / publish",
}
STEP_COMMANDS: dict[str, str] = {
    "plan": "riskmatrix campaign plan ...",
    "draw": "riskmatrix campaign draw {id}",
    "assign": "riskmatrix campaign assign {id}",
    "visits": "riskmatrix campaign visits",
    "results": "riskmatrix campaign results {id} --file FILE",
    "publish": "riskmatrix campaign publish {id}",
}
EVIDENTIAL_STEPS = frozenset({"plan", "draw"})
CAMPAIGN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")  # as CampaignSpec
RESULT_INPUT_COLUMNS = ("visit_id", "check_item", "outcome", "inspection_date")
TEMPLATE_COLUMNS = ["visit_id", "uscc", "enterprise_name", "department", "check_item",
                    "planned_date", "outcome", "inspection_date", "violation_code"]
MAX_PROBLEMS_SHOWN = 20
VIOLATION_CODE_MAX = TABLES["inspections"].column("violation_code").max_length or 32


T = TypeVar("T")


class CampaignStoreError(Exception):
    """A campaign step the user asked for cannot run (order, missing input, bad file).

    The message is bilingual (Chinese first) and names the campaign, file, row and rule.
    """


def _zh(step: str) -> str:
    return STEP_NAMES[step].split(" / ")[0]


def _en(step: str) -> str:
    return STEP_NAMES[step].split(" / ")[1]


# --------------------------------------------------------------------------------------------
# Files: atomic writes, hashes, the action log
# --------------------------------------------------------------------------------------------




def csv_bytes(frame: pd.DataFrame, bom: bool = False) -> bytes:
    text = frame.to_csv(index=False, lineterminator="\n")
    return (("\ufeff" if bom else "") + text).encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Written:
    """One file a step wrote, relative to the campaign directory, with its sha256."""

    path: str
    sha256: str


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV read as text (ids stay ids: no number parsing); empty cells become missing."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                       encoding="utf-8-sig")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignStore:
    """All campaigns under one directory (`settings.campaigns`)."""

    root: Path
    database_url: str | None = None

    def path(self, campaign_id: str) -> Path:
        return self.root / campaign_id

    def campaign_ids(self) -> list[str]:
        """Ids of campaigns whose plan is complete (commitment written), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / COMMITMENT).is_file())

    def next_id(self, department: str, day: dt.date) -> str:
        """`<department>-<yyyymmdd>-<nn>` with the first sequence number not yet taken."""
        prefix = f"{department}-{day:%Y%m%d}-"
        taken = {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()
        number = 1
        while f"{prefix}{number:02d}" in taken:
            number += 1
        return f"{prefix}{number:02d}"

    def campaign(self, campaign_id: str) -> Campaign:
        directory = self.path(campaign_id)
        if not CAMPAIGN_ID_PATTERN.match(campaign_id) or not (directory / COMMITMENT).is_file():
            known = ", ".join(self.campaign_ids()[-10:]) or "无 / none"
            raise CampaignStoreError(
                f"抽查任务 {campaign_id!r} 不存在或计划未完成 / no campaign {campaign_id!r} "
                f"(or its plan is incomplete) in {self.root}; known: {known}"
            )
        return Campaign(campaign_id, directory)

    def campaigns(self) -> list[Campaign]:
        return [Campaign(c, self.path(c)) for c in self.campaign_ids()]


@dataclass(frozen=True)
class Campaign:
    """One campaign directory: typed readers for its files and its step state."""

    campaign_id: str
    directory: Path

    def file(self, name: str) -> Path:
        return self.directory / name

    def done(self, step: str) -> bool:
        return self.file(STEP_FILES[step]).is_file()

    @property
    def status(self) -> str:
        """The last completed step."""
        return [s for s in STEPS if self.done(s)][-1]

    def require(self, step: str) -> None:
        """Refuse to run a step whose predecessor has not run (bilingual, names the step)."""
        if not self.done(step):
            command = STEP_COMMANDS[step].format(id=self.campaign_id)
            raise CampaignStoreError(
                f"抽查任务 {self.campaign_id} 尚未完成「{_zh(step)}」步骤, 请先运行 {command} / "
                f"campaign {self.campaign_id} has not completed the step '{_en(step)}' yet: "
                f"run `{command}` first"
            )

    def refuse_rerun(self, step: str, force: bool) -> None:
        """A completed step runs again only when forced, and never for plan or draw."""
        if not self.done(step):
            return
        cid = self.campaign_id
        if step in EVIDENTIAL_STEPS:
            raise CampaignStoreError(
                f"抽查任务 {cid} 已完成「{_zh(step)}」, 该步骤是公开证据, 不可重做 / campaign "
                f"{cid}: step '{_en(step)}' is done and is evidence; it is never re-run (plan a "
                f"new campaign instead)"
            )
        if not force:
            raise CampaignStoreError(
                f"抽查任务 {cid} 已完成「{_zh(step)}」, 如需重做请加 --force / campaign {cid}: "
                f"step '{_en(step)}' is already done; add --force to redo it"
            )
        following = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else None
        if following in ("visits", "results") and self.done(following):
            raise CampaignStoreError(
                f"抽查任务 {cid} 的「{_zh(step)}」已被后续步骤「{_zh(following)}」使用, 不能重做 / "
                f"campaign {cid}: step '{_en(step)}' is already used by '{_en(following)}' and "
                f"cannot be redone"
            )

    # -- readers ---------------------------------------------------------------------------

    def _parsed(self, name: str, parse: Callable[[str], T]) -> T:
        """A stored JSON file through its parser; a damaged file is a clear user error."""
        path = self.file(name)
        try:
            return parse(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as error:
            raise CampaignStoreError(f"{path}: 文件损坏或无法读取 / damaged or unreadable file: "
                                     f"{error}") from None

    def spec(self) -> CampaignSpec:
        return self._parsed(SPEC, spec_from_json)

    def policy(self) -> SamplingPolicy:
        return self._parsed(POLICY, SamplingPolicy.model_validate_json)

    def roster(self) -> pd.DataFrame:
        try:
            return pd.read_parquet(self.file(ROSTER))
        except (ValueError, OSError) as error:
            raise CampaignStoreError(f"{self.file(ROSTER)}: 名录快照损坏或无法读取 / damaged or "
                                     f"unreadable roster snapshot: {error}") from None

    def commitment(self) -> Commitment:
        return self._parsed(COMMITMENT, commitment_from_json)

    def evidence(self) -> DrawEvidence:
        self.require("draw")
        return self._parsed(EVIDENCE, evidence_from_json)

    def assignment(self) -> pd.DataFrame:
        self.require("assign")
        return read_csv_text(self.file(ASSIGNMENT))

    def visit_items(self) -> pd.DataFrame:
        self.require("visits")
        items = read_csv_text(self.file(VISITS))
        items["inclusion_probability"] = pd.to_numeric(items["inclusion_probability"])
        return items

    def results(self) -> pd.DataFrame:
        self.require("results")
        results = read_csv_text(self.file(RESULTS))
        results["inclusion_probability"] = pd.to_numeric(results["inclusion_probability"])
        for column in ("inspection_date", "published_date", "planned_date"):
            results[column] = pd.to_datetime(results[column]).dt.date
        return results

    def log(self) -> list[dict[str, Any]]:
        path = self.file(LOG)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    # -- writers ---------------------------------------------------------------------------

    def write(self, name: str, data: bytes, mode: int = PUBLIC_MODE) -> Written:
        return Written(name, atomic_write(self.file(name), data, mode))

    def append_log(self, action: str, actor: str, at: dt.datetime, written: Sequence[Written],
                   details: Mapping[str, Any] | None = None) -> None:
        """One JSON line per action; appended and fsynced, never rewritten."""
        record = {
            "at": at.isoformat(), "actor": actor, "action": action,
            "campaign_id": self.campaign_id,
            "files": [{"path": w.path, "sha256": w.sha256} for w in written],
            "details": dict(details or {}),
        }
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n"
        with self.file(LOG).open("a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())

    def last_action(self, action: str) -> dict[str, Any] | None:
        matches = [r for r in self.log() if r.get("action") == action]
        return matches[-1] if matches else None


# --------------------------------------------------------------------------------------------
# Publication to the results store and the audit trail
# --------------------------------------------------------------------------------------------

# Logged actions that are part of the public record, and their audit event kinds.
PUBLISHED_ACTIONS: dict[str, str] = {
    "plan": "campaign.commitment", "draw": "campaign.draw", "assign": "campaign.assignment",
    "publish": "campaign.publication",
}


def _file_digest(entry: Mapping[str, Any], name: str) -> str | None:
    return next((str(f["sha256"]) for f in entry.get("files", []) if f.get("path") == name),
                None)


def _json_file(campaign: Campaign, name: str) -> Any:
    path = campaign.file(name)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def publish_records(store: CampaignStore, campaign: Campaign) -> int:
    """Publish the campaign's logged actions of record not yet in the results store (each:
    audit event + rows, one transaction); returns how many were published now. Without a
    database URL nothing is published (a bare file store, e.g. in engine tests)."""
    if store.database_url is None:
        return 0
    from sqlalchemy import select

    from serving.audit import append_event
    from serving.store import campaign_actions, open_store

    engine = open_store(store.database_url)
    try:
        with engine.connect() as connection:
            done = {int(r[0]) for r in connection.execute(
                select(campaign_actions.c.log_line)
                .where(campaign_actions.c.campaign_id == campaign.campaign_id))}
        published = 0
        for line, entry in enumerate(campaign.log()):
            if entry.get("action") not in PUBLISHED_ACTIONS or line in done:
                continue
            with engine.begin() as connection:
                record = append_event(
                    connection, PUBLISHED_ACTIONS[entry["action"]], _action_payload(entry),
                    entity=campaign.campaign_id, as_of=str(entry["at"])[:10])
                _publish_rows(connection, campaign, line, entry, record.seq)
            published += 1
        return published
    finally:
        engine.dispose()


def _action_payload(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The audit record of one action: who, when, what, and the hash of every file."""
    return {"campaign_id": entry["campaign_id"], "action": entry["action"],
            "at": entry["at"], "actor": entry["actor"], "files": entry.get("files", []),
            "details": entry.get("details", {})}


def _publish_rows(connection: Any, campaign: Campaign, line: int, entry: Mapping[str, Any],
                  audit_seq: int) -> None:
    from sqlalchemy import select, update

    from serving.store import campaign_actions, campaigns, draws, json_ready

    at = dt.datetime.fromisoformat(str(entry["at"]))
    action = str(entry["action"])
    exists = connection.execute(select(campaigns.c.campaign_id).where(
        campaigns.c.campaign_id == campaign.campaign_id)).first() is not None
    if not exists:
        commitment = campaign.commitment()
        connection.execute(campaigns.insert().values(
            campaign_id=campaign.campaign_id, department=campaign.spec().department,
            status=action, planned_at=at, updated_at=at,
            commitment_digest=commitment.digest(),
            payload=json_ready({"spec": _json_file(campaign, SPEC),
                                "roster_rows": commitment.roster_rows})))
    else:
        connection.execute(update(campaigns)
                           .where(campaigns.c.campaign_id == campaign.campaign_id)
                           .values(status=action, updated_at=at))
    details = dict(entry.get("details") or {})
    if action == "draw":
        connection.execute(draws.insert().values(
            campaign_id=campaign.campaign_id,
            commitment_digest=str(details.get("commitment_digest", "")), drawn_at=at,
            drawn=int(details.get("drawn", 0)), public_entropy=details.get("public_entropy"),
            evidence_sha256=_file_digest(entry, EVIDENCE),
            payload=json_ready(_json_file(campaign, NOTICE) or {})))
    connection.execute(campaign_actions.insert().values(
        campaign_id=campaign.campaign_id, log_line=line, action=action, at=at,
        actor=str(entry["actor"]), audit_seq=audit_seq, payload=json_ready(dict(entry))))


# --------------------------------------------------------------------------------------------
# Inputs shared by several steps
# --------------------------------------------------------------------------------------------


def store_draw_history(store: CampaignStore, exclude: str | None = None) -> pd.DataFrame:
    """Drawn targets of the store's campaigns as inspections-shaped rows (no re-draw rule)."""
    evidences = [c.evidence() for c in store.campaigns()
                 if c.campaign_id != exclude and c.done("draw")]
    return draw_history_rows(evidences)


def plan_history(store: CampaignStore, snapshot_inspections: pd.DataFrame | None) -> pd.DataFrame:
    """This store's draws plus the snapshot's random-draw inspections."""
    frames = [store_draw_history(store)]
    if snapshot_inspections is not None and not snapshot_inspections.empty:
        rows = snapshot_inspections.loc[snapshot_inspections["source"].astype(str)
                                        == "random_draw"]
        frames.append(pd.DataFrame({
            "uscc": rows["uscc"].astype(str), "inspection_date": rows["inspection_date"],
            "source": "random_draw", "campaign_id": rows["campaign_id"].astype("string"),
            "department": rows["department"].astype(str),
            "check_items": rows["check_items"].astype(str),
        }))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return draw_history_rows([])
    return pd.concat(frames, ignore_index=True)


def assignment_history(
    store: CampaignStore, campaign: Campaign, snapshot_inspections: pd.DataFrame | None
) -> pd.DataFrame:
    """Past inspection teams: the snapshot's inspections plus earlier campaigns' assignments.

    An earlier campaign is another campaign of the store, already assigned, whose period
    starts no later than this one's; its teams count as inspecting on its period start.
    """
    start = campaign.spec().period_start
    frames = []
    for other in store.campaigns():
        if other.campaign_id == campaign.campaign_id or not other.done("assign"):
            continue
        spec = other.spec()
        if spec.period_start > start:
            continue
        teams = other.assignment()
        frames.append(pd.DataFrame({
            "uscc": teams["uscc"].astype(str), "inspection_date": pd.Timestamp(spec.period_start),
            "department": spec.department, "inspectors": teams["inspectors"].astype(str),
        }))
    if snapshot_inspections is not None and not snapshot_inspections.empty:
        frames.append(pd.DataFrame({
            "uscc": snapshot_inspections["uscc"].astype(str),
            "inspection_date": pd.to_datetime(snapshot_inspections["inspection_date"]),
            "department": snapshot_inspections["department"].astype(str),
            "inspectors": snapshot_inspections["inspectors"].astype("string").fillna(""),
        }))
    if not frames:
        return pd.DataFrame(columns=["uscc", "inspection_date", "department", "inspectors"])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Step 1: plan and commit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRecord:
    campaign: Campaign
    spec: CampaignSpec
    commitment: Commitment
    frame: SamplingFrame


def plan(
    store: CampaignStore,
    spec: CampaignSpec,
    roster: pd.DataFrame,
    policy: SamplingPolicy,
    history: pd.DataFrame | None,
    *,
    actor: str,
    now: dt.datetime,
    provenance: Mapping[str, Any] | None = None,
    seed: str | None = None,
) -> PlanRecord:
    """Freeze the roster, draw a secret seed and write the commitment to publish.

    The directory is claimed first (two planners cannot get the same id) and removed again if
    planning fails, so a half-planned campaign never appears.
    """
    directory = store.path(spec.campaign_id)
    store.root.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir()
    except FileExistsError:
        raise CampaignStoreError(
            f"抽查任务编号 {spec.campaign_id} 已存在 / campaign id {spec.campaign_id} is taken"
        ) from None
    campaign = Campaign(spec.campaign_id, directory)
    try:
        written = [campaign.write(ROSTER, parquet_bytes(roster))]
        frozen = campaign.roster()  # plan and hash exactly what was stored
        frame = plan_campaign(spec, frozen, policy, history=history)
        seed = seed or new_seed()
        commitment = commit_campaign(spec, frozen, policy, seed_sha256(seed), now, history)
        written += [
            campaign.write(SPEC, spec.model_dump_json(indent=1).encode("utf-8")),
            campaign.write(POLICY, policy.model_dump_json(indent=1).encode("utf-8")),
            campaign.write(SEALED_SEED, seed.encode("utf-8"), mode=SECRET_MODE),
            campaign.write(COMMITMENT, commitment.model_dump_json(indent=1).encode("utf-8")),
        ]
        campaign.append_log("plan", actor, now, written, {
            "commitment_digest": commitment.digest(), "roster_rows": commitment.roster_rows,
            "excluded": len(commitment.excluded), "policy_version": policy.version,
            "planned_draws": int(frame.strata["sample"].sum()), **dict(provenance or {}),
        })
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    publish_records(store, campaign)
    return PlanRecord(campaign, spec, commitment, frame)


# --------------------------------------------------------------------------------------------
# Step 2: draw, and verification
# --------------------------------------------------------------------------------------------


def draw(
    store: CampaignStore, campaign_id: str, public_entropy: str, *, actor: str, now: dt.datetime
) -> DrawEvidence:
    """Reveal the sealed seed and run the committed draw (once, ever)."""
    campaign = store.campaign(campaign_id)
    campaign.refuse_rerun("draw", force=False)
    seed = campaign.file(SEALED_SEED).read_text(encoding="utf-8").strip()
    evidence = draw_campaign(campaign.commitment(), campaign.spec(), campaign.roster(),
                             campaign.policy(), seed, now, public_entropy)
    notice = json.dumps(public_notice(evidence), ensure_ascii=False, indent=1)
    written = [campaign.write(EVIDENCE, evidence_to_json(evidence).encode("utf-8")),
               campaign.write(NOTICE, notice.encode("utf-8"))]
    campaign.append_log("draw", actor, now, written, {
        "drawn": len(evidence.drawn), "public_entropy": public_entropy,
        "commitment_digest": evidence.commitment.digest(),
    })
    publish_records(store, campaign)
    return evidence


def verify_stored(
    store: CampaignStore,
    campaign_id: str,
    policy: SamplingPolicy | None = None,
    published_digest: str | None = None,
) -> VerificationResult:
    """Re-run a stored draw from its evidence, frozen roster and (frozen or given) policy.

    The digest checked is the one given, else the stored commitment's (published before the
    draw). Exclusions are not re-derived: they are part of the committed digest.
    """
    campaign = store.campaign(campaign_id)
    evidence = campaign.evidence()
    digest = published_digest or campaign.commitment().digest()
    return verify_draw(evidence, campaign.roster(), policy or campaign.policy(),
                       published_digest=digest)


def verify_files(
    evidence_path: Path,
    roster_path: Path,
    policy: SamplingPolicy,
    published_digest: str | None = None,
) -> VerificationResult:
    """Re-run a draw from published files alone (evidence JSON and roster Parquet)."""
    for path in (evidence_path, roster_path):
        if not path.is_file():
            raise CampaignStoreError(f"文件不存在 / file not found: {path}")
    try:
        evidence = evidence_from_json(evidence_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CampaignStoreError(
            f"{evidence_path}: 不是有效的抽取证据 / not valid draw evidence: {error}"
        ) from None
    if roster_path.suffix.lower() != ".parquet":
        raise CampaignStoreError(
            f"{roster_path}: 名录快照须为 Parquet 文件 (原样保存类型, 哈希才可复现) / the roster "
            f"snapshot must be the Parquet file (types kept exactly, so the hash reproduces)"
        )
    try:
        roster = pd.read_parquet(roster_path)
    except (ValueError, OSError) as error:
        raise CampaignStoreError(f"{roster_path}: 无法读取名录快照 / cannot read the roster "
                                 f"snapshot: {error}") from None
    return verify_draw(evidence, roster, policy, published_digest=published_digest)


# --------------------------------------------------------------------------------------------
# Step 3: inspectors
# --------------------------------------------------------------------------------------------


def assign(
    store: CampaignStore,
    campaign_id: str,
    inspectors: pd.DataFrame,
    conflicts: pd.DataFrame | None,
    snapshot_inspections: pd.DataFrame | None,
    *,
    actor: str,
    now: dt.datetime,
    field: str | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """Staff every drawn target (≥ 2 inspectors, recusal, rotation); nothing written on failure.

    The random choice is seeded by the revealed draw seed, so anyone can re-derive it.
    """
    campaign = store.campaign(campaign_id)
    campaign.require("draw")
    campaign.refuse_rerun("assign", force)
    evidence, spec = campaign.evidence(), campaign.spec()
    history = assignment_history(store, campaign, snapshot_inspections)
    teams = assign_inspectors(evidence.drawn_frame(), inspectors, conflicts,
                              campaign.policy().assignment, spec.department, evidence.seed,
                              campaign_id, history=history, field=field)
    written = [campaign.write(ASSIGNMENT, csv_bytes(teams))]
    load = workload(teams)
    campaign.append_log("assign", actor, now, written, {
        "targets": len(teams), "inspectors_used": len(load),
        "max_load": int(load.max()) if len(load) else 0,
        "min_load": int(load.min()) if len(load) else 0, "forced": force,
    })
    publish_records(store, campaign)
    return teams


# --------------------------------------------------------------------------------------------
# Step 4: joint visits and ranked lists
# --------------------------------------------------------------------------------------------


def _visit_ids(campaign: Campaign) -> set[str]:
    return set(read_csv_text(campaign.file(VISITS))["visit_id"].astype(str))


def campaigns_to_merge(store: CampaignStore, force: bool) -> list[Campaign]:
    """Assigned campaigns awaiting visits; with `force`, also those with visits but no results.

    Visits shared with a campaign whose results are recorded have happened and are never
    re-merged.
    """
    campaigns = store.campaigns()
    chosen = [c for c in campaigns if c.done("assign") and not c.done("results")
              and (force or not c.done("visits"))]
    if force:
        settled = set().union(*[_visit_ids(c) for c in campaigns if c.done("results")])
        for campaign in chosen:
            if campaign.done("visits") and _visit_ids(campaign) & settled:
                raise CampaignStoreError(
                    f"抽查任务 {campaign.campaign_id} 的检查与已录入结果的任务联合进行, 不能重新"
                    f"合并 / campaign {campaign.campaign_id} shares visits with a campaign whose "
                    f"results are recorded; its visits cannot be re-merged"
                )
    return chosen


@dataclass(frozen=True)
class VisitsRecord:
    joint: JointVisits | None
    campaigns: list[str] = field(default_factory=list)


def merge_visits(
    store: CampaignStore, window_days: int, *, actor: str, now: dt.datetime, force: bool = False
) -> VisitsRecord:
    """Merge the tasks of every open campaign on the same firm within the window into visits."""
    if window_days < 0:
        raise CampaignStoreError("--window-days 不能为负 / --window-days must not be negative")
    chosen = campaigns_to_merge(store, force)
    if not chosen:
        return VisitsRecord(None, [])
    tasks = pd.concat([tasks_from_draw(c.evidence(), c.assignment()) for c in chosen],
                      ignore_index=True)
    joint = merge_joint_visits(tasks, window_days)
    payloads = {c.campaign_id: csv_bytes(joint.items.loc[joint.items["campaign_id"]
                                                         == c.campaign_id]) for c in chosen}
    report = joint.report()
    for campaign in chosen:
        written = [campaign.write(VISITS, payloads[campaign.campaign_id])]
        campaign.append_log("visits", actor, now, written, {
            **report, "window_days": window_days, "merged_with": [
                c.campaign_id for c in chosen if c.campaign_id != campaign.campaign_id],
            "forced": force,
        })
    return VisitsRecord(joint, [c.campaign_id for c in chosen])


def _joined(values: pd.Series) -> str:
    return LIST_SEPARATOR.join(sorted({v for cell in values.dropna().astype(str)
                                       for v in cell.split(LIST_SEPARATOR) if v}))


def visits_from_items(items: pd.DataFrame) -> pd.DataFrame:
    """Visit rows (as `merge_joint_visits(...).visits`) rebuilt from stored visit items."""
    grouped = items.groupby("visit_id", sort=True)
    return pd.DataFrame({
        "uscc": grouped["uscc"].first(),
        "visit_date": grouped["planned_date"].min(),
        "departments": grouped["department"].agg(_joined),
        "campaign_ids": grouped["campaign_id"].agg(_joined),
        "check_items": grouped["check_item"].agg(_joined),
        "inspectors": grouped["inspectors"].agg(_joined),
        "n_tasks": grouped["campaign_id"].nunique(),
    }).rename_axis("visit_id").reset_index()


def list_roster(campaigns: Sequence[Campaign]) -> pd.DataFrame:
    """Name, class, probability and readable top reasons per firm, from the frozen rosters.

    A firm in several campaigns takes the values of the most recently planned one.
    """
    frames = []
    for campaign in sorted(campaigns, key=lambda c: c.commitment().committed_at):
        roster = campaign.roster()
        roster = roster.rename_axis("uscc").reset_index() if "uscc" not in roster else roster
        frames.append(roster)
    roster = pd.concat(frames, ignore_index=True).drop_duplicates("uscc", keep="last")
    if "top_reasons" not in roster.columns:
        zh = roster.get("top_reasons_zh", pd.Series("", index=roster.index)).fillna("")
        en = roster.get("top_reasons_en", pd.Series("", index=roster.index)).fillna("")
        roster["top_reasons"] = [f"{a} / {b}" if a and b else a or b
                                 for a, b in zip(zh.astype(str), en.astype(str), strict=True)]
    return roster


def stored_visits(store: CampaignStore, campaign_id: str | None) -> tuple[pd.DataFrame,
                                                                          list[Campaign]]:
    """The visits of one campaign (all its items, including other departments' on the same
    visit), or of every campaign with visits and no results yet (`campaign_id` None)."""
    with_visits = [c for c in store.campaigns() if c.done("visits")]
    items = {c.campaign_id: c.visit_items() for c in with_visits}
    if campaign_id is not None:
        store.campaign(campaign_id).require("visits")
        wanted = set(items[campaign_id]["visit_id"])
    else:
        wanted = set().union(*[set(items[c.campaign_id]["visit_id"])
                               for c in with_visits if not c.done("results")])
    if not wanted:
        return visits_from_items(pd.DataFrame(columns=[
            "visit_id", "uscc", "planned_date", "department", "campaign_id", "check_item",
            "inspectors"])), []
    rows = pd.concat(items.values(), ignore_index=True)
    rows = rows.loc[rows["visit_id"].isin(wanted)]
    involved = [c for c in with_visits if c.campaign_id in set(rows["campaign_id"])]
    return visits_from_items(rows), involved


# --------------------------------------------------------------------------------------------
# Step 5: results
# --------------------------------------------------------------------------------------------


def results_template(store: CampaignStore, campaign_id: str) -> pd.DataFrame:
    """One row per visit item of the campaign, outcome columns left blank to fill in."""
    campaign = store.campaign(campaign_id)
    items = campaign.visit_items()
    roster = list_roster([campaign]).set_index("uscc")
    names = roster["name"] if "name" in roster.columns else pd.Series(dtype=str)
    template = items.assign(enterprise_name=items["uscc"].map(names), outcome="",
                            inspection_date="", violation_code="")
    return template[TEMPLATE_COLUMNS]


def validate_outcomes(
    raw: pd.DataFrame, items: pd.DataFrame, source: str, earliest: dt.date, latest: dt.date
) -> tuple[pd.DataFrame, int]:
    """Outcome rows checked against the campaign's visit items; (filled rows, pending count).

    Rows with a blank outcome are pending and left out. Every problem is reported at once with
    file, row (1 = first data row), column and rule; nothing is accepted if any row is wrong.
    """
    missing = [c for c in RESULT_INPUT_COLUMNS if c not in raw.columns]
    if missing:
        raise CampaignStoreError(
            f"{source}: 缺少列 {missing} / missing columns {missing}; required "
            f"{list(RESULT_INPUT_COLUMNS)}"
        )
    known = set(zip(items["visit_id"].astype(str), items["check_item"].astype(str), strict=True))
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    keep: list[int] = []

    def problem(row: int, column: str, zh: str, en: str, rule: str) -> None:
        problems.append(f"{source} 第{row}行 / row {row}, 列 column {column}: {zh} / {en} "
                        f"(规则 rule {rule})")

    for position, record in enumerate(raw.to_dict(orient="records")):
        row = position + 1
        outcome = record.get("outcome")
        if pd.isna(outcome) or not str(outcome).strip():
            continue
        keep.append(position)
        visit, item = str(record.get("visit_id", "")).strip(), str(record.get("check_item", ""))
        if (visit, item.strip()) not in known:
            problem(row, "visit_id/check_item", f"本任务的检查中无此事项 {item!r}",
                    f"no item {item!r} in visit {visit!r} of this campaign", "item_in_visit")
        if (visit, item.strip()) in seen:
            problem(row, "check_item", "同一事项重复录入", "item recorded twice", "unique_result")
        seen.add((visit, item.strip()))
        if str(outcome).strip() not in INSPECTION_OUTCOMES:
            problem(row, "outcome", f"结果代码无效 {outcome!r}",
                    f"unknown outcome {outcome!r}; allowed {list(INSPECTION_OUTCOMES)}",
                    "outcome_allowed")
        text = record.get("inspection_date")
        date = pd.to_datetime(text.strip() if isinstance(text, str) else "", errors="coerce",
                              format="%Y-%m-%d")
        if pd.isna(date):
            problem(row, "inspection_date", "日期无效, 应为 YYYY-MM-DD",
                    f"not a date {record.get('inspection_date')!r}, expected YYYY-MM-DD", "date")
        elif not earliest <= date.date() <= latest:
            problem(row, "inspection_date", f"检查日期须在 {earliest} 至 {latest} 之间",
                    f"inspection date must lie between the draw ({earliest}) and today "
                    f"({latest})", "date_in_range")
        code = record.get("violation_code")
        if isinstance(code, str) and len(code.strip()) > VIOLATION_CODE_MAX:
            problem(row, "violation_code", f"长度超过{VIOLATION_CODE_MAX}",
                    f"longer than {VIOLATION_CODE_MAX} characters", "max_length")
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"… 另有{len(problems) - len(shown)}处问题 / … and "
                         f"{len(problems) - len(shown)} more problems")
        raise CampaignStoreError(f"检查结果有误 ({len(problems)}处), 未录入任何一行 / results "
                                 f"rejected ({len(problems)} problems), nothing recorded:\n"
                                 + "\n".join(shown))
    filled = raw.iloc[keep].copy()
    for column in ("visit_id", "check_item", "outcome"):
        filled[column] = filled[column].astype(str).str.strip()
    if "violation_code" not in filled.columns:
        filled["violation_code"] = pd.NA
    return filled.reset_index(drop=True), len(raw) - len(keep)


@dataclass(frozen=True)
class ResultsRecord:
    results: pd.DataFrame
    recorded: int
    pending: int


def record(
    store: CampaignStore,
    campaign_id: str,
    raw: pd.DataFrame,
    source: str,
    *,
    actor: str,
    now: dt.datetime,
    force: bool = False,
) -> ResultsRecord:
    """Validate outcome rows and store them with the visit items (all or nothing)."""
    campaign = store.campaign(campaign_id)
    campaign.require("visits")
    campaign.refuse_rerun("results", force)
    items = campaign.visit_items()
    drawn_on = campaign.evidence().drawn_at.date()
    filled, _ = validate_outcomes(raw, items, source, drawn_on, now.date())
    if filled.empty:
        raise CampaignStoreError(f"{source}: 没有填写任何检查结果 / no outcome filled in")
    results = record_results(items, filled)
    written = [campaign.write(RESULTS, csv_bytes(results))]
    recorded = int(results["outcome"].notna().sum())
    pending = int(results["outcome"].isna().sum())
    campaign.append_log("results", actor, now, written, {
        "source": source, "recorded": recorded, "pending": pending, "forced": force,
    })
    return ResultsRecord(results, recorded, pending)


# --------------------------------------------------------------------------------------------
# Step 6: publication
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishRecord:
    csv_path: Path
    json_path: Path
    rows: int
    pending: int
    deadlines: pd.DataFrame


def deadline_status(
    campaign: Campaign, today: dt.date, published_on: dt.date | None = None
) -> pd.DataFrame:
    """Per visit: inspection date, deadline (working days from policy), status.

    `published_on` defaults to the date of the campaign's last publication, if any.
    """
    results = campaign.results()
    if published_on is None:
        last = campaign.last_action("publish")
        published_on = dt.datetime.fromisoformat(last["at"]).date() if last else None
    results["published_date"] = published_on
    return publication_deadlines(results, campaign.policy().publication, today)


def publish(
    store: CampaignStore,
    campaign_id: str,
    inspectors: pd.DataFrame,
    *,
    actor: str,
    now: dt.datetime,
    force: bool = False,
) -> PublishRecord:
    """Write the public CSV and JSON: masked names, no class, probability or reasons."""
    campaign = store.campaign(campaign_id)
    campaign.require("results")
    campaign.refuse_rerun("publish", force)
    results = campaign.results()
    firms = campaign.roster()
    public = publishable_results(results, firms, inspectors)
    if public.empty:
        raise CampaignStoreError(f"抽查任务 {campaign_id} 没有可公示的结果 / campaign "
                                 f"{campaign_id} has no recorded outcome to publish")
    written = [
        campaign.write(EXPORT_CSV, ("\ufeff" + to_csv_text(public)).encode("utf-8")),
        campaign.write(EXPORT_JSON, to_json_text(public).encode("utf-8")),
    ]
    deadlines = deadline_status(campaign, now.date(), published_on=now.date())
    pending = int(results["outcome"].isna().sum())
    campaign.append_log("publish", actor, now, written, {
        "rows": len(public), "pending_items": pending, "forced": force,
        "status": deadlines["status"].value_counts().to_dict(),
    })
    publish_records(store, campaign)
    return PublishRecord(campaign.file(EXPORT_CSV), campaign.file(EXPORT_JSON), len(public),
                         pending, deadlines)


# --------------------------------------------------------------------------------------------
# After the campaign: problem-rate estimates and labels flowing back to training
# --------------------------------------------------------------------------------------------


def campaigns_with_results(store: CampaignStore, campaign_id: str | None) -> list[Campaign]:
    """The named campaign (which must have recorded results), or every campaign that has some."""
    if campaign_id is not None:
        campaign = store.campaign(campaign_id)
        campaign.require("results")
        return [campaign]
    chosen = [c for c in store.campaigns() if c.done("results")]
    if not chosen:
        raise CampaignStoreError(f"还没有录入检查结果的抽查任务 / no campaign with recorded "
                                 f"results in {store.root}")
    return chosen


def own_results(campaign: Campaign) -> pd.DataFrame:
    """The campaign's recorded items, without a joint visit's items of other campaigns
    (those are counted, with their own probabilities, under their own campaign)."""
    results = campaign.results()
    return results.loc[results["campaign_id"].astype(str) == campaign.campaign_id].reset_index(
        drop=True)


def stratum_populations(campaign: Campaign) -> pd.DataFrame:
    """N_h per stratum from the draw evidence (exact, not recovered from rounded π)."""
    strata = pd.DataFrame([s.model_dump() for s in campaign.evidence().strata])
    return strata.assign(campaign_id=campaign.campaign_id)[
        ["campaign_id", "stratum", "population"]]


def campaign_estimates(campaigns: Sequence[Campaign]) -> pd.DataFrame:
    """Hájek/HT problem rate per class and overall, pooled over `campaigns` (strata keyed by
    campaign × stratum), at the campaigns' policy confidence level; plus the effective sample
    size rate(1 − rate) / SE² (the n a simple random sample would need for the same precision;
    missing where the rate is 0 or 1 or the domain was a census).

    Problem outcomes and the confidence level come from each campaign's frozen policy; pooling
    campaigns whose policies disagree on either would mix definitions, so it is refused.
    """
    policies = [c.policy() for c in campaigns]
    confidences = {p.confidence_level for p in policies}
    definitions = {tuple(sorted(p.publication.problem_outcomes)) for p in policies}
    if len(confidences) > 1 or len(definitions) > 1:
        raise CampaignStoreError("抽查任务的置信水平或问题定义不一致, 不能合并估计 / the "
                                 "campaigns' confidence levels or problem outcomes differ; "
                                 "estimate them one by one")
    units = pd.concat([outcome_units(own_results(c), policies[0].publication.problem_outcomes)
                       for c in campaigns], ignore_index=True)
    if units.empty:
        names = ", ".join(c.campaign_id for c in campaigns)
        raise CampaignStoreError(f"抽查任务 {names} 没有完整录入结果的企业 / no drawn firm "
                                 f"with all outcomes recorded in {names}")
    strata = pd.concat([stratum_populations(c) for c in campaigns], ignore_index=True)
    classes = [k for k in policies[0].classes if k in set(units["class"].astype(str))]
    table = problem_rate_estimates(units, policies[0].confidence_level, strata=strata,
                                   domains=classes)
    variance = table["std_error"].astype(float) ** 2
    rate = table["estimate"].astype(float)
    effective = (rate * (1 - rate) / variance).where((variance > 0) & (rate > 0) & (rate < 1))
    return table.assign(effective_sample_size=effective,
                        confidence=policies[0].confidence_level)


def inspections_export(campaigns: Sequence[Campaign], known_date: dt.date) -> pd.DataFrame:
    """Recorded results as contract `inspections` rows, exactly the contract's columns.

    Dropped into a district's next ingest directory they carry `source=random_draw` and the
    inclusion probability, so the next training run can weight these labels by 1 / π.
    """
    results = pd.concat([own_results(c) for c in campaigns], ignore_index=True)
    if results["outcome"].notna().sum() == 0:
        names = ", ".join(c.campaign_id for c in campaigns)
        raise CampaignStoreError(f"抽查任务 {names} 没有已录入的检查结果 / no outcome recorded "
                                 f"in {names}")
    rows = results_as_inspections(results, known_date)
    columns = list(TABLES["inspections"].column_names)
    for column in columns:
        if column not in rows.columns:
            rows[column] = pd.NA
    return rows[columns].reset_index(drop=True)
