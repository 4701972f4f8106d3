"""Parameters of the synthetic world.

Every number that shapes the simulated district lives here, named, with a default chosen so
the calibration report (see `simulation.calibration`) lands inside the published bands of
`docs/domain.md`. They describe the synthetic world, not regulatory policy; the sampling
ratios of the historical campaigns are the simulated district's past practice.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RiskParameters:
    """Latent risk: logit = intercept + type shift + covariates + related parties + drift.

    A firm's type (compliant / risky / chronic offender) is an ordered logit on industry,
    shell status and related parties; most of the between-firm spread comes from it.

    The violation state follows a two-state chain with exit rate k * sqrt(1 - p) and entry
    rate k * p / sqrt(1 - p) (k = `switch_rate`, p = the month's risk, capped at `max_risk`
    so entry stays a probability), so absent enforcement a firm is violating a share p of
    months; risky firms stay in violation long and relapse soon after being corrected.
    """

    intercept: float = -3.75
    type_shifts: tuple[float, float] = (3.68, 6.65)  # risky, chronic offender
    chronic_cutoff: float = 3.65
    risky_type_intercept: float = -0.25
    persistent_sd: float = 0.35
    drift_sd: float = 0.3
    drift_autocorrelation: float = 0.97
    regime_change_rate: float = 0.003
    legal_rep_sd: float = 0.25
    address_cluster_mean: float = 0.5
    address_cluster_sd: float = 0.4
    related_to_type: float = 1.5
    young_firm_effect: float = 0.6
    young_firm_scale_years: float = 2.5
    size_effect_per_log10_employees: float = -0.2
    shell_effect: float = 1.2
    digital_effect: float = 0.2
    class_thresholds: tuple[float, float, float] = (0.3, 0.58, 0.85)
    switch_rate: float = 0.1
    max_risk: float = 0.99


@dataclass(frozen=True)
class RegistryParameters:
    """Shape of the register: ages, closures, related parties, capital."""

    new_firm_share: float = 0.2
    mean_age_years: float = 7.0
    max_age_years: float = 40.0
    shared_rep_share: float = 0.15
    shared_rep_group_p: float = 0.45
    cluster_address_share: float = 0.05
    cluster_min_size: int = 8
    cluster_mean_extra_size: float = 25.0
    shell_share: float = 0.004
    ownership_shares: tuple[float, float, float, float, float] = (0.85, 0.03, 0.05, 0.05, 0.02)
    other_entity_shares: tuple[float, float, float, float, float, float] = (
        0.80, 0.03, 0.03, 0.045, 0.09, 0.005,
    )  # limited, joint-stock, partnership, sole proprietorship, branch, cooperative
    digital_in_digital_industry: float = 0.65
    digital_keyword_only: float = 0.25  # the rest carry neither code nor keyword (tag only)
    manual_tag_share: float = 0.4
    cancel_rate: float = 0.0012
    cancel_rate_risk: float = 0.003
    revoke_rate_long_listed: float = 0.03
    revoke_after_listed_days: int = 730
    legacy_listing_rate: float = 0.01
    legacy_listing_rate_risk: float = 0.08


@dataclass(frozen=True)
class SignalParameters:
    """How the true state leaks into records: rates per firm-month, delays in days."""

    detection: float = 0.9
    minor_lapse: float = 0.05
    found_outcome_shares: tuple[float, float, float, float] = (0.45, 0.35, 0.12, 0.08)
    # order_to_correct, case_opened, disclosure_failure, unreachable
    penalty_after_case: float = 0.55
    penalty_after_order: float = 0.08
    serious_penalty_share: float = 0.15
    serious_case_listing: float = 0.3
    penalty_decision_days: tuple[int, int] = (15, 120)
    publication_days: tuple[int, int] = (1, 28)
    result_recording_days: tuple[int, int] = (1, 28)
    complaint_base_consumer: float = 0.012
    complaint_base_other: float = 0.002
    complaint_violating_consumer: float = 0.09
    complaint_violating_other: float = 0.04
    complaint_known_days: tuple[int, int] = (1, 7)
    complaint_inspection_share: float = 0.35
    complaint_inspection_days: tuple[int, int] = (3, 25)
    case_lead_base: float = 0.0003
    case_lead_violating: float = 0.006
    case_lead_inspection_share: float = 0.8
    registration_change_base: float = 0.006
    registration_change_risk: float = 0.03
    opinion_base: float = 0.0003
    opinion_violating: float = 0.004
    digital_opinion_base: float = 0.006
    digital_opinion_problem: float = 0.1
    digital_monitoring_base: float = 0.03
    digital_monitoring_problem: float = 0.45
    digital_serious_problem_base: float = 0.15
    digital_serious_problem_risk: float = 0.4
    digital_trigger_inspection_share: float = 0.3
    annual_report_on_time_intercept: float = 4.0
    annual_report_on_time_risk: float = -4.5
    annual_report_late_filing: float = 0.55
    annual_report_late_mean_days: float = 70.0
    unreachable_base: float = 0.0003
    unreachable_risk: float = 0.003
    unreachable_exit_rate: float = 0.05
    disclosure_exit_rate: float = 0.25
    tax_score_mean: float = 86.0
    tax_score_risk: float = -22.0
    tax_score_sd: float = 4.0
    tax_score_size: float = 1.2


@dataclass(frozen=True)
class CampaignDesign:
    """One department's yearly 双随机 campaign as the simulated district ran it.

    `frame_sections` restricts the roster to industry sections (empty = every firm);
    `class_ratios` (A, B, C, D by the crude rule-based class) replace `uniform_ratio` once
    `uniform_years` campaign years have run. `month` is the month of the draw.
    """

    department: str
    month: int
    uniform_ratio: float
    frame_sections: tuple[str, ...] = ()
    exclude_individual: bool = False
    class_ratios: tuple[float, float, float, float] | None = None
    uniform_years: int = 2


def _default_campaigns() -> tuple[CampaignDesign, ...]:
    return (
        # The district has drawn market checks by (crude) class since its 2022 plan took effect,
        # so every simulated market campaign is class-driven (uniform_years=0).
        CampaignDesign("market", 3, 0.04, class_ratios=(0.015, 0.04, 0.10, 0.30),
                       uniform_years=0),
        CampaignDesign("tax", 4, 0.02, exclude_individual=True),
        CampaignDesign("environment", 5, 0.04, frame_sections=("C", "H")),
        CampaignDesign("safety", 4, 0.03, frame_sections=("C", "E", "G", "F")),
        CampaignDesign("fire", 5, 0.03, frame_sections=("H", "F", "O", "R", "L")),
        CampaignDesign("housing", 3, 0.05, frame_sections=("E", "K")),
    )


@dataclass(frozen=True)
class CrudeClassRule:
    """The simple points rule the district used for class-driven draws (before any model).

    Points: abnormal-listed now, penalty known in the last two years, complaint known in the
    last year, latest tax grade C/D, serious-dishonesty listed, last annual report late.
    Class = A below `cutoffs[0]` points, B below `cutoffs[1]`, C below `cutoffs[2]`, else D.
    """

    abnormal: int = 2
    penalty: int = 2
    complaint: int = 1
    bad_tax_grade: int = 2
    serious: int = 3
    late_report: int = 1
    cutoffs: tuple[int, int, int] = (1, 2, 4)


@dataclass(frozen=True)
class ProjectParameters:
    """Construction projects: hazards, management, inspections, accidents."""

    intercept: float = -1.5
    management_sd: float = 0.8
    participant_weight: float = 0.55
    hazard_weight: float = 0.35
    stage_effects: tuple[float, float, float, float] = (-0.6, 0.5, 0.4, -0.2)
    # preparation, foundation, main_structure, decoration
    drift_sd: float = 0.3
    drift_autocorrelation: float = 0.9
    switch_rate: float = 0.35
    detection: float = 0.9
    scheduled_interval_months: tuple[int, int, int] = (1, 2, 3)
    random_draw_ratio: float = 0.1
    complaint_rate: float = 0.01
    complaint_rate_defective: float = 0.04
    accident_rate: float = 0.0008
    accident_rate_defective: float = 0.003
    overdue_rectification_base: float = 0.1
    overdue_rectification_risk: float = 0.5
    rectification_days: tuple[int, int] = (20, 60)


@dataclass(frozen=True)
class InspectorParameters:
    """Roster sizes and declared conflicts."""

    enterprises_per_inspector: int = 250
    minimum_per_department: int = 6
    inactive_share: float = 0.05
    conflict_share: float = 0.01
    max_conflicts: int = 3


@dataclass(frozen=True)
class WorldParameters:
    """All parameter groups together (one field of `DistrictConfig`)."""

    risk: RiskParameters = field(default_factory=RiskParameters)
    registry: RegistryParameters = field(default_factory=RegistryParameters)
    signals: SignalParameters = field(default_factory=SignalParameters)
    campaigns: tuple[CampaignDesign, ...] = field(default_factory=_default_campaigns)
    crude_class: CrudeClassRule = field(default_factory=CrudeClassRule)
    projects: ProjectParameters = field(default_factory=ProjectParameters)
    inspectors: InspectorParameters = field(default_factory=InspectorParameters)
