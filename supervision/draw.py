"""The verifiable seeded draw ("摇号") of a random-inspection campaign.

This docstring is public evidence: anyone holding the evidence record and the roster snapshot
can re-implement the draw in any language with SHA-256 alone.

Algorithm ``riskmatrix-draw-v1``
--------------------------------
Before the draw the campaign publishes a **commitment**: SHA-256 of the seed (the seed itself
stays secret), the roster snapshot hash, the policy version and hash, the campaign spec hash,
the list of firms excluded as already drawn this year, and a timestamp. Its own digest is the
SHA-256 of its canonical JSON (keys sorted, no spaces, UTF-8).

The draw then runs on the sampling frame (`supervision.campaigns.plan_campaign`: eligible firms,
each in one stratum, and a sample size n_s per stratum):

1. For every eligible firm with code ``u`` compute
   ``key(u) = hex(SHA-256(UTF-8(seed + "|" + public_entropy + "|" + campaign_id + "|" + u)))``
   (64 lowercase hex digits). ``public_entropy`` is text fixed only after the commitment (e.g.
   the number of a public lottery or drawn on site); it may be empty.
2. In each stratum, order the firms by (key, uscc) ascending and take the first n_s.
3. A drawn firm's inclusion probability is n_s / N_s, N_s being the stratum's size: this is
   simple random sampling without replacement within each stratum.

After the draw the seed is revealed; `verify_draw` checks SHA-256(seed) against the commitment,
rebuilds the frame from the roster snapshot and policy, re-runs steps 1–3 and compares.

Canonical hashes
----------------
* roster: SHA-256 of a CSV (UTF-8, ``,`` separator, ``\\n`` line ends, minimal quoting) of the
  columns the plan may read — uscc, class, digital_undisturbed, status, entity_type,
  industry_code, street, employees, registered_capital, registered_address,
  entities_at_address, then targeted-rule columns in name order — those present, header first,
  rows sorted by uscc. Cells: missing → empty; booleans → ``true``/``false``; whole numbers →
  integer digits (``12.0`` → ``12``); other numbers → shortest round-trip decimal; dates → ISO.
* policy and spec: SHA-256 of their canonical JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.contract import LIST_SEPARATOR
from supervision.campaigns import (
    ADDRESS_COUNT_COLUMN,
    CampaignError,
    CampaignSpec,
    SamplingFrame,
    already_drawn,
    normalize_roster,
    plan_campaign,
)
from supervision.sampling_policy import SamplingPolicy

ALGORITHM = "riskmatrix-draw-v1"
FIELD_SEPARATOR = "|"
ROSTER_HASH_COLUMNS: tuple[str, ...] = (
    "uscc", "class", "digital_undisturbed", "status", "entity_type", "industry_code", "street",
    "employees", "registered_capital", "registered_address", ADDRESS_COUNT_COLUMN,
)
_HEX64 = r"^[0-9a-f]{64}$"


class DrawError(CampaignError):
    """The draw cannot run as committed (seed, roster, policy or spec differ)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Commitment(_Record):
    """Published before the draw: fixes seed, roster, policy, spec and exclusions."""

    algorithm: str = ALGORITHM
    campaign_id: str
    seed_sha256: str = Field(pattern=_HEX64)
    roster_sha256: str = Field(pattern=_HEX64)
    roster_rows: int
    policy_version: str
    policy_sha256: str = Field(pattern=_HEX64)
    spec_sha256: str = Field(pattern=_HEX64)
    excluded: list[str]
    committed_at: dt.datetime

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of this commitment (the one number to publish)."""
        return _sha256_text(canonical_json(self.model_dump(mode="json")))


class StratumRecord(_Record):
    stratum: str
    population: int
    sample: int
    inclusion_probability: float
    basis: str


class DrawnRecord(_Record):
    uscc: str
    class_: str = Field(alias="class")
    stratum: str
    inclusion_probability: float
    key: str

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DrawEvidence(_Record):
    """Everything needed to re-run and check a draw once the seed is revealed.

    Internal to the supervising bodies: strata are credit classes, which are not published
    (see `public_notice` for the public part).
    """

    commitment: Commitment
    spec: CampaignSpec
    seed: str
    public_entropy: str
    drawn_at: dt.datetime
    strata: list[StratumRecord]
    drawn: list[DrawnRecord]

    def drawn_frame(self) -> pd.DataFrame:
        """The drawn targets: uscc, class, stratum, inclusion_probability, key, campaign fields."""
        rows = pd.DataFrame(
            [r.model_dump(by_alias=True) for r in self.drawn],
            columns=["uscc", "class", "stratum", "inclusion_probability", "key"],
        )
        rows["campaign_id"] = self.spec.campaign_id
        rows["department"] = self.spec.department
        rows["check_items"] = LIST_SEPARATOR.join(self.spec.check_items)
        return rows


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of re-running a draw: `match` only when every check passed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def match(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def summary(self) -> str:
        head = ("核验一致 / draw verified: match" if self.match
                else "核验不一致 / draw verification: MISMATCH")
        lines = [head] + [f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_seed() -> str:
    """A fresh 256-bit seed as 64 hex digits (keep it secret until the draw is done)."""
    return secrets.token_hex(32)


def seed_sha256(seed: str) -> str:
    return _sha256_text(seed)


def policy_sha256(policy: SamplingPolicy) -> str:
    return _sha256_text(canonical_json(policy.model_dump(mode="json")))


def spec_sha256(spec: CampaignSpec) -> str:
    return _sha256_text(canonical_json(spec.model_dump(mode="json")))


def _canonical_cell(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return ""
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def roster_hash_columns(frame: pd.DataFrame, policy: SamplingPolicy) -> list[str]:
    rule_columns = sorted({c.column for r in policy.targeted_rules for c in r.conditions})
    wanted = list(ROSTER_HASH_COLUMNS) + [c for c in rule_columns if c not in ROSTER_HASH_COLUMNS]
    return [c for c in wanted if c in frame.columns]


def roster_sha256(roster: pd.DataFrame, policy: SamplingPolicy) -> tuple[str, int]:
    """Canonical hash of the roster columns the plan may read, and the number of rows."""
    frame = normalize_roster(roster, policy)
    columns = roster_hash_columns(frame, policy)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in frame[columns].itertuples(index=False, name=None):
        writer.writerow([_canonical_cell(v) for v in row])
    return _sha256_text(buffer.getvalue()), len(frame)


def draw_key(seed: str, public_entropy: str, campaign_id: str, uscc: str) -> str:
    """Step 1 of the algorithm for one firm."""
    text = FIELD_SEPARATOR.join((seed, public_entropy, campaign_id, uscc))
    return _sha256_text(text)


def _rank_arrays(
    codes: np.ndarray, strata: np.ndarray, seed: str, campaign_id: str, public_entropy: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row order by (stratum, key, uscc), keys per row, rank and stratum size in that order."""
    prefix = FIELD_SEPARATOR.join((seed, public_entropy, campaign_id, ""))
    sha256 = hashlib.sha256
    keys = np.array([sha256((prefix + u).encode("utf-8")).hexdigest() for u in codes],
                    dtype="<U64")
    order = np.lexsort((codes, keys, strata))
    sorted_strata = strata[order]
    starts = np.r_[0, np.flatnonzero(sorted_strata[1:] != sorted_strata[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    return order, keys, rank, np.repeat(sizes, sizes)


def _text_array(series: pd.Series) -> np.ndarray:
    return np.asarray(series.astype(str).tolist(), dtype=str)


def stratum_ranks(
    units: pd.DataFrame, seed: str, campaign_id: str, public_entropy: str = ""
) -> pd.DataFrame:
    """Steps 1–2 without the cut: units with `key` and `rank` (0-based) within their stratum."""
    order, keys, rank, sizes = _rank_arrays(_text_array(units["uscc"]),
                                            _text_array(units["stratum"]), seed, campaign_id,
                                            public_entropy)
    return units.iloc[order].assign(key=keys[order], rank=rank, stratum_size=sizes)


def draw_units(
    units: pd.DataFrame,
    sample_sizes: Mapping[str, int],
    seed: str,
    campaign_id: str,
    public_entropy: str = "",
) -> pd.DataFrame:
    """Steps 1–3 on a frame of units (uscc, stratum, …): the drawn rows, sorted by uscc.

    Adds `key` and `inclusion_probability` (= n_s / N_s) to the drawn rows.
    """
    codes, strata = _text_array(units["uscc"]), _text_array(units["stratum"])
    unknown = sorted(set(sample_sizes) - set(strata.tolist()))
    if unknown:
        raise DrawError(f"抽样层不存在 / sample sizes for unknown strata {unknown}")
    order, keys, rank, sizes = _rank_arrays(codes, strata, seed, campaign_id, public_entropy)
    names, inverse = np.unique(strata[order], return_inverse=True)
    wanted = np.array([int(sample_sizes.get(str(s), 0)) for s in names], dtype=int)[inverse]
    chosen = rank < wanted
    rows = order[chosen]
    probability = wanted[chosen] / sizes[chosen]
    by_code = np.argsort(codes[rows], kind="stable")
    drawn = units.iloc[rows[by_code]].assign(key=keys[rows[by_code]],
                                              inclusion_probability=probability[by_code])
    return drawn.reset_index(drop=True)


def commit_campaign(
    spec: CampaignSpec,
    roster: pd.DataFrame,
    policy: SamplingPolicy,
    seed_hash: str,
    committed_at: dt.datetime,
    history: pd.DataFrame | None = None,
) -> Commitment:
    """The commitment to publish before drawing (the seed is given by its SHA-256 only).

    Planning here also fails early on an infeasible spec, before anything is published.
    """
    frame = plan_campaign(spec, roster, policy, history=history)
    roster_hash, rows = roster_sha256(roster, policy)
    return Commitment(
        campaign_id=spec.campaign_id,
        seed_sha256=seed_hash,
        roster_sha256=roster_hash,
        roster_rows=rows,
        policy_version=policy.version,
        policy_sha256=policy_sha256(policy),
        spec_sha256=spec_sha256(spec),
        excluded=list(frame.excluded),
        committed_at=committed_at,
    )


def _commitment_problems(
    commitment: Commitment,
    spec: CampaignSpec,
    roster: pd.DataFrame,
    policy: SamplingPolicy,
    seed: str,
) -> list[Check]:
    roster_hash, rows = roster_sha256(roster, policy)
    return [
        Check("seed_hash", seed_sha256(seed) == commitment.seed_sha256,
              "SHA-256(种子) 与承诺一致 / SHA-256(seed) equals the committed hash"
              if seed_sha256(seed) == commitment.seed_sha256 else
              "种子与承诺的哈希不符 / the revealed seed does not hash to the committed value"),
        Check("roster_hash", roster_hash == commitment.roster_sha256,
              f"名录快照哈希 / roster snapshot hash {roster_hash[:16]}… ({rows} rows) vs "
              f"committed {commitment.roster_sha256[:16]}… ({commitment.roster_rows} rows)"),
        Check("policy_version", policy.version == commitment.policy_version,
              f"策略版本 / policy version {policy.version!r} vs committed "
              f"{commitment.policy_version!r}"),
        Check("policy_hash", policy_sha256(policy) == commitment.policy_sha256,
              "策略内容哈希 / policy content hash "
              + ("matches" if policy_sha256(policy) == commitment.policy_sha256 else "differs")),
        Check("spec_hash", spec_sha256(spec) == commitment.spec_sha256,
              "抽查任务哈希 / campaign spec hash "
              + ("matches" if spec_sha256(spec) == commitment.spec_sha256 else "differs")),
        Check("campaign_id", spec.campaign_id == commitment.campaign_id,
              f"任务编号 / campaign id {spec.campaign_id!r} vs {commitment.campaign_id!r}"),
    ]


def _strata_records(frame: SamplingFrame) -> list[StratumRecord]:
    return [
        StratumRecord(stratum=str(r["stratum"]), population=int(r["population"]),
                      sample=int(r["sample"]),
                      inclusion_probability=int(r["sample"]) / int(r["population"]),
                      basis=str(r["basis"]))
        for r in frame.strata.to_dict(orient="records")
    ]


def draw_campaign(
    commitment: Commitment,
    spec: CampaignSpec,
    roster: pd.DataFrame,
    policy: SamplingPolicy,
    seed: str,
    drawn_at: dt.datetime,
    public_entropy: str = "",
) -> DrawEvidence:
    """Run the committed draw; refuse if seed, roster, policy or spec differ from the commitment."""
    failed = [c for c in _commitment_problems(commitment, spec, roster, policy, seed) if not c.ok]
    if failed:
        details = "; ".join(c.detail for c in failed)
        raise DrawError(f"抽取与承诺不符, 拒绝执行 / draw does not match its commitment: {details}")
    if drawn_at < commitment.committed_at:
        raise DrawError("抽取时间早于承诺时间 / drawn_at is before committed_at")
    frame = plan_campaign(spec, roster, policy, excluded=commitment.excluded)
    drawn = draw_units(frame.units, frame.sample_sizes, seed, spec.campaign_id, public_entropy)
    return DrawEvidence(
        commitment=commitment,
        spec=spec,
        seed=seed,
        public_entropy=public_entropy,
        drawn_at=drawn_at,
        strata=_strata_records(frame),
        drawn=[
            DrawnRecord.model_validate(r)
            for r in drawn[["uscc", "class", "stratum", "inclusion_probability", "key"]]
            .to_dict(orient="records")
        ],
    )


def _list_check(evidence: DrawEvidence, drawn: pd.DataFrame) -> Check:
    recorded = {r.uscc: (r.stratum, r.inclusion_probability) for r in evidence.drawn}
    rerun = dict(zip(drawn["uscc"], zip(drawn["stratum"], drawn["inclusion_probability"],
                                        strict=True), strict=True))
    missing = sorted(set(rerun) - set(recorded))
    extra = sorted(set(recorded) - set(rerun))
    changed = sorted(u for u in set(recorded) & set(rerun) if recorded[u] != rerun[u])
    if not (missing or extra or changed):
        return Check("drawn_list", True,
                     f"重新抽取名单一致 / re-run list identical ({len(rerun)} targets)")
    return Check(
        "drawn_list", False,
        f"名单不一致 / list differs: 重新抽取有而记录无 / drawn on re-run but not recorded "
        f"{missing[:10]}; 记录有而重新抽取无 / recorded but not drawn on re-run {extra[:10]}; "
        f"层或入样概率不同 / stratum or probability differs {changed[:10]}",
    )


def verify_draw(
    evidence: DrawEvidence,
    roster: pd.DataFrame,
    policy: SamplingPolicy,
    history: pd.DataFrame | None = None,
    published_digest: str | None = None,
) -> VerificationResult:
    """Re-run a draw from its evidence and the roster snapshot and policy; report every check.

    `history` (inspections) also re-derives the exclusion list; `published_digest` checks the
    commitment in the evidence is the one published before the draw.
    """
    commitment, spec = evidence.commitment, evidence.spec
    checks = _commitment_problems(commitment, spec, roster, policy, evidence.seed)
    if published_digest is not None:
        ok = commitment.digest() == published_digest
        checks.append(Check("commitment_digest", ok,
                            "承诺摘要与公布值" + ("一致" if ok else "不符")
                            + f" / commitment digest {'matches' if ok else 'differs from'} "
                              "the published value"))
    checks.append(Check("committed_before_draw", commitment.committed_at <= evidence.drawn_at,
                        f"承诺 {commitment.committed_at.isoformat()} / "
                        f"抽取 drawn {evidence.drawn_at.isoformat()}"))
    if history is not None:
        expected = list(already_drawn(history, spec))
        try:
            eligible = set(plan_campaign(spec, roster, policy, excluded=()).units["uscc"])
            expected = [u for u in expected if u in eligible]
        except CampaignError:
            pass
        ok = expected == list(commitment.excluded)
        checks.append(Check("excluded", ok,
                            "本年已抽排除名单 / already-drawn exclusions "
                            + ("match history" if ok else
                               f"differ: history gives {expected[:10]}, committed "
                               f"{commitment.excluded[:10]}")))
    try:
        frame = plan_campaign(spec, roster, policy, excluded=commitment.excluded)
    except CampaignError as exc:
        checks.append(Check("strata", False, f"无法重建抽样框 / cannot rebuild the frame: {exc}"))
        return VerificationResult(checks)
    strata_ok = _strata_records(frame) == evidence.strata
    checks.append(Check("strata", strata_ok,
                        "各层总数与抽取数 / stratum sizes and samples "
                        + ("match" if strata_ok else "differ")))
    drawn = draw_units(frame.units, frame.sample_sizes, evidence.seed, spec.campaign_id,
                       evidence.public_entropy)
    checks.append(_list_check(evidence, drawn))
    return VerificationResult(checks)


def commitment_to_json(commitment: Commitment) -> str:
    return commitment.model_dump_json()


def commitment_from_json(text: str) -> Commitment:
    return Commitment.model_validate_json(text)


def evidence_to_json(evidence: DrawEvidence) -> str:
    return evidence.model_dump_json(by_alias=True, indent=1)


def evidence_from_json(text: str) -> DrawEvidence:
    return DrawEvidence.model_validate_json(text)


def public_notice(evidence: DrawEvidence) -> dict[str, object]:
    """What may be published after the draw: hashes, seed and the drawn codes — no classes."""
    c, s = evidence.commitment, evidence.spec
    return {
        "algorithm": c.algorithm,
        "campaign_id": s.campaign_id,
        "department": s.department,
        "title": s.title,
        "check_items": list(s.check_items),
        "period_start": s.period_start.isoformat(),
        "period_end": s.period_end.isoformat(),
        "commitment_digest": c.digest(),
        "committed_at": c.committed_at.isoformat(),
        "seed_sha256": c.seed_sha256,
        "roster_sha256": c.roster_sha256,
        "policy_version": c.policy_version,
        "policy_sha256": c.policy_sha256,
        "spec_sha256": c.spec_sha256,
        "seed": evidence.seed,
        "public_entropy": evidence.public_entropy,
        "drawn_at": evidence.drawn_at.isoformat(),
        "drawn_uscc": sorted(r.uscc for r in evidence.drawn),
    }


def draw_history_rows(evidences: Iterable[DrawEvidence]) -> pd.DataFrame:
    """Draws as inspections-shaped rows, so later campaigns this year exclude their targets."""
    rows = [
        {"uscc": r.uscc, "inspection_date": e.spec.period_start, "source": "random_draw",
         "campaign_id": e.spec.campaign_id, "department": e.spec.department,
         "check_items": LIST_SEPARATOR.join(e.spec.check_items)}
        for e in evidences for r in e.drawn
    ]
    return pd.DataFrame(rows, columns=["uscc", "inspection_date", "source", "campaign_id",
                                       "department", "check_items"])
