"""Digital-economy tags (标签化管理): which firms are under trigger-based supervision, and why.

A firm is tagged by policy rules (industry-code prefix or business-scope keyword) and by hand
(the `digital_tags` table). Every tag row keeps its provenance — the rule or the manual source —
and the date since when it holds, so a regulator can answer "why is this firm a platform?".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from supervision.trigger_policy import DigitalPolicy, TagRule

TAG_COLUMNS: tuple[str, ...] = ("uscc", "tag", "source", "rule", "since")


def _as_timestamp(as_of: object) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of)  # type: ignore[arg-type]
    if stamp is pd.NaT:
        raise ValueError("as_of 不能为空 / as_of must be a date")
    return stamp.normalize()


def existing_firms(enterprises: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Firms established before `as_of` and not revoked or deregistered before it."""
    established = enterprises["established_date"] < as_of
    closed_before = (enterprises["status"] != "active").fillna(False) & (
        enterprises["status_date"] < as_of
    ).fillna(False)
    return enterprises.loc[established.fillna(False) & ~closed_before]


def _rule_matches(firms: pd.DataFrame, rule: TagRule) -> pd.Series:
    """Boolean mask: industry code starts with a prefix OR business scope holds a keyword."""
    matched = pd.Series(False, index=firms.index)
    if rule.industry_prefixes:
        codes = firms["industry_code"].astype("string").fillna("")
        matched |= codes.str.startswith(tuple(rule.industry_prefixes)).astype(bool)
    if rule.scope_keywords and "business_scope" in firms.columns:
        pattern = "|".join(re.escape(k) for k in rule.scope_keywords)
        scope = firms["business_scope"].astype("string").fillna("")
        matched |= scope.str.contains(pattern, regex=True).astype(bool)
    return matched


def _closing_dates(firms: pd.DataFrame) -> pd.Series:
    """Revocation or deregistration date per firm row; NaT while active."""
    closed = (firms["status"] != "active").fillna(False)
    return firms["status_date"].where(closed)


def _rule_tags(firms: pd.DataFrame, rules: Sequence[TagRule]) -> pd.DataFrame:
    # The registration record is the current one, so a rule has matched since establishment.
    parts = []
    until = _closing_dates(firms)
    for rule in rules:
        matched = _rule_matches(firms, rule)
        hits = firms.loc[matched]
        parts.append(
            pd.DataFrame(
                {
                    "uscc": hits["uscc"].to_numpy(),
                    "tag": rule.tag,
                    "source": "rule",
                    "rule": rule.name,
                    "since": hits["established_date"].to_numpy(),
                    "valid_from": hits["established_date"].to_numpy(),
                    "valid_until": until[matched].to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else _empty_history()


def _manual_tags(digital_tags: pd.DataFrame | None, firms: pd.DataFrame) -> pd.DataFrame:
    if digital_tags is None or digital_tags.empty:
        return _empty_history()
    lifetimes = pd.DataFrame(
        {
            "uscc": firms["uscc"].to_numpy(),
            "established": firms["established_date"].to_numpy(),
            "valid_until": _closing_dates(firms).to_numpy(),
        }
    ).drop_duplicates("uscc")
    joined = digital_tags.merge(lifetimes, on="uscc", how="inner")
    return pd.DataFrame(
        {
            "uscc": joined["uscc"].to_numpy(),
            "tag": joined["tag"].to_numpy(),
            "source": joined["source"].to_numpy(),
            "rule": pd.NA,
            "since": joined["tagged_date"].to_numpy(),
            "valid_from": joined[["tagged_date", "established"]].max(axis=1).to_numpy(),
            "valid_until": joined["valid_until"].to_numpy(),
        }
    )


_HISTORY_COLUMNS: tuple[str, ...] = (*TAG_COLUMNS, "valid_from", "valid_until")


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in _HISTORY_COLUMNS})


def _typed(tags: pd.DataFrame) -> pd.DataFrame:
    out = tags.astype(
        {"uscc": "string", "tag": "string", "source": "string", "rule": "string"}
    )
    for column in ("since", "valid_from", "valid_until"):
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
    return out.loc[:, list(_HISTORY_COLUMNS)]


def tag_history(
    enterprises: pd.DataFrame, digital_tags: pd.DataFrame | None, policy: DigitalPolicy
) -> pd.DataFrame:
    """Every tag any firm ever carries, with the span it holds: [valid_from, valid_until].

    A tag holds at as_of when valid_from < as_of and the firm was not closed before as_of
    (valid_until NaT or ≥ as_of). Compute it once and filter with `tags_at` when replaying
    many dates; `tag_enterprises` is the one-date shortcut.
    """
    frames = [
        f
        for f in (_rule_tags(enterprises, policy.tagging), _manual_tags(digital_tags, enterprises))
        if not f.empty
    ]
    history = pd.concat(frames, ignore_index=True) if frames else _empty_history()
    history = _typed(history).drop_duplicates(["uscc", "tag", "source", "rule"])
    return history.sort_values(["uscc", "tag", "source", "rule"], na_position="last").reset_index(
        drop=True
    )


def tags_at(history: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """The tags of `tag_history` holding at as_of (columns uscc, tag, source, rule, since)."""
    as_of_ts = _as_timestamp(as_of)
    holds = (history["valid_from"] < as_of_ts).fillna(False) & (
        history["valid_until"].isna() | (history["valid_until"] >= as_of_ts)
    )
    return history.loc[holds, list(TAG_COLUMNS)].reset_index(drop=True)


def tag_enterprises(
    enterprises: pd.DataFrame,
    digital_tags: pd.DataFrame | None,
    policy: DigitalPolicy,
    as_of: object,
) -> pd.DataFrame:
    """Digital-economy tags holding at `as_of`, one row per (firm, tag, provenance).

    Columns: uscc, tag, source ('rule' or the digital_tags source), rule (tag-rule name; NA
    for table tags), since (establishment for rule tags, tagged_date for table tags).
    Point in time: firms not yet established or already closed before `as_of` carry no tag,
    and table tags with tagged_date ≥ `as_of` do not exist yet.
    """
    return tags_at(tag_history(enterprises, digital_tags, policy), as_of)


def tagged_firms(tags: pd.DataFrame) -> pd.Index:
    """Distinct firms carrying at least one tag, sorted."""
    return pd.Index(sorted(tags["uscc"].dropna().unique()), dtype="string", name="uscc")


def tags_by_firm(tags: pd.DataFrame) -> pd.Series:
    """uscc → sorted list of distinct tags (what a case record shows)."""
    if tags.empty:
        return pd.Series([], dtype=object, index=pd.Index([], dtype="string", name="uscc"))
    grouped = tags.groupby("uscc", sort=True)["tag"].agg(lambda s: sorted(set(s)))
    grouped.index = grouped.index.astype("string")
    return grouped
