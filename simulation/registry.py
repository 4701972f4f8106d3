"""The register of market entities: who exists, what they do, who runs them, where they sit.

Static attributes are drawn once for the whole district (vectorised) because related-party
structure crosses chunk boundaries: a legal representative's firms or a cluster address's
firms may sit anywhere in the register, and they share a latent risk component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import ENTITY_TYPES, OWNERSHIP_TYPES
from simulation.columns import (
    Timeline,
    bytes_matrix_to_text,
    concat_text,
    fixed_width_codes,
    take_text,
    uscc_codes,
)
from simulation.parameters import RegistryParameters, RiskParameters
from simulation.vocabulary import (
    DIGITAL_HOST_INDUSTRIES,
    DIGITAL_INDUSTRIES,
    DIGITAL_SCOPE_KEYWORDS,
    ENTITY_SUFFIX,
    GIVEN_NAME_CHARS,
    INDUSTRIES,
    STREET_WEIGHTS,
    STREETS,
    SURNAMES,
    TRADE_NAME_CHARS,
    Industry,
)

ALL_INDUSTRIES: tuple[Industry, ...] = INDUSTRIES + DIGITAL_INDUSTRIES
INDUSTRY_INDEX = {ind.code: i for i, ind in enumerate(ALL_INDUSTRIES)}
ENTITY_TYPE_LIST = list(ENTITY_TYPES)
OWNERSHIP_LIST = list(OWNERSHIP_TYPES)
INDIVIDUAL = ENTITY_TYPE_LIST.index("individual_business")
COOPERATIVE = ENTITY_TYPE_LIST.index("cooperative")
BRANCH = ENTITY_TYPE_LIST.index("branch")
OTHER_ENTITY_TYPES = np.array(
    [ENTITY_TYPE_LIST.index(t) for t in ("limited_company", "joint_stock", "partnership",
                                         "sole_proprietorship", "branch", "cooperative")]
)
USCC_PREFIXES = ("91440105", "92440105", "93440105")  # enterprise, individual, cooperative
DIGITAL_TAG_LIST = list(DIGITAL_SCOPE_KEYWORDS)
STREET_LIST = list(STREETS)
SERIAL_MULTIPLIER = 7_368_787  # coprime with 31, spreads serials over the code space
SERIAL_OFFSET = 1_234_567_890

INDUSTRY_SECTION = np.array([ind.code[0] for ind in ALL_INDUSTRIES])
INDUSTRY_RISK = np.array([ind.risk_effect for ind in ALL_INDUSTRIES])
INDUSTRY_TYPE_RISK = np.array([ind.risky_type_effect for ind in ALL_INDUSTRIES])
INDUSTRY_CONSUMER = np.array([ind.consumer_facing for ind in ALL_INDUSTRIES])


@dataclass
class Registry:
    """Static attributes of every firm, index-aligned numpy arrays (one row per firm)."""

    industry: np.ndarray
    entity_type: np.ndarray
    ownership: np.ndarray
    capital: np.ndarray
    employees: np.ndarray
    employees_missing: np.ndarray
    shell: np.ndarray
    established: np.ndarray
    street: np.ndarray
    road: np.ndarray
    house_number: np.ndarray
    address_cluster: np.ndarray
    legal_rep: np.ndarray
    digital: np.ndarray
    digital_tag: np.ndarray
    scope_keyword: np.ndarray
    manual_tag_day: np.ndarray
    related_effect: np.ndarray
    risky_type_logit: np.ndarray
    static_logit: np.ndarray
    trade_name: np.ndarray
    cluster_addresses: list[str]

    @property
    def size(self) -> int:
        return len(self.industry)

    @property
    def section(self) -> np.ndarray:
        return INDUSTRY_SECTION[self.industry]

    @property
    def consumer_facing(self) -> np.ndarray:
        return INDUSTRY_CONSUMER[self.industry]


def _group_sizes(rng: np.random.Generator, members: int, minimum: int, p: float) -> np.ndarray:
    """Group sizes (each >= minimum) summing exactly to `members`."""
    if members == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = minimum + rng.geometric(p, size=members // minimum + 1) - 1
    cut = int(np.searchsorted(np.cumsum(sizes), members))
    sizes = sizes[: cut + 1].copy()
    sizes[-1] -= int(sizes.sum()) - members
    if sizes[-1] < 1:
        sizes = sizes[:-1]
        sizes[-1] += members - int(sizes.sum())
    return sizes


def _assign_groups(rng: np.random.Generator, n: int, share: float, minimum: int, p: float,
                   eligible: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Group id per firm: singletons get their own id, a `share` of firms (drawn from the
    `eligible` ones) share ids in groups of at least `minimum`."""
    allowed = np.ones(n, dtype=bool) if eligible is None else eligible
    order = np.concatenate([rng.permutation(np.flatnonzero(allowed)),
                            rng.permutation(np.flatnonzero(~allowed))])
    grouped = min(round(n * share), int(allowed.sum()))
    sizes = _group_sizes(rng, grouped, minimum, p)
    group_of = np.empty(n, dtype=np.int64)
    group_of[order[:grouped]] = np.repeat(np.arange(len(sizes)), sizes)
    group_of[order[grouped:]] = len(sizes) + np.arange(n - grouped)
    return group_of, len(sizes)


