"""The verifiable draw: bit-for-bit re-runs, tamper detection, inclusion probabilities."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest
from test_campaign_synthetic import default_policy, roster, spec

from supervision.campaigns import plan_campaign
from supervision.draw import (
    DrawError,
    DrawEvidence,
    commit_campaign,
    draw_campaign,
    draw_units,
    evidence_from_json,
    evidence_to_json,
    public_notice,
    seed_sha256,
    verify_draw,
)

SEED = "5d41402abc4b2a76b9719d911017c592aa1f0e1d7c2b3e5f6a7b8c9d0e1f2a3b"
COMMITTED = dt.datetime(2025, 3, 20, 9, 0, tzinfo=dt.UTC)
DRAWN = dt.datetime(2025, 3, 21, 10, 0, tzinfo=dt.UTC)


def _evidence(firms: pd.DataFrame | None = None, history: pd.DataFrame | None = None,
              entropy: str = "") -> DrawEvidence:
    firms = roster(500) if firms is None else firms
    policy = default_policy()
    commitment = commit_campaign(spec(), firms, policy, seed_sha256(SEED), COMMITTED, history)
    return draw_campaign(commitment, spec(), firms, policy, SEED, DRAWN, public_entropy=entropy)


def test_rerun_from_published_evidence_matches_bit_for_bit() -> None:
    first = _evidence()
    again = _evidence()
    assert evidence_to_json(first) == evidence_to_json(again)
    restored = evidence_from_json(evidence_to_json(first))
    assert evidence_to_json(restored) == evidence_to_json(first)
    result = verify_draw(restored, roster(500), default_policy(),
                         published_digest=first.commitment.digest())
    assert result.match, result.summary()
    assert len(first.drawn) > 0


def test_draw_follows_the_documented_algorithm_independently_reimplemented() -> None:
    """Anyone with hashlib and the frame can recompute the list: sha256(seed|entropy|id|uscc)."""
    firms = roster(500)
    evidence = _evidence(firms, entropy="福利彩票 2025035 期")
    frame = plan_campaign(spec(), firms, default_policy())
    expected = []
    for stratum, group in frame.units.groupby("stratum"):
        n = frame.sample_sizes[str(stratum)]
        keyed = sorted(
            (hashlib.sha256(f"{SEED}|福利彩票 2025035 期|{spec().campaign_id}|{u}".encode())
             .hexdigest(), u) for u in group["uscc"])
        expected += [(u, n / len(group)) for _, u in keyed[:n]]
    assert sorted(expected) == [(r.uscc, r.inclusion_probability) for r in evidence.drawn]


def test_roster_row_order_and_extra_columns_do_not_change_the_draw() -> None:
    firms = roster(500)
    shuffled = firms.sample(frac=1.0, random_state=7).assign(notes="internal")
    evidence = _evidence(firms)
    assert verify_draw(evidence, shuffled, default_policy()).match


def test_changed_roster_is_detected() -> None:
    evidence = _evidence()
    tampered = roster(500)
    first = tampered.index[0]
    tampered.loc[first, "class"] = "D" if tampered.loc[first, "class"] != "D" else "A"
    result = verify_draw(evidence, tampered, default_policy())
    assert not result.match
    assert "roster_hash" in result.failed
    dropped = roster(500).drop(index=roster(500).index[10])
    assert "roster_hash" in verify_draw(evidence, dropped, default_policy()).failed


def test_changed_seed_is_detected() -> None:
    evidence = _evidence()
    forged = evidence.model_copy(update={"seed": SEED[:-1] + "0"})
    result = verify_draw(forged, roster(500), default_policy())
    assert not result.match
    assert "seed_hash" in result.failed
    assert "drawn_list" in result.failed  # another seed draws another list


def test_changed_policy_is_detected() -> None:
    evidence = _evidence()
    ratios = dict(default_policy().ratio_sets)
    ratios["default"] = {**ratios["default"], "C": 0.35}
    result = verify_draw(evidence, roster(500), default_policy(ratio_sets=ratios))
    assert not result.match
    assert "policy_hash" in result.failed
    assert "strata" in result.failed


def test_edited_drawn_list_is_detected() -> None:
    evidence = _evidence()
    forged = evidence.model_copy(update={"drawn": evidence.drawn[1:]})
    result = verify_draw(forged, roster(500), default_policy())
    assert result.failed == ["drawn_list"]
    assert evidence.drawn[0].uscc in result.summary()


def test_swapped_commitment_is_detected_against_the_published_digest() -> None:
    evidence = _evidence()
    other = evidence.commitment.model_copy(update={"committed_at": DRAWN})
    forged = evidence.model_copy(update={"commitment": other})
    result = verify_draw(forged, roster(500), default_policy(),
                         published_digest=evidence.commitment.digest())
    assert result.failed == ["commitment_digest"]


def test_draw_refuses_a_seed_or_roster_other_than_committed() -> None:
    firms = roster(500)
    policy = default_policy()
    commitment = commit_campaign(spec(), firms, policy, seed_sha256(SEED), COMMITTED)
    with pytest.raises(DrawError, match="seed"):
        draw_campaign(commitment, spec(), firms, policy, "another seed", DRAWN)
    changed = firms.assign(street="赤岗街道")
    with pytest.raises(DrawError, match="roster"):
        draw_campaign(commitment, spec(), changed, policy, SEED, DRAWN)
    with pytest.raises(DrawError, match="before"):
        draw_campaign(commitment, spec(), firms, policy, SEED, COMMITTED - dt.timedelta(days=1))


def test_exclusions_are_committed_and_checked_against_history() -> None:
    firms = roster(500)
    history = pd.DataFrame({"uscc": list(firms.index[:3]), "inspection_date": "2025-01-15",
                            "source": "random_draw", "check_items": "annual_report"})
    evidence = _evidence(firms, history=history)
    assert evidence.commitment.excluded == sorted(firms.index[:3])
    assert not {r.uscc for r in evidence.drawn} & set(firms.index[:3])
    assert verify_draw(evidence, firms, default_policy(), history=history).match
    shorter = history.iloc[:2]
    assert verify_draw(evidence, firms, default_policy(), history=shorter).failed == ["excluded"]


def test_each_drawn_firm_records_its_exact_inclusion_probability() -> None:
    evidence = _evidence()
    by_stratum = {s.stratum: s for s in evidence.strata}
    for record in evidence.drawn:
        stratum = by_stratum[record.stratum]
        assert record.inclusion_probability == stratum.sample / stratum.population
    assert sum(s.sample for s in evidence.strata) == len(evidence.drawn)


def test_inclusion_frequencies_over_many_seeds_match_the_recorded_probabilities() -> None:
    units = pd.DataFrame({"uscc": [f"U{i:03d}" for i in range(60)],
                          "stratum": ["A"] * 40 + ["D"] * 20})
    sizes = {"A": 4, "D": 10}
    counts = pd.Series(0, index=units["uscc"])
    for s in range(300):
        drawn = draw_units(units, sizes, f"seed-{s}", "freq")
        counts[drawn["uscc"]] += 1
    frequency = counts / 300
    assert np.allclose(frequency.iloc[:40], 0.1, atol=0.06)
    assert np.allclose(frequency.iloc[40:], 0.5, atol=0.1)


def test_public_notice_reveals_no_class_data() -> None:
    notice = public_notice(_evidence())
    text = str(notice)
    assert "inclusion_probability" not in text and "stratum" not in text
    assert "'class'" not in text
    assert notice["seed"] == SEED
    assert notice["drawn_uscc"] == sorted(notice["drawn_uscc"])  # type: ignore[type-var]
