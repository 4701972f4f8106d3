"""Response and request models of the API: what other systems and the pages rely on."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str
    database: str
    latest_run_id: int | None
    latest_as_of: date | None


class VersionInfo(BaseModel):
    riskmatrix: str
    model_name: str | None
    model_version: str | None
    policy_version: str | None
    policy_hash: str | None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    username: str
    role: str


class PrincipalOut(BaseModel):
    username: str
    role: str
    inspector_id: str | None


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    role: str
    password: str = Field(min_length=8, max_length=256)
    inspector_id: str | None = None


class Reason(BaseModel):
    """One SHAP reason with its bilingual label (rank 1 = largest contribution)."""

    rank: int
    feature: str
    value: float | None
    contribution: float
    raises_risk: bool
    reason_code: str
    text_zh: str
    text_en: str


class ClassHistoryPoint(BaseModel):
    as_of: date
    run_id: int
    risk_class: str
    score_class: str
    probability: float
    overrides: str
    model_version: str
    policy_version: str


class EnterpriseDecision(BaseModel):
    """An enterprise's published decision and everything needed to reproduce it."""

    uscc: str
    name: str | None
    risk_class: str
    score_class: str
    probability: float
    overrides: list[str]
    class_reason_zh: str
    class_reason_en: str
    as_of: date
    run_id: int
    model_name: str
    model_version: str
    policy_version: str
    policy_hash: str
    snapshot_id: str
    input_hash: str
    reasons: list[Reason]
    history: list[ClassHistoryPoint]


class ListTarget(BaseModel):
    """One visit on an inspector team's ranked list."""

    team_id: str
    rank: int
    visit_id: str
    visit_date: date | None
    uscc: str
    name: str | None
    risk_class: str | None
    probability: float | None
    top_reasons_zh: str
    top_reasons_en: str
    departments: str
    check_items: str


class InspectorList(BaseModel):
    inspector_id: str
    campaign_ids: list[str]
    targets: list[ListTarget]


class ProjectPlacement(BaseModel):
    project_id: str
    name: str | None
    risk_source_grade: str
    management_grade: str
    probability: float | None
    cell: str
    level: str
    level_zh: str | None = None
    level_en: str | None = None
    interval_days: int | None = None
    next_due: date | None
    reasons: str


class ProjectMatrix(BaseModel):
    as_of: date
    source: str
    model_version: str | None
    policy_version: str | None
    counts: list[dict[str, Any]]
    projects: list[ProjectPlacement]


class ProjectDecision(BaseModel):
    as_of: date
    source: str
    model_version: str | None
    policy_version: str | None
    project: ProjectPlacement


class CampaignSummary(BaseModel):
    campaign_id: str
    department: str
    title: str
    check_items: list[str]
    period_start: date
    period_end: date
    status: str
    status_label: str
    drawn: int | None


class Stratum(BaseModel):
    stratum: str
    population: int
    sample: int
    inclusion_probability: float
    basis: str


class CampaignView(BaseModel):
    """A campaign's plan and state: what a regulator checks on the campaign page."""

    summary: CampaignSummary
    steps: list[dict[str, Any]]
    commitment_digest: str
    commitment: dict[str, Any]
    seed_revealed: str | None
    public_entropy: str | None
    strata: list[Stratum]


class DrawnTarget(BaseModel):
    uscc: str
    risk_class: str
    stratum: str
    inclusion_probability: float
    key: str


class DrawView(BaseModel):
    campaign_id: str
    seed: str
    public_entropy: str
    drawn_at: str
    commitment_digest: str
    strata: list[Stratum]
    drawn: list[DrawnTarget]


class VerificationCheck(BaseModel):
    name: str
    ok: bool
    detail: str


class VerificationOut(BaseModel):
    campaign_id: str
    match: bool
    checks: list[VerificationCheck]
    summary: str


class Rows(BaseModel):
    """A table as records (campaign assignment, results, publication, trigger cases)."""

    columns: list[str]
    rows: list[dict[str, Any]]


class ChainReportOut(BaseModel):
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    anchors_checked: int
    problem_seq: int | None
    problem: str | None
    message: str


class ReplayOut(BaseModel):
    uscc: str
    as_of: str
    run_id: int
    matches: bool
    differences: list[dict[str, Any]]
    notes: list[str]
    replayed: dict[str, Any]


class AuditEventOut(BaseModel):
    seq: int
    kind: str
    recorded_at: str
    entity: str | None
    as_of: str | None
    run_id: int | None
    payload: dict[str, Any]
    hash: str


class ModelVersionOut(BaseModel):
    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    created_at: str | None
    policy_version: str | None
    metrics: dict[str, float]


class ModelCard(BaseModel):
    name: str
    version: str
    markdown: str


class MonitoringOut(BaseModel):
    run_id: int | None
    as_of: date | None
    drift: dict[str, Any]
    transitions: dict[str, Any]


class FairnessOut(BaseModel):
    run_id: int | None
    as_of: date | None
    flags: int
    table: list[dict[str, Any]]


class Dashboard(BaseModel):
    """The regulator dashboard: class distribution, drift, fairness, model versions, runs."""

    run_id: int | None
    as_of: date | None
    class_counts: dict[str, int]
    model_name: str | None
    model_version: str | None
    policy_version: str | None
    drift: dict[str, Any]
    fairness_flags: int | None
    transitions: dict[str, Any]
    runs: list[dict[str, Any]]


class ScoreRequest(BaseModel):
    """An enterprise record to score on demand, in the source-data contract's columns.

    `enterprise` is one `enterprises` row; `events` and `inspections` are that enterprise's
    `enterprise_events` and `inspections` rows (values as they would appear in the CSV export).
    The district's other enterprises that share the legal representative or registered
    address come from the current snapshot, so related-party features are the nightly's.
    """

    enterprise: dict[str, Any]
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)
    inspections: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)
    as_of: date | None = None


class ScoreResponse(BaseModel):
    uscc: str
    as_of: date
    probability: float
    risk_class: str
    score_class: str
    overrides: list[str]
    class_reason_zh: str
    class_reason_en: str
    model_name: str
    model_version: str
    policy_version: str
    policy_hash: str
    input_hash: str
    reasons: list[Reason]