def build_registry(n: int, timeline: Timeline, digital_share: float, risk: RiskParameters,
                   params: RegistryParameters, rng: np.random.Generator) -> Registry:
    """Draw the static attributes of `n` firms."""
    digital = rng.random(n) < digital_share
    weights = np.array([ind.weight for ind in INDUSTRIES])
    industry = rng.choice(len(INDUSTRIES), size=n, p=weights / weights.sum())
    kind = rng.random(n)
    in_digital_code = digital & (kind < params.digital_in_digital_industry)
    digital_weights = np.array([ind.weight for ind in DIGITAL_INDUSTRIES])
    industry[in_digital_code] = len(INDUSTRIES) + rng.choice(
        len(DIGITAL_INDUSTRIES), size=int(in_digital_code.sum()),
        p=digital_weights / digital_weights.sum())
    hosted = digital & ~in_digital_code
    host_codes = np.array([INDUSTRY_INDEX[c] for c in DIGITAL_HOST_INDUSTRIES])
    industry[hosted] = host_codes[rng.integers(0, len(host_codes), int(hosted.sum()))]
    scope_keyword = in_digital_code | (
        hosted & (kind < params.digital_in_digital_industry + params.digital_keyword_only))
    tag_of_industry = np.array(
        [DIGITAL_TAG_LIST.index(ind.digital_tag) if ind.digital_tag else -1
         for ind in ALL_INDUSTRIES])
    digital_tag = np.where(digital, tag_of_industry[industry], -1)
    random_tag = rng.integers(0, len(DIGITAL_TAG_LIST), n)
    digital_tag = np.where(digital & (digital_tag < 0), random_tag, digital_tag)

    individual_share = np.array([ind.individual_share for ind in ALL_INDUSTRIES])[industry]
    entity_type = OTHER_ENTITY_TYPES[
        rng.choice(len(OTHER_ENTITY_TYPES), size=n, p=np.array(params.other_entity_shares))]
    entity_type = np.where(rng.random(n) < individual_share, INDIVIDUAL, entity_type)
    # Ownership is drawn independently of everything else: any ownership disparity in a
    # model's classes is then the model's doing, never the world's.
    ownership = rng.choice(len(OWNERSHIP_LIST), size=n, p=np.array(params.ownership_shares))

    start = timeline.start_day
    new_firm = rng.random(n) < params.new_firm_share
    age_days = np.minimum(rng.exponential(params.mean_age_years * 365.25, n),
                          params.max_age_years * 365.25)
    established = np.where(
        new_firm,
        rng.integers(start, timeline.end_day - 30, n),
        start - 1 - age_days.astype(np.int64),
    )

    company_like = (entity_type != INDIVIDUAL) & (entity_type != BRANCH)
    shell = company_like & (rng.random(n) < params.shell_share) & ~digital
    employees = np.where(
        entity_type == INDIVIDUAL,
        1 + rng.poisson(1.5, n),
        np.round(np.exp(rng.normal(np.log(6.0), 1.2, n))).astype(np.int64),
    )
    employees = np.where(shell, 0, np.minimum(employees, 1_000_000))
    employees_missing = (established > timeline.end_day - 365) & (rng.random(n) < 0.7)
    capital = np.where(
        entity_type == INDIVIDUAL,
        np.exp(rng.normal(np.log(3.0), 1.0, n)),
        np.exp(rng.normal(np.log(100.0), 1.5, n)),
    )
    capital = np.where(entity_type == BRANCH, 0.0, capital)
    capital = np.where(shell, 10_000.0 * np.exp(rng.exponential(1.0, n)), capital)
    capital = np.round(np.minimum(capital, 1e9), 2)

    street = rng.choice(len(STREET_LIST), size=n, p=np.array(STREET_WEIGHTS) / sum(STREET_WEIGHTS))
    road = rng.integers(0, 3, n)
    house_number = rng.integers(1, 1200, n)

    # 一址多照: business-secretary addresses host office-only companies, never shops.
    office_only = company_like & ~INDUSTRY_CONSUMER[industry]
    address_cluster, n_clusters = _assign_groups(
        rng, n, params.cluster_address_share, params.cluster_min_size,
        1.0 / (1.0 + params.cluster_mean_extra_size), eligible=office_only)
    address_cluster = np.where(address_cluster < n_clusters, address_cluster, -1)
    cluster_street = rng.choice(len(STREET_LIST), size=max(n_clusters, 1))
    street = np.where(address_cluster >= 0, cluster_street[np.maximum(address_cluster, 0)], street)
    cluster_addresses = [
        f"广州市海珠区{STREETS[STREET_LIST[cluster_street[c]]][c % 3]}{100 + (c * 37) % 900}号"
        f"{(c % 20) + 2}楼{(c * 7) % 40 + 1:02d}房（仅限办公）"
        for c in range(n_clusters)
    ]

    legal_rep, _ = _assign_groups(rng, n, params.shared_rep_share, 2, params.shared_rep_group_p)
    n_reps = int(legal_rep.max()) + 1
    rep_effect = rng.normal(0.0, risk.legal_rep_sd, n_reps)
    cluster_effect = rng.normal(risk.address_cluster_mean, risk.address_cluster_sd,
                                max(n_clusters, 1))
    related = rep_effect[legal_rep] + np.where(
        address_cluster >= 0, cluster_effect[np.maximum(address_cluster, 0)], 0.0)

    risky_type_logit = (risk.risky_type_intercept + INDUSTRY_TYPE_RISK[industry]
                        + risk.related_to_type * related
                        + np.where(shell, risk.shell_effect, 0.0))
    static_logit = (risk.intercept + INDUSTRY_RISK[industry] + related
                    + risk.size_effect_per_log10_employees * np.log10(1.0 + employees)
                    + np.where(shell, risk.shell_effect, 0.0)
                    + np.where(digital, risk.digital_effect, 0.0))

    tagged = digital & ((rng.random(n) < params.manual_tag_share) | ~scope_keyword)
    manual_tag_day = np.where(
        tagged, np.maximum(established, start) + rng.integers(30, 400, n), -1)
    manual_tag_day = np.where(manual_tag_day > timeline.end_day, -1, manual_tag_day)

    trade_name = rng.integers(0, len(TRADE_NAME_CHARS), size=(n, 2))
    return Registry(
        industry=industry.astype(np.int16), entity_type=entity_type.astype(np.int8),
        ownership=ownership.astype(np.int8), capital=capital, employees=employees,
        employees_missing=employees_missing, shell=shell, established=established.astype(np.int64),
        street=street.astype(np.int8), road=road.astype(np.int8), house_number=house_number,
        address_cluster=address_cluster, legal_rep=legal_rep, digital=digital,
        digital_tag=digital_tag.astype(np.int8), scope_keyword=scope_keyword,
        manual_tag_day=manual_tag_day, related_effect=related.astype(np.float32),
        risky_type_logit=risky_type_logit.astype(np.float32),
        static_logit=static_logit.astype(np.float32), trade_name=trade_name,
        cluster_addresses=cluster_addresses,
    )


