"""Point-in-time enterprise features for the credit-risk model (five national indicator groups).

`build_enterprise_features(snapshot, as_of, ...)` turns a snapshot of the source tables into one
row per enterprise that exists on `as_of`, using only what the regulator *knew* before that day:
enterprise events and inspections count only when `known_date < as_of`, and an event's window
position is taken from its `occurred_date` (an inspection's from its `inspection_date`). Adding
records known on or after `as_of` can therefore never change a feature (a test proves it).

Conventions the models rely on:

* Counts of missing histories are 0; "days since" features are NaN when nothing happened
  (LightGBM routes NaN on its own), so "never penalised" is not confused with "long ago".
* Windowed counts are named `<what>_<days>d` and cover `occurred_date` in `[as_of - days, as_of)`.
* Minor lapses on the exemption list (轻微违法免处罚清单) are counted apart from real problems:
  `exempt_lapses_*` never feed `inspection_problems_*`.
* Audit columns (ownership type, entity type, street, industry section, size band and the
  hard-rule flags) ride along for fairness reports and rule overrides; their catalogue entries
  have `model_input=False`, so `catalogue.model_inputs(ENTERPRISE_FEATURES)` excludes them.

Known limitation: `enterprises` is the *current* registration record, so the legal
representative, address, employees and capital used here are today's values, not those on
`as_of`; registration-change events carry no old/new values to rewind them.

Everything is vectorised (factorised codes + `np.bincount`), so one district builds in seconds and
a province-sized partition in minutes; the function does no I/O and can be mapped over partitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from features.catalogue import FeatureInfo, IndicatorGroup
from features.contract import (
    ENTERPRISE_EVENT_TYPES,
    ENTITY_TYPES,
    INSPECTION_OUTCOMES,
    SEVERITIES,
    TABLES,
)

DEFAULT_WINDOWS_DAYS: tuple[int, ...] = (90, 365, 1095)

# Annual reports for year Y are due by 30 June of Y + 1 (企业信息公示暂行条例 第八条).
ANNUAL_REPORT_DUE_MONTH = 6
ANNUAL_REPORT_DUE_DAY = 30
ANNUAL_REPORT_LOOKBACK_YEARS = 3

# Complaint trend: rate in the last 90 days against the rate in the 275 days before them.
TREND_RECENT_DAYS = 90
TREND_BASE_DAYS = 365

LEGAL_REP_CHANGE_ITEM = "legal_rep"
ADDRESS_CHANGE_ITEM = "address"

# Stable integer codes for categorical inputs: contract order for entity types, GB/T 4754-2017
# section letters A-T for industries. Appending is safe; reordering would change the model.
ENTITY_TYPE_CODES: dict[str, int] = {code: i for i, code in enumerate(ENTITY_TYPES)}
INDUSTRY_SECTIONS = "ABCDEFGHIJKLMNOPQRST"
INDUSTRY_SECTION_CODES: dict[str, int] = {s: i for i, s in enumerate(INDUSTRY_SECTIONS)}
CATEGORICAL_FEATURES: tuple[str, ...] = ("entity_type_code", "industry_section_code")

# Tax credit grades as an ordinal risk rank. M (new or no revenue) is not on the quality scale,
# so it gets rank NaN and its own flag `tax_grade_m`.
TAX_GRADE_RANK: dict[str, int] = {"A": 0, "B": 1, "C": 2, "D": 3}

# Size bands (audit attribute). Defaults follow the "other industries" row of 中小企业划型标准规定
# (工信部联企业〔2011〕300号) by employees; registered capital (万元) is the fallback when
# employees are unknown. Callers pass the policy's limits.
SIZE_BANDS: dict[str, str] = {
    "micro": "微型 / micro",
    "small": "小型 / small",
    "medium": "中型 / medium",
    "large": "大型 / large",
}
DEFAULT_SIZE_BAND_EMPLOYEES: tuple[int, int, int] = (10, 100, 300)
DEFAULT_SIZE_BAND_CAPITAL_10K_CNY: tuple[float, float, float] = (100.0, 1_000.0, 10_000.0)
DEFAULT_LARGE_CAPITAL_10K_CNY = 10_000.0  # 1亿元: the Shandong targeted-draw threshold
DEFAULT_NEWLY_ESTABLISHED_MONTHS = 12

# Boolean audit columns a policy's hard rules may test (the policy's condition vocabulary).
HARD_RULE_FLAGS: tuple[str, ...] = (
    "on_serious_dishonesty_list",
    "newly_established",
    "on_abnormal_list",
)
# Audit attributes that fairness reports group by.
AUDIT_ATTRIBUTES: tuple[str, ...] = (
    "ownership_type",
    "entity_type",
    "street",
    "industry_section",
    "size_band",
)
AUDIT_COLUMNS: tuple[str, ...] = AUDIT_ATTRIBUTES + HARD_RULE_FLAGS

_CLOSED_STATUSES = ("revoked", "cancelled")
_EVENT_TYPES = pd.Index(list(ENTERPRISE_EVENT_TYPES))
_SEVERITY_NAMES = list(SEVERITIES)
_NAT_DAY = np.iinfo(np.int64).min
_UNIT_COUNT = ("次", "count")
_UNIT_DAYS = ("天", "days")
_UNIT_FLAG = ("是/否 (1/0)", "yes/no (1/0)")


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------


def _info(
    name: str,
    group: IndicatorGroup,
    zh: str,
    en: str,
    direction: Literal[-1, 0, 1] = 0,
    unit: tuple[str, str] = ("", ""),
    model_input: bool = True,
    reason: bool = True,
) -> FeatureInfo:
    return FeatureInfo(name, group, zh, en, direction, model_input, unit[0], unit[1], reason)


def _windowed(
    stem: str,
    windows: Sequence[int],
    group: IndicatorGroup,
    zh: str,
    en: str,
    direction: Literal[-1, 0, 1],
) -> list[FeatureInfo]:
    """One entry per window; `zh`/`en` hold `{w}` for the window length in days."""
    return [
        _info(f"{stem}_{w}d", group, zh.format(w=w), en.format(w=w), direction, _UNIT_COUNT)
        for w in windows
    ]


def enterprise_feature_catalogue(
    windows_days: Sequence[int] = DEFAULT_WINDOWS_DAYS,
) -> dict[str, FeatureInfo]:
    """The catalogue for a given set of windows, in output-column order (audit columns last)."""
    windows = _checked_windows(windows_days)
    longest = windows[-1]
    entries: list[FeatureInfo] = [
        # basic 企业基础属性信息
        _info("tenure_years", "basic", "成立年限", "years since establishment", 0, ("年", "years")),
        _info("registered_capital_log", "basic", "注册资本 (对数, log1p 万元)",
              "registered capital (log1p of 10,000 CNY)"),
        _info("employees", "basic", "从业人数", "employees as last reported", 0,
              ("人", "persons")),
        _info("entity_type_code", "basic", "市场主体类型 (类别代码)",
              "entity type (category code)"),
        _info("industry_section_code", "basic", "行业门类 (类别代码)",
              "industry section (category code)"),
        _info("zero_employees_large_capital", "basic", "零从业人员但注册资本巨大",
              "zero employees but very large registered capital", 1, _UNIT_FLAG),
        # dynamic 企业动态信息
        *_windowed("registration_changes", windows, "dynamic", "近{w}天登记事项变更次数",
                   "registration changes in the last {w} days", 0),
        *_windowed("legal_rep_changes", windows, "dynamic", "近{w}天法定代表人变更次数",
                   "legal-representative changes in the last {w} days", 1),
        *_windowed("address_changes", windows, "dynamic", "近{w}天住所变更次数",
                   "registered-address changes in the last {w} days", 1),
        _info("days_since_last_change", "dynamic", "距最近一次登记变更天数",
              "days since the last registration change", 0, _UNIT_DAYS),
        _info("annual_report_filed_last_year", "dynamic", "已公示上一年度年报",
              "annual report for last year filed", -1, _UNIT_FLAG),
        _info("annual_report_missing_last_due", "dynamic", "最近一个已到期年度未报年报",
              "annual report missing for the latest year already due", 1, _UNIT_FLAG),
        _info("annual_reports_missing_3y", "dynamic", "近3个到期年度未报年报数",
              "annual reports missing in the last 3 due years", 1, ("年", "years")),
        _info("annual_reports_late_3y", "dynamic", "近3个到期年度逾期(6月30日后)报送年报数",
              "annual reports filed late (after 30 June) in the last 3 due years", 1,
              ("年", "years")),
        _info("days_since_report_deadline", "dynamic", "距最近一次年报截止日(6月30日)天数",
              "days since the latest annual-report deadline (30 June)", 0, _UNIT_DAYS,
              reason=False),
        _info("tax_grade_rank", "dynamic", "最新纳税信用等级 (A=0, B=1, C=2, D=3)",
              "latest tax credit grade (A=0, B=1, C=2, D=3)", 1),
        _info("tax_grade_m", "dynamic", "最新纳税信用等级为M (新设或无收入)",
              "latest tax credit grade is M (new or no revenue)", 0, _UNIT_FLAG),
        # supervision 监管信息
        *_windowed("penalties", windows, "supervision", "近{w}天行政处罚次数",
                   "administrative penalties in the last {w} days", 1),
        _info("penalties_total", "supervision", "历史行政处罚次数",
              "administrative penalties on record", 1, _UNIT_COUNT),
        _info("penalty_fines_log", "supervision", "历史罚没金额 (对数, log1p 元)",
              "fines and confiscations on record (log1p of CNY)", 1),
        _info("days_since_last_penalty", "supervision", "距最近一次行政处罚天数",
              "days since the last penalty", -1, _UNIT_DAYS),
        _info("abnormal_listed_now", "supervision", "当前在经营异常名录中",
              "currently on the abnormal-operation list", 1, _UNIT_FLAG),
        _info("abnormal_listings_total", "supervision", "历史列入经营异常名录次数",
              "times put on the abnormal-operation list", 1, _UNIT_COUNT),
        _info("serious_dishonesty_listed_now", "supervision", "当前在严重违法失信名单中",
              "currently on the serious-dishonesty list", 1, _UNIT_FLAG),
        _info("serious_dishonesty_listings_total", "supervision", "历史列入严重违法失信名单次数",
              "times put on the serious-dishonesty list", 1, _UNIT_COUNT),
        *_windowed("inspections", windows, "supervision", "近{w}天被检查次数",
                   "inspections in the last {w} days", 0),
        *_windowed("inspection_problems", windows, "supervision",
                   "近{w}天检查发现问题次数 (不含免罚轻微违法)",
                   "inspections finding a problem in the last {w} days (exempt lapses excluded)",
                   1),
        *_windowed("exempt_lapses", windows, "supervision", "近{w}天免罚清单内轻微违法次数",
                   "minor lapses on the exemption list in the last {w} days", 1),
        _info("last_inspection_problem", "supervision", "最近一次检查发现问题",
              "the latest inspection found a problem", 1, _UNIT_FLAG),
        _info("days_since_last_problem", "supervision", "距最近一次检查发现问题天数",
              "days since an inspection last found a problem", -1, _UNIT_DAYS),
        _info("days_since_last_inspection", "supervision", "距最近一次检查天数",
              "days since the latest inspection", 0, _UNIT_DAYS),
        *_windowed("case_leads", windows, "supervision", "近{w}天转办交办线索数",
                   "referred case leads in the last {w} days", 1),
        # related 关联关系信息
        _info("legal_rep_other_enterprises", "related", "同一法定代表人的其他存续企业数",
              "other existing enterprises of the same legal representative", 0, _UNIT_COUNT),
        _info("legal_rep_other_revoked", "related", "同一法定代表人的其他被吊销企业数",
              "other enterprises of the same legal representative with licence revoked", 1,
              _UNIT_COUNT),
        _info(f"legal_rep_other_penalties_{longest}d", "related",
              f"同一法定代表人的其他企业近{longest}天行政处罚次数",
              f"penalties of the legal representative's other enterprises, last {longest} days",
              1, _UNIT_COUNT),
        _info(f"legal_rep_other_abnormal_listings_{longest}d", "related",
              f"同一法定代表人的其他企业近{longest}天列入经营异常名录次数",
              f"abnormal-list entries of the legal representative's other enterprises, "
              f"last {longest} days", 1, _UNIT_COUNT),
        _info("legal_rep_other_serious_dishonesty_listings", "related",
              "同一法定代表人的其他企业列入严重违法失信名单次数",
              "serious-dishonesty listings of the legal representative's other enterprises", 1,
              _UNIT_COUNT),
        _info("legal_rep_other_on_serious_dishonesty", "related",
              "同一法定代表人有其他企业当前在严重违法失信名单中",
              "another enterprise of the legal representative is on the serious-dishonesty list",
              1, _UNIT_FLAG),
        _info(f"legal_rep_other_inspection_problems_{longest}d", "related",
              f"同一法定代表人的其他企业近{longest}天检查发现问题次数",
              f"inspections finding a problem at the legal representative's other enterprises, "
              f"last {longest} days", 1, _UNIT_COUNT),
        _info("address_other_enterprises", "related", "同一注册地址的其他存续企业数",
              "other existing enterprises at the same registered address", 0, _UNIT_COUNT),
        _info(f"address_other_abnormal_listings_{longest}d", "related",
              f"同一注册地址的其他企业近{longest}天列入经营异常名录次数",
              f"abnormal-list entries of other enterprises at the same address, "
              f"last {longest} days", 1, _UNIT_COUNT),
        _info(f"address_other_penalties_{longest}d", "related",
              f"同一注册地址的其他企业近{longest}天行政处罚次数",
              f"penalties of other enterprises at the same address, last {longest} days", 1,
              _UNIT_COUNT),
        _info(f"address_other_inspection_problems_{longest}d", "related",
              f"同一注册地址的其他企业近{longest}天检查发现问题次数",
              f"inspections finding a problem at other enterprises at the same address, "
              f"last {longest} days", 1, _UNIT_COUNT),
        # social 社会评价信息
        *_windowed("complaints", windows, "social", "近{w}天投诉举报次数",
                   "complaints and reports in the last {w} days", 1),
        _info("complaint_trend", "social", "投诉趋势 (近90天与此前275天年化次数之差)",
              "complaint trend (annualised rate, last 90 days minus the 275 days before)", 0,
              ("次/年", "per year")),
        _info("days_since_last_complaint", "social", "距最近一次投诉举报天数",
              "days since the latest complaint or report", -1, _UNIT_DAYS),
    ]
    for severity, label in SEVERITIES.items():
        zh, en = label.split(" / ")
        entries += _windowed(f"public_opinion_{severity}", windows, "social",
                             f"近{{w}}天{zh}互联网舆情数",
                             f"{en} public-opinion alerts in the last {{w}} days", 1)
    for severity, label in SEVERITIES.items():
        zh, en = label.split(" / ")
        entries += _windowed(f"monitoring_hits_{severity}", windows, "social",
                             f"近{{w}}天{zh}大数据监测命中数",
                             f"{en} monitoring-model hits in the last {{w}} days", 1)
    entries += [
        # audit only: never model inputs by default (fair competition, hard rules)
        _info("ownership_type", "basic", "所有制类型 (仅审计)", "ownership type (audit only)",
              model_input=False),
        _info("entity_type", "basic", "市场主体类型 (仅审计)", "entity type (audit only)",
              model_input=False),
        _info("street", "basic", "所属街道 (仅审计)", "street (audit only)", model_input=False),
        _info("industry_section", "basic", "行业门类 (仅审计)", "industry section (audit only)",
              model_input=False),
        _info("size_band", "basic", "企业规模 (仅审计)", "size band (audit only)",
              model_input=False),
        _info("on_serious_dishonesty_list", "supervision", "在严重违法失信名单中 (硬性规则)",
              "on the serious-dishonesty list (hard rule)", model_input=False),
        _info("newly_established", "basic", "新设立企业 (硬性规则)",
              "newly established (hard rule)", model_input=False),
        _info("on_abnormal_list", "supervision", "在经营异常名录中 (硬性规则)",
              "on the abnormal-operation list (hard rule)", model_input=False),
    ]
    return {entry.name: entry for entry in entries}


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------


def _checked_windows(windows_days: Sequence[int]) -> tuple[int, ...]:
    windows = tuple(int(w) for w in windows_days)
    if not windows or any(w <= 0 for w in windows) or list(windows) != sorted(set(windows)):
        raise ValueError(
            f"特征窗口必须为严格递增的正整数天数 / feature windows must be strictly increasing "
            f"positive day counts, got {list(windows_days)}"
        )
    return windows


def as_of_timestamp(as_of: date | pd.Timestamp | str) -> pd.Timestamp:
    """`as_of` as a naive midnight timestamp (features and labels share this time axis)."""
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is not None:
        raise ValueError(f"as_of 必须是无时区日期 / as_of must be a naive date, got {as_of!r}")
    return stamp.normalize()


def day_number(stamp: pd.Timestamp) -> int:
    """Days since 1970-01-01, the integer time axis all comparisons here use."""
    return int(np.datetime64(stamp.date(), "D").astype(np.int64))


def day_numbers(column: pd.Series) -> np.ndarray:
    """Day numbers of a date column (any datetime unit); NaT becomes `_NAT_DAY`."""
    values = column.to_numpy()
    if not np.issubdtype(values.dtype, np.datetime64):
        values = pd.to_datetime(column).to_numpy()
    return values.astype("datetime64[D]").astype(np.int64)


def encode_codes(values: pd.Series, categories: pd.Index) -> np.ndarray:
    """Positions of `values` in `categories`; -1 for missing or unknown values.

    Factorising first keeps this fast for millions of rows of a few distinct strings.
    """
    codes, uniques = pd.factorize(values)
    lookup = np.append(categories.get_indexer(pd.Index(uniques)), -1)
    return lookup[codes]


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _flags(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=bool, na_value=False)


def snapshot_table(snapshot: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """A snapshot table, or an empty one with the contract's columns when absent."""
    contract = TABLES[name]
    frame = snapshot.get(name)
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in contract.column_names})
    missing = [c for c in contract.column_names if c not in frame.columns]
    if missing:
        raise KeyError(
            f"快照表 {name} 缺少列 {missing} / snapshot table {name} lacks columns {missing}"
        )
    return frame


