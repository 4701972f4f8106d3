"""Policy files: the default loads, every broken rule is named clearly, the hash is stable."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from features.enterprise_features import HARD_RULE_FLAGS, build_enterprise_features
from supervision.policy import (
    Policy,
    PolicyError,
    cutoffs_from_target_shares,
    default_policy_text,
    load_policy,
    parse_policy,
)


def default_data() -> dict[str, Any]:
    return yaml.safe_load(default_policy_text())


def write(tmp_path: Path, data: Any, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def error_for(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> str:
    data = default_data()
    mutate(data)
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, data))
    return str(info.value)


def classes(data: dict[str, Any]) -> dict[str, Any]:
    return data["enterprise"]["classes"]


# --- the default --------------------------------------------------------------------------


def test_default_policy_loads() -> None:
    policy = load_policy()
    assert policy.version == "haizhu-2022.3"
    assert len(policy.content_hash) == 64
    assert policy.exempt_codes == frozenset(f"GZMJ-{i:03d}" for i in range(1, 13))
    assert not any(code.startswith("WF-") for code in policy.exempt_codes)
    assert [c.code for c in policy.enterprise.classes.labels] == ["A", "B", "C", "D"]
    assert policy.enterprise.classes.target_shares == {"A": 0.50, "B": 0.264, "C": 0.201,
                                                       "D": 0.035}
    assert policy.enterprise.feature_windows_days == [90, 365, 1095]
    assert {r.condition for r in policy.enterprise.classes.hard_rules} <= set(HARD_RULE_FLAGS)
    assert policy.evaluation.inspection_capacities == [0.05, 0.10, 0.20]
    assert policy.evaluation.fairness.reference_groups["ownership_type"] == "private"
    for item in policy.exemptions:
        assert item.name_zh and item.name_en and item.legal_basis and item.situation


def test_default_policy_drives_the_feature_and_label_builders() -> None:
    policy = load_policy()
    kwargs = policy.enterprise_feature_kwargs()
    frame = build_enterprise_features({}, "2023-01-01", **kwargs)
    assert list(frame.columns) == list(policy.feature_catalogue())
    for item in policy.scorecard.items:
        assert item.feature in frame.columns
    assert policy.enterprise_label_kwargs() == {
        "window_months": 12, "exempt_codes": policy.exempt_codes, "grace_days": 60,
        "label_events": (), "excluded_event_items": {},
    }


def test_a_file_with_the_same_content_has_the_same_hash(tmp_path: Path) -> None:
    packaged = load_policy()
    data = default_data()
    reordered = dict(reversed(list(data.items())))  # other key order, no comments, other style
    copy_ = load_policy(write(tmp_path, reordered))
    assert copy_.content_hash == packaged.content_hash == load_policy().content_hash
    assert copy_.source.endswith("policy.yaml") and "default.yaml" in packaged.source


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.__setitem__("version", "haizhu-2099.9"),
        lambda d: classes(d).__setitem__("cutoffs", [0.08, 0.21, 0.45]),
        lambda d: d["exemptions"].pop(),
        lambda d: d["scorecard"]["items"][0].__setitem__("cap", 80),
    ],
)
def test_any_change_of_content_changes_the_hash(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None]
) -> None:
    data = default_data()
    mutate(data)
    assert load_policy(write(tmp_path, data)).content_hash != load_policy().content_hash


# --- broken files ---------------------------------------------------------------------------


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("cutoffs decreasing", lambda d: classes(d).__setitem__("cutoffs", [0.3, 0.2, 0.5]),
     "enterprise.classes.cutoffs 必须严格递增", "must be strictly increasing"),
    ("cutoff of 1", lambda d: classes(d).__setitem__("cutoffs", [0.1, 0.2, 1.0]),
     "enterprise.classes.cutoffs[2]", "strictly between 0 and 1"),
    ("two cutoffs", lambda d: classes(d).__setitem__("cutoffs", [0.1, 0.2]),
     "enterprise.classes.cutoffs", "exactly 3 cut-offs"),
    ("shares off", lambda d: classes(d)["target_shares"].__setitem__("A", 0.6),
     "enterprise.classes.target_shares", "must sum to 1"),
    ("share missing", lambda d: classes(d)["target_shares"].pop("D"),
     "enterprise.classes.target_shares", "exactly the classes A, B, C, D"),
    ("classes swapped", lambda d: classes(d)["labels"].reverse(),
     "enterprise.classes.labels", "exactly the classes A, B, C, D in this order"),
    ("no cutoffs nor shares", lambda d: classes(d).update(cutoffs=None, target_shares=None),
     "enterprise.classes.cutoffs", "at least one"),
    ("hysteresis too wide", lambda d: classes(d).__setitem__("hysteresis_margin", 0.09),
     "enterprise.classes.hysteresis_margin", "half the smallest gap"),
    ("window zero", lambda d: d["enterprise"].__setitem__("feature_windows_days", [90, 0, 365]),
     "enterprise.feature_windows_days[1]", "positive number of days"),
    ("window order", lambda d: d["enterprise"].__setitem__("feature_windows_days", [365, 90]),
     "enterprise.feature_windows_days", "strictly increasing"),
    ("label window", lambda d: d["enterprise"].__setitem__("label_window_months", 0),
     "enterprise.label_window_months", "greater than 0"),
    ("duplicate code", lambda d: d["exemptions"][1].__setitem__("code", "GZMJ-001"),
     "exemptions[1].code", "duplicate exemption code 'GZMJ-001'"),
    ("unknown root key", lambda d: d.__setitem__("sampling_ratio", 0.1),
     "sampling_ratio", "unknown field"),
    ("typo in key", lambda d: classes(d).__setitem__("cutof", [0.1, 0.2, 0.3]),
     "enterprise.classes.cutof", "unknown field"),
    ("unknown condition", lambda d: classes(d)["hard_rules"][0].__setitem__("condition", "rich"),
     "enterprise.classes.hard_rules[0].condition", "must be one of the conditions"),
    ("unknown effect", lambda d: classes(d)["hard_rules"][0].__setitem__("effect", "lower"),
     "enterprise.classes.hard_rules[0].effect", "must be one of"),
    ("class E", lambda d: classes(d)["hard_rules"][2].__setitem__("class", "E"),
     "enterprise.classes.hard_rules[2].class", "must be one of"),
    ("unknown feature", lambda d: d["scorecard"]["items"][0].__setitem__("feature", "penalty"),
     "scorecard.items[0].feature", "is not a feature of the catalogue"),
    ("audit feature", lambda d: d["scorecard"]["items"].append(
        {"feature": "ownership_type", "points": 5}),
     "scorecard.items[13].feature", "audit-only"),
    ("feature of other windows",
     lambda d: d["enterprise"].__setitem__("feature_windows_days", [30, 180, 730]),
     "scorecard.items[0].feature", "'penalties_365d' is not a feature"),
    ("points and levels", lambda d: d["scorecard"]["items"][0].__setitem__("levels", {1: 5}),
     "scorecard.items[0].points", "exactly one of points and levels"),
    ("version as number", lambda d: d.__setitem__("version", 2022.1),
     "version", "wrong type, expected text"),
    ("missing section", lambda d: d.pop("evaluation"), "evaluation", "required field"),
    ("fairness band", lambda d: d["evaluation"]["fairness"].__setitem__("band", [1.2, 0.8]),
     "evaluation.fairness.band", "0 < lower < 1 < upper"),
    ("reference group", lambda d: d["evaluation"]["fairness"]["reference_groups"].__setitem__(
        "ownership_type", "privat"),
     "evaluation.fairness.reference_groups.ownership_type", "not a valid value"),
    ("capacity not evaluated",
     lambda d: d["evaluation"]["promotion"].__setitem__("capacity", 0.15),
     "evaluation.promotion.capacity", "one of inspection_capacities"),
    ("capacity outside (0, 1]",
     lambda d: d["evaluation"].__setitem__("inspection_capacities", [0.05, 1.5]),
     "evaluation.inspection_capacities[1]", "(0, 1]"),
]


@pytest.mark.parametrize(("case", "mutate", "path_zh", "en"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_rule_names_file_field_and_rule(
    tmp_path: Path, case: str, mutate: Callable[[dict[str, Any]], None], path_zh: str, en: str
) -> None:
    message = error_for(tmp_path, mutate)
    assert message.startswith(f"策略文件 {tmp_path / 'policy.yaml'}:"), message
    assert path_zh in message and en in message, message
    assert " / " in message and any("\u4e00" <= ch <= "\u9fff" for ch in message)
    assert "pydantic" not in message and "validation error" not in message.lower()


def test_every_problem_is_listed(tmp_path: Path) -> None:
    def two_mistakes(d: dict[str, Any]) -> None:
        classes(d)["cutoffs"] = [0.5, 0.2, 0.3]
        d["evaluation"]["calibration_bins"] = 1

    lines = error_for(tmp_path, two_mistakes).splitlines()
    assert len(lines) == 2
    assert any("enterprise.classes.cutoffs" in line for line in lines)
    assert any("evaluation.calibration_bins" in line and "at least 2" in line for line in lines)


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.yaml: YAML 格式错误.*malformed YAML at line"):
        load_policy(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="top level must be a mapping"):
        load_policy(listed)


def test_duplicate_keys_are_refused_not_silently_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(default_policy_text() + "\nversion: other\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="duplicate key 'version'"):
        load_policy(path)


# --- helpers --------------------------------------------------------------------------------


def test_cutoffs_from_target_shares_reproduce_the_mix() -> None:
    scores = np.random.default_rng(3).beta(1, 6, 20_000)
    policy = load_policy()
    shares = policy.enterprise.classes.target_shares
    assert shares is not None
    cutoffs = cutoffs_from_target_shares(scores, shares)
    counts = np.bincount(np.searchsorted(cutoffs, scores, side="right"), minlength=4)
    assert counts / len(scores) == pytest.approx([0.50, 0.264, 0.201, 0.035], abs=0.002)
    updated = policy.with_cutoffs(cutoffs)
    assert updated.enterprise.classes.cutoffs == cutoffs
    assert updated.content_hash != policy.content_hash
    with pytest.raises(ValueError, match="too concentrated"):
        cutoffs_from_target_shares(np.full(100, 0.1), shares)


def test_with_cutoffs_revalidates() -> None:
    with pytest.raises(PolicyError, match="strictly increasing"):
        load_policy().with_cutoffs([0.5, 0.4, 0.6])


def test_promotion_gate_respects_the_metric_direction() -> None:
    promotion = load_policy().evaluation.promotion
    assert promotion.beats(challenger=0.30, champion=0.285)
    assert not promotion.beats(challenger=0.29, champion=0.285)
    data = default_data()
    data["evaluation"]["promotion"] = {"metric": "brier", "min_improvement": 0.002}
    brier = parse_policy(data).evaluation.promotion
    assert brier.beats(challenger=0.080, champion=0.083)
    assert not brier.beats(challenger=0.083, champion=0.080)


def test_policy_is_immutable() -> None:
    policy = load_policy()
    with pytest.raises(ValueError, match="frozen"):
        policy.version = "x"
    data = copy.deepcopy(default_data())
    assert isinstance(parse_policy(data), Policy)