def serial_numbers(n: int) -> np.ndarray:
    """Unique, scattered organisation serials (an affine bijection modulo 31**9)."""
    return (SERIAL_OFFSET + SERIAL_MULTIPLIER * np.arange(n, dtype=np.int64)) % (31**9)


def uscc_column(registry: Registry) -> pa.Array:
    prefix = np.where(registry.entity_type == INDIVIDUAL, 1,
                      np.where(registry.entity_type == COOPERATIVE, 2, 0))
    return uscc_codes(prefix, USCC_PREFIXES, serial_numbers(registry.size))


def _chars(alphabet: str, codes: np.ndarray) -> pa.Array:
    return take_text(list(alphabet), codes)


def name_column(registry: Registry) -> pa.Array:
    """Registered names, e.g. 广州市海珠区鸿达餐饮有限公司 or 海珠区瑞祥果蔬店."""
    prefix = np.where(registry.entity_type == INDIVIDUAL, 1,
                      np.where(registry.entity_type == BRANCH, 2, 0))
    prefixes = take_text(["广州市海珠区", "海珠区", "广州"], prefix)
    suffixes = take_text([ENTITY_SUFFIX[t] for t in ENTITY_TYPE_LIST], registry.entity_type)
    shorts = take_text([ind.short for ind in ALL_INDUSTRIES], registry.industry)
    return concat_text(prefixes, _chars(TRADE_NAME_CHARS, registry.trade_name[:, 0]),
                       _chars(TRADE_NAME_CHARS, registry.trade_name[:, 1]), shorts, suffixes)