def _group_min(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-enterprise minimum of `values` as float, NaN where an enterprise has none."""
    out = np.full(n, np.inf)
    np.minimum.at(out, owner, values.astype(np.float64))
    out[np.isinf(out)] = np.nan
    return out


def _count(owner: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(owner, minlength=n).astype(np.int64)


def _window_counts(
    stem: str, owner: np.ndarray, age: np.ndarray, windows: Sequence[int], n: int
) -> dict[str, np.ndarray]:
    return {f"{stem}_{w}d": _count(owner[age <= w], n) for w in windows}


@dataclass(frozen=True)
class _Records:
    """Known records as parallel arrays: source row, owning enterprise, age in days at as_of."""

    rows: np.ndarray
    owner: np.ndarray
    age: np.ndarray

    def where(self, mask: np.ndarray) -> _Records:
        return _Records(self.rows[mask], self.owner[mask], self.age[mask])


@dataclass(frozen=True)
class EnterpriseUniverse:
    """The enterprise universe (all rows, sorted by uscc) and what is known of it at as_of."""

    frame: pd.DataFrame
    index: pd.Index
    established_day: np.ndarray
    established_before: np.ndarray  # established before as_of (exists or has existed)
    existing: np.ndarray  # exists on as_of
    revoked_before: np.ndarray

    @property
    def n(self) -> int:
        return len(self.index)


def enterprise_universe(enterprises: pd.DataFrame, as_of_day: int) -> EnterpriseUniverse:
    """Sort enterprises by code and mark which exist on as_of.

    An enterprise exists when established before as_of and not revoked/cancelled before it;
    a closed enterprise without a status date is treated as closed since an unknown day.
    """
    if enterprises["uscc"].isna().any() or enterprises["uscc"].duplicated().any():
        raise ValueError(
            "企业表统一社会信用代码缺失或重复 / enterprises.uscc has missing or duplicate codes"
        )
    frame = enterprises.sort_values("uscc", kind="stable").reset_index(drop=True)
    established = day_numbers(frame["established_date"])
    status_day = day_numbers(frame["status_date"])
    status = frame["status"]
    closed = _flags(status.isin(_CLOSED_STATUSES))
    closed_before = closed & ((status_day == _NAT_DAY) | (status_day < as_of_day))
    established_before = (established != _NAT_DAY) & (established < as_of_day)
    revoked = _flags(status == "revoked")
    return EnterpriseUniverse(
        frame=frame,
        index=pd.Index(frame["uscc"], name="uscc"),
        established_day=established,
        established_before=established_before,
        existing=established_before & ~closed_before,
        revoked_before=revoked & closed_before,
    )


def _known_records(
    table: pd.DataFrame, date_column: str, universe: pd.Index, as_of_day: int
) -> _Records:
    """Rows known before as_of whose dated fact also lies before it, with owner and age."""
    known = day_numbers(table["known_date"])
    happened = day_numbers(table[date_column])
    in_time = (known != _NAT_DAY) & (known < as_of_day) & (happened != _NAT_DAY)
    rows = np.flatnonzero(in_time & (happened < as_of_day))
    owner = encode_codes(table["uscc"].iloc[rows], universe)  # encode only what is kept
    rows, owner = rows[owner >= 0], owner[owner >= 0]
    return _Records(rows, owner, as_of_day - happened[rows])


# --------------------------------------------------------------------------------------------
# Indicator groups
# --------------------------------------------------------------------------------------------


def _basic_features(
    ent: EnterpriseUniverse, as_of_day: int, large_capital_10k_cny: float
) -> dict[str, np.ndarray]:
    frame = ent.frame
    capital = _floats(frame["registered_capital"])
    employees = _floats(frame["employees"])
    sections = frame["industry_code"].str.slice(0, 1).str.upper()
    tenure = np.where(
        ent.established_before, (as_of_day - ent.established_day) / 365.25, np.nan
    )
    entity_code = encode_codes(frame["entity_type"], pd.Index(list(ENTITY_TYPE_CODES)))
    section_code = encode_codes(sections, pd.Index(list(INDUSTRY_SECTIONS)))
    return {
        "tenure_years": tenure,
        "registered_capital_log": np.log1p(capital),
        "employees": employees,
        "entity_type_code": np.where(entity_code >= 0, entity_code, np.nan),
        "industry_section_code": np.where(section_code >= 0, section_code, np.nan),
        "zero_employees_large_capital": (
            (employees == 0) & (capital >= large_capital_10k_cny)
        ).astype(np.int64),
    }


def _annual_report_features(
    ent: EnterpriseUniverse, events: pd.DataFrame, reports: _Records, as_of: pd.Timestamp
) -> dict[str, np.ndarray]:
    """Filing behaviour over the latest due years; a year is owed once the firm existed in it."""
    n = ent.n
    year = events["report_year"].iloc[reports.rows].to_numpy(dtype=np.int64, na_value=-1)
    filed_day = day_number(as_of) - reports.age
    deadline_passed = (as_of.month, as_of.day) > (ANNUAL_REPORT_DUE_MONTH, ANNUAL_REPORT_DUE_DAY)
    last_due = as_of.year - 1 if deadline_passed else as_of.year - 2
    established_year = (
        ent.established_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
        + 1970
    )
    missing = np.zeros(n, dtype=np.int64)
    late = np.zeros(n, dtype=np.int64)
    missing_last_due = np.zeros(n, dtype=np.int64)
    for due_year in range(last_due - ANNUAL_REPORT_LOOKBACK_YEARS + 1, last_due + 1):
        of_year = year == due_year
        first_filed = _group_min(reports.owner[of_year], filed_day[of_year], n)
        filed = ~np.isnan(first_filed)
        owed = ent.established_before & (established_year <= due_year)
        deadline = day_number(
            pd.Timestamp(due_year + 1, ANNUAL_REPORT_DUE_MONTH, ANNUAL_REPORT_DUE_DAY)
        )
        missing += owed & ~filed
        late += filed & (first_filed > deadline)
        if due_year == last_due:
            missing_last_due = (owed & ~filed).astype(np.int64)
    filed_last_year = _count(reports.owner[year == as_of.year - 1], n) > 0
    # Where the as-of date sits in the yearly filing cycle: right after 30 June, a missing report
    # means an abnormal listing within weeks; in spring it means much less. Without it one model
    # cannot serve every month of the year (calibration drifts with the season).
    latest_deadline = pd.Timestamp(last_due + 1, ANNUAL_REPORT_DUE_MONTH, ANNUAL_REPORT_DUE_DAY)
    days_since_deadline = np.full(n, float((as_of - latest_deadline).days))
    return {
        "annual_report_filed_last_year": filed_last_year.astype(np.int64),
        "annual_report_missing_last_due": missing_last_due,
        "annual_reports_missing_3y": missing,
        "annual_reports_late_3y": late,
        "days_since_report_deadline": days_since_deadline,
    }


def _latest_rows(owner: np.ndarray, keys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(owners, positions) of each owner's first record when sorted by `keys` (primary first)."""
    order = np.lexsort((*reversed(list(keys)), owner))
    sorted_owner = owner[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_owner[1:] != sorted_owner[:-1]
    return sorted_owner[first], order[first]


def _tax_grade_features(
    events: pd.DataFrame, grades: _Records, as_of_day: int, n: int
) -> dict[str, np.ndarray]:
    """The latest grade by occurrence (then knowledge) date; ties go to the worse grade."""
    grade = events["grade"].iloc[grades.rows]
    rank = grade.map(TAX_GRADE_RANK).to_numpy(dtype=np.float64, na_value=np.nan)
    is_m = _flags(grade == "M")
    known_age = as_of_day - day_numbers(events["known_date"].iloc[grades.rows])
    worst_first = -np.where(np.isnan(rank), -1.0, rank)
    owners, rows = _latest_rows(grades.owner, (grades.age, known_age, worst_first))
    tax_rank = np.full(n, np.nan)
    tax_rank[owners] = rank[rows]
    tax_m = np.zeros(n, dtype=np.int64)
    tax_m[owners] = is_m[rows]
    return {"tax_grade_rank": tax_rank, "tax_grade_m": tax_m}


def _dynamic_features(
    ent: EnterpriseUniverse,
    events: pd.DataFrame,
    by_kind: Mapping[str, _Records],
    windows: Sequence[int],
    as_of: pd.Timestamp,
) -> dict[str, np.ndarray]:
    n = ent.n
    changes = by_kind["registration_change"]
    item = events["item_code"].iloc[changes.rows]
    legal_rep = changes.where(_flags(item == LEGAL_REP_CHANGE_ITEM))
    address = changes.where(_flags(item == ADDRESS_CHANGE_ITEM))
    return {
        **_window_counts("registration_changes", changes.owner, changes.age, windows, n),
        **_window_counts("legal_rep_changes", legal_rep.owner, legal_rep.age, windows, n),
        **_window_counts("address_changes", address.owner, address.age, windows, n),
        "days_since_last_change": _group_min(changes.owner, changes.age, n),
        **_annual_report_features(ent, events, by_kind["annual_report"], as_of),
        **_tax_grade_features(events, by_kind["tax_grade"], day_number(as_of), n),
    }


@dataclass(frozen=True)
class _ListStatus:
    """Abnormal and serious-dishonesty list membership (entries minus removals > 0)."""

    abnormal_now: np.ndarray
    abnormal_total: np.ndarray
    serious_now: np.ndarray
    serious_total: np.ndarray


def _list_status(by_kind: Mapping[str, _Records], n: int) -> _ListStatus:
    abnormal_in = _count(by_kind["abnormal_list_in"].owner, n)
    abnormal_out = _count(by_kind["abnormal_list_out"].owner, n)
    serious_in = _count(by_kind["serious_dishonesty_in"].owner, n)
    serious_out = _count(by_kind["serious_dishonesty_out"].owner, n)
    return _ListStatus(
        abnormal_now=(abnormal_in - abnormal_out > 0).astype(np.int64),
        abnormal_total=abnormal_in,
        serious_now=(serious_in - serious_out > 0).astype(np.int64),
        serious_total=serious_in,
    )


def _inspection_features(
    inspections: pd.DataFrame,
    checks: _Records,
    exempt_codes: frozenset[str],
    windows: Sequence[int],
    n: int,
) -> dict[str, np.ndarray]:
    """Problems (non-exempt, `unreachable` included) and exempt minor lapses, kept apart."""
    outcome = inspections["outcome"].iloc[checks.rows]
    found = _flags(outcome != "no_problem") & _flags(outcome.isin(list(INSPECTION_OUTCOMES)))
    exempt_code = _flags(inspections["violation_code"].iloc[checks.rows].isin(list(exempt_codes)))
    problem = found & ~exempt_code
    lapse = found & exempt_code
    problems = checks.where(problem)
    lapses = checks.where(lapse)
    owners, rows = _latest_rows(checks.owner, (checks.age, (~problem).astype(np.int64)))
    last_problem = np.full(n, np.nan)
    last_problem[owners] = problem[rows]
    return {
        **_window_counts("inspections", checks.owner, checks.age, windows, n),
        **_window_counts("inspection_problems", problems.owner, problems.age, windows, n),
        **_window_counts("exempt_lapses", lapses.owner, lapses.age, windows, n),
        "last_inspection_problem": last_problem,
        "days_since_last_problem": _group_min(problems.owner, problems.age, n),
        "days_since_last_inspection": _group_min(checks.owner, checks.age, n),
    }


def _supervision_features(
    events: pd.DataFrame,
    by_kind: Mapping[str, _Records],
    lists: _ListStatus,
    inspection_part: dict[str, np.ndarray],
    windows: Sequence[int],
    n: int,
) -> dict[str, np.ndarray]:
    penalties = by_kind["penalty"]
    amounts = np.nan_to_num(_floats(events["amount"].iloc[penalties.rows]), nan=0.0)
    fines = np.bincount(penalties.owner, weights=amounts, minlength=n)
    leads = by_kind["case_lead"]
    return {
        **_window_counts("penalties", penalties.owner, penalties.age, windows, n),
        "penalties_total": _count(penalties.owner, n),
        "penalty_fines_log": np.log1p(fines),
        "days_since_last_penalty": _group_min(penalties.owner, penalties.age, n),
        "abnormal_listed_now": lists.abnormal_now,
        "abnormal_listings_total": lists.abnormal_total,
        "serious_dishonesty_listed_now": lists.serious_now,
        "serious_dishonesty_listings_total": lists.serious_total,
        **inspection_part,
        **_window_counts("case_leads", leads.owner, leads.age, windows, n),
    }


def _others_in_group(group: np.ndarray, values: np.ndarray, member: np.ndarray) -> np.ndarray:
    """For each enterprise, the sum of `values` over the *other* members of its group.

    `group` is -1 where the key is missing (no group); `member` marks who takes part.
    """
    in_group = (group >= 0) & member
    sizes = int(group.max()) + 1 if len(group) and group.max() >= 0 else 0
    totals = np.bincount(group[in_group], weights=values[in_group], minlength=sizes)
    out = np.zeros(len(group))
    has = group >= 0
    out[has] = totals[group[has]] - np.where(in_group[has], values[has], 0)
    return np.rint(out).astype(np.int64)


def _related_features(
    ent: EnterpriseUniverse,
    by_kind: Mapping[str, _Records],
    lists: _ListStatus,
    recent_problems: np.ndarray,
    longest: int,
) -> dict[str, np.ndarray]:
    """Same legal representative / same registered address, over enterprises known by as_of.

    Problems found at inspections of related enterprises reveal a shared risk (the same
    manager, a registration-agent address) long before penalties or listings follow them.
    """
    n = ent.n
    penalties = by_kind["penalty"]
    abnormal_in = by_kind["abnormal_list_in"]
    recent_penalties = _count(penalties.owner[penalties.age <= longest], n)
    recent_abnormal = _count(abnormal_in.owner[abnormal_in.age <= longest], n)
    member = ent.established_before
    rep, _ = pd.factorize(ent.frame["legal_rep_id"])
    address_key = ent.frame["registered_address"].str.replace(r"\s+", "", regex=True)
    address, _ = pd.factorize(address_key.mask(address_key == ""))
    existing = ent.existing.astype(np.int64)
    return {
        "legal_rep_other_enterprises": _others_in_group(rep, existing, member),
        "legal_rep_other_revoked": _others_in_group(
            rep, ent.revoked_before.astype(np.int64), member
        ),
        f"legal_rep_other_penalties_{longest}d": _others_in_group(rep, recent_penalties, member),
        f"legal_rep_other_abnormal_listings_{longest}d": _others_in_group(
            rep, recent_abnormal, member
        ),
        "legal_rep_other_serious_dishonesty_listings": _others_in_group(
            rep, lists.serious_total, member
        ),
        "legal_rep_other_on_serious_dishonesty": (
            _others_in_group(rep, lists.serious_now, member) > 0
        ).astype(np.int64),
        f"legal_rep_other_inspection_problems_{longest}d": _others_in_group(
            rep, recent_problems, member
        ),
        "address_other_enterprises": _others_in_group(address, existing, member),
        f"address_other_abnormal_listings_{longest}d": _others_in_group(
            address, recent_abnormal, member
        ),
        f"address_other_penalties_{longest}d": _others_in_group(
            address, recent_penalties, member
        ),
        f"address_other_inspection_problems_{longest}d": _others_in_group(
            address, recent_problems, member
        ),
    }


def _social_features(
    events: pd.DataFrame,
    by_kind: Mapping[str, _Records],
    windows: Sequence[int],
    n: int,
) -> dict[str, np.ndarray]:
    complaints = by_kind["complaint"]
    recent = _count(complaints.owner[complaints.age <= TREND_RECENT_DAYS], n)
    base = _count(complaints.owner[complaints.age <= TREND_BASE_DAYS], n) - recent
    trend = recent * (365.0 / TREND_RECENT_DAYS) - base * (
        365.0 / (TREND_BASE_DAYS - TREND_RECENT_DAYS)
    )
    out: dict[str, np.ndarray] = {
        **_window_counts("complaints", complaints.owner, complaints.age, windows, n),
        "complaint_trend": trend,
        # An ongoing violation draws complaints month after month: the latest one dates it
        # more finely than any window count.
        "days_since_last_complaint": _group_min(complaints.owner, complaints.age, n),
    }
    for kind, stem in (("public_opinion", "public_opinion"), ("monitoring_hit", "monitoring_hits")):
        records = by_kind[kind]
        severity = events["severity"].iloc[records.rows]
        for name in _SEVERITY_NAMES:
            of_severity = records.where(_flags(severity == name))
            out.update(
                _window_counts(f"{stem}_{name}", of_severity.owner, of_severity.age, windows, n)
            )
    return out


def _size_bands(
    frame: pd.DataFrame,
    employee_limits: Sequence[float],
    capital_limits: Sequence[float],
) -> pd.Series:
    """Size band by employees when known, else by registered capital."""
    employees = _floats(frame["employees"])
    capital = _floats(frame["registered_capital"])
    names = np.array(list(SIZE_BANDS), dtype=object)
    by_employees = np.searchsorted(np.asarray(employee_limits, float), employees, side="right")
    by_capital = np.searchsorted(np.asarray(capital_limits, float), capital, side="right")
    band = np.where(np.isnan(employees), by_capital, by_employees)
    labels = names[np.minimum(band, len(names) - 1)]
    unknown = np.isnan(employees) & np.isnan(capital)
    labels[unknown] = None
    return pd.Series(labels, dtype="string")


def _audit_columns(
    ent: EnterpriseUniverse,
    lists: _ListStatus,
    as_of: pd.Timestamp,
    newly_established_months: int,
    size_band_employees: Sequence[float],
    size_band_capital_10k_cny: Sequence[float],
) -> dict[str, pd.Series | np.ndarray]:
    frame = ent.frame
    newly_since = day_number(as_of - pd.DateOffset(months=newly_established_months))
    return {
        "ownership_type": frame["ownership_type"].astype("string"),
        "entity_type": frame["entity_type"].astype("string"),
        "street": frame["street"].astype("string"),
        "industry_section": frame["industry_code"].astype("string").str.slice(0, 1).str.upper(),
        "size_band": _size_bands(frame, size_band_employees, size_band_capital_10k_cny),
        "on_serious_dishonesty_list": lists.serious_now.astype(bool),
        "newly_established": ent.established_before & (ent.established_day >= newly_since),
        "on_abnormal_list": lists.abnormal_now.astype(bool),
    }


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

ENTERPRISE_FEATURES: dict[str, FeatureInfo] = enterprise_feature_catalogue(DEFAULT_WINDOWS_DAYS)


def existing_enterprises(
    snapshot: Mapping[str, pd.DataFrame], as_of: date | pd.Timestamp | str
) -> pd.Index:
    """Sorted codes of the enterprises that exist on `as_of` (labels use the same rule)."""
    as_of_day = day_number(as_of_timestamp(as_of))
    ent = enterprise_universe(snapshot_table(snapshot, "enterprises"), as_of_day)
    return ent.index[ent.existing]


def build_enterprise_features(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: date | pd.Timestamp | str,
    *,
    exempt_codes: frozenset[str],
    windows_days: Sequence[int] = DEFAULT_WINDOWS_DAYS,
    newly_established_months: int = DEFAULT_NEWLY_ESTABLISHED_MONTHS,
    large_capital_10k_cny: float = DEFAULT_LARGE_CAPITAL_10K_CNY,
    size_band_employees: Sequence[float] = DEFAULT_SIZE_BAND_EMPLOYEES,
    size_band_capital_10k_cny: Sequence[float] = DEFAULT_SIZE_BAND_CAPITAL_10K_CNY,
) -> pd.DataFrame:
    """One row per enterprise existing on `as_of` (index `uscc`, sorted), point in time.

    Columns follow `enterprise_feature_catalogue(windows_days)`: numeric model features (int64
    counts and flags, float64 otherwise) then the audit columns (strings and booleans).
    Policy values (exempt codes, windows, thresholds) come from the caller's policy file.
    """
    stamp = as_of_timestamp(as_of)
    as_of_day = day_number(stamp)
    windows = _checked_windows(windows_days)
    if newly_established_months <= 0:
        raise ValueError("newly_established_months 必须为正 / must be positive")
    ent = enterprise_universe(snapshot_table(snapshot, "enterprises"), as_of_day)
    events = snapshot_table(snapshot, "enterprise_events")
    inspections = snapshot_table(snapshot, "inspections")
    n = ent.n

    known_events = _known_records(events, "occurred_date", ent.index, as_of_day)
    kind = encode_codes(events["event_type"].iloc[known_events.rows], _EVENT_TYPES)
    by_kind = {
        name: known_events.where(kind == position)
        for position, name in enumerate(ENTERPRISE_EVENT_TYPES)
    }
    checks = _known_records(inspections, "inspection_date", ent.index, as_of_day)
    lists = _list_status(by_kind, n)
    inspection_part = _inspection_features(inspections, checks, exempt_codes, windows, n)
    recent_problems = inspection_part[f"inspection_problems_{windows[-1]}d"]

    columns: dict[str, pd.Series | np.ndarray] = {
        **_basic_features(ent, as_of_day, large_capital_10k_cny),
        **_dynamic_features(ent, events, by_kind, windows, stamp),
        **_supervision_features(events, by_kind, lists, inspection_part, windows, n),
        **_related_features(ent, by_kind, lists, recent_problems, windows[-1]),
        **_social_features(events, by_kind, windows, n),
        **_audit_columns(
            ent, lists, stamp, newly_established_months,
            size_band_employees, size_band_capital_10k_cny,
        ),
    }
    catalogue = enterprise_feature_catalogue(windows)
    keep = np.flatnonzero(ent.existing)
    result = pd.DataFrame({name: _take(columns[name], keep) for name in catalogue})
    result.index = ent.index[keep]
    return result


def _take(column: pd.Series | np.ndarray, positions: np.ndarray) -> pd.Series | np.ndarray:
    if isinstance(column, pd.Series):
        return column.iloc[positions].reset_index(drop=True)
    return column[positions]