def address_column(registry: Registry) -> pa.Array:
    roads = [road for street in STREET_LIST for road in STREETS[street]]
    road_code = registry.street.astype(np.int64) * 3 + registry.road
    plain = concat_text("广州市海珠区", take_text(roads, road_code),
                        pa.array(registry.house_number).cast(pa.string()), "号")
    clustered = take_text(registry.cluster_addresses or [""],
                          np.maximum(registry.address_cluster, 0))
    return pc.if_else(pa.array(registry.address_cluster >= 0), clustered, plain)


def legal_rep_columns(registry: Registry) -> tuple[pa.Array, pa.Array]:
    """Pseudonymous legal-representative ids and names (same person, same id and name)."""
    rep = registry.legal_rep
    scrambled = (rep * 2_654_435_761 + 97) % (36**10)
    ids = concat_text("LR", bytes_matrix_to_text(
        fixed_width_codes(scrambled, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)))
    surname = (rep * 31 + 7) % len(SURNAMES)
    given1 = (rep * 17 + 3) % len(GIVEN_NAME_CHARS)
    given2 = np.where(rep % 3 == 0, -1, (rep * 13 + 11) % len(GIVEN_NAME_CHARS))
    names = concat_text(_chars(SURNAMES, surname), _chars(GIVEN_NAME_CHARS, given1),
                        pc.fill_null(_chars(GIVEN_NAME_CHARS, given2), ""))
    return ids, names


def scope_column(registry: Registry) -> pa.Array:
    scopes = take_text([ind.scope for ind in ALL_INDUSTRIES], registry.industry)
    keyword_code = np.where(
        registry.scope_keyword & (registry.industry < len(INDUSTRIES)), registry.digital_tag, -1)
    keywords = take_text([DIGITAL_SCOPE_KEYWORDS[t] for t in DIGITAL_TAG_LIST], keyword_code)
    return pc.binary_join_element_wise(scopes, keywords, "；", null_handling="skip")
