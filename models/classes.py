"""From calibrated probabilities to risk classes A/B/C/D, with hysteresis and hard rules.

Order of decisions, each recorded so an auditor can replay it:

1. score class — the probability against the cut-offs (a probability at or above a cut-off
   belongs to the riskier class);
2. hysteresis — with last period's class, the class moves only when the probability is past
   the relevant cut-off by more than `margin`, so enterprises near a cut-off do not flip every
   month (each flip changes their inspection ratio);
3. hard rules, in the order given — e.g. serious-dishonesty list → force D, newly
   established → at most B. Later rules see the result of earlier ones.

Cut-offs, margin, rules and their texts are policy: they come from the policy file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

CLASS_LABELS: tuple[str, ...] = ("A", "B", "C", "D")
HardRuleEffect = Literal["force", "at_most", "at_least"]
HYSTERESIS = "hysteresis"
CLASS_COLUMNS = ["score_class", "class", "overrides", "reason_zh", "reason_en"]

_EFFECT_TEXT: dict[str, tuple[str, str]] = {
    "force": ("强制为{0}类", "forced to class {0}"),
    "at_most": ("最高为{0}类", "at most class {0}"),
    "at_least": ("最低为{0}类", "at least class {0}"),
}


@dataclass(frozen=True)
class HardRule:
    """A policy rule that overrides the score class when the entity's flag is set.

    `effect`: "force" sets the class to `target_class`; "at_most" caps it there (never
    riskier); "at_least" floors it there (never safer). `reason_zh`/`reason_en` say why, in
    the policy's words (e.g. "列入严重违法失信名单" / "on the serious-dishonesty list").
    """

    name: str
    flag_column: str
    effect: HardRuleEffect
    target_class: str
    reason_zh: str
    reason_en: str

    def __post_init__(self) -> None:
        if self.effect not in _EFFECT_TEXT:
            raise ValueError(
                f"hard rule {self.name!r}: effect must be one of {sorted(_EFFECT_TEXT)}, got "
                f"{self.effect!r} / 硬规则效果无效"
            )
        if not self.name or self.name == HYSTERESIS:
            raise ValueError(f"hard rule name {self.name!r} is empty or reserved / 规则名无效")
        if not self.reason_zh.strip() or not self.reason_en.strip():
            raise ValueError(
                f"hard rule {self.name!r} needs reason_zh and reason_en / 规则缺少理由"
            )


def _check_labels(labels: Sequence[str]) -> list[str]:
    ordered = [str(label) for label in labels]
    if len(ordered) < 2 or len(set(ordered)) != len(ordered):
        raise ValueError(f"class labels must be >= 2 distinct labels, got {ordered}")
    return ordered


def _check_cutoffs(cutoffs: Sequence[float], labels: Sequence[str]) -> np.ndarray:
    values = np.asarray(cutoffs, dtype=np.float64)
    if values.shape != (len(labels) - 1,):
        raise ValueError(
            f"{len(labels)} classes need {len(labels) - 1} cut-offs, got {len(values)} / "
            "分类阈值个数与类别数不符"
        )
    if not np.isfinite(values).all() or (np.diff(values) < 0).any():
        raise ValueError(
            f"cut-offs must be finite and non-decreasing, got {values.tolist()} / "
            "分类阈值必须为有限值且单调不减"
        )
    return values


def _entity_list(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    shown = [str(label) for label in index[mask][:limit]]
    more = int(mask.sum()) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def cutoffs_from_shares(
    probabilities: np.ndarray,
    shares: Mapping[str, float],
    labels: Sequence[str] = CLASS_LABELS,
) -> list[float]:
    """Cut-offs that give each class its target share on a reference score distribution.

    `shares` maps each label to its share (summing to 1); `labels` is the risk order, lowest
    risk first. The cut-off between classes is the empirical quantile at the cumulative share,
    placed midway between the two neighbouring scores, so on the reference distribution each
    class gets exactly round(share × n) entities unless scores tie at the boundary (ties all
    go to the riskier class). Use the scores of a recent full run as the reference, and keep
    the cut-offs fixed between policy revisions — recomputing them every run would make the
    class shares fixed and the classes meaningless.
    """
    ordered = _check_labels(labels)
    if set(shares) != set(ordered):
        raise ValueError(
            f"shares must name exactly the classes {ordered}, got {sorted(shares)} / "
            "类别占比与类别不一致"
        )
    share_values = np.array([float(shares[label]) for label in ordered])
    if not np.isfinite(share_values).all() or (share_values < 0).any():
        raise ValueError(f"class shares must be >= 0, got {dict(shares)} / 类别占比必须非负")
    if not math.isclose(share_values.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"class shares must sum to 1, got {share_values.sum():.6f} / 类别占比之和必须为1"
        )
    scores = np.sort(np.asarray(probabilities, dtype=np.float64).reshape(-1))
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("reference probabilities must be non-empty and finite / 参考概率无效")

    n = scores.size
    below = np.clip(np.rint(np.cumsum(share_values)[:-1] * n).astype(np.int64), 0, n)
    cutoffs: list[float] = []
    for count in below.tolist():
        if count == 0:
            cutoff = scores[0]
        elif count == n:
            cutoff = np.nextafter(scores[-1], np.inf)
        else:
            lower, upper = scores[count - 1], scores[count]
            cutoff = (lower + upper) / 2.0
            if cutoff <= lower:  # adjacent floats: the midpoint rounds down onto `lower`
                cutoff = upper
        cutoffs.append(float(cutoff))
    return cutoffs


def _previous_positions(
    previous: pd.Series | None, index: pd.Index, labels: list[str]
) -> np.ndarray:
    """Position of last period's class per entity; -1 where there is none (new entity)."""
    if previous is None:
        return np.full(len(index), -1, dtype=np.int64)
    if previous.index.has_duplicates:
        raise ValueError("previous classes have duplicate entities / 上期类别中主体重复")
    aligned = previous.reindex(index).astype(object)
    present = aligned.notna().to_numpy()
    codes = pd.Categorical(aligned.where(present, None), categories=labels).codes
    invalid = present & (codes < 0)
    if invalid.any():
        raise ValueError(
            f"previous class not one of {labels} for entities {_entity_list(index, invalid)} / "
            "上期类别无效"
        )
    return np.asarray(codes, dtype=np.int64)


def _flag_mask(flags: pd.DataFrame, column: str, index: pd.Index) -> np.ndarray:
    series = flags[column].reindex(index)
    if series.isna().any():
        raise ValueError(
            f"flag column {column!r} is missing for entities "
            f"{_entity_list(index, series.isna().to_numpy())} / 标记列存在缺失值"
        )
    if is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=bool)
    if is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64)
        not_binary = ~np.isin(values, (0.0, 1.0))
        if not not_binary.any():
            return values == 1.0
        raise ValueError(
            f"flag column {column!r} must be boolean; non-0/1 values for entities "
            f"{_entity_list(index, not_binary)} / 标记列必须为布尔值"
        )
    raise ValueError(
        f"flag column {column!r} must be boolean, got {series.dtype} / 标记列必须为布尔值"
    )


def _reason_tail(score_class: str, held_class: str | None, fired: Sequence[HardRule],
                 margin: float) -> tuple[str, str]:
    """The part of a class reason after the probability: the cut-off class, the hysteresis
    hold, then each fired rule with its effect."""
    zh = f"，按分类阈值为{score_class}类"
    en = f" gives class {score_class} by the cut-offs"
    if held_class is not None:
        zh += f"；未越过阈值缓冲带（{margin:g}），保持上期{held_class}类"
        en += (f"; kept last period's class {held_class} (cut-off not crossed by the margin "
               f"{margin:g})")
    for rule in fired:
        effect_zh, effect_en = (t.format(rule.target_class) for t in _EFFECT_TEXT[rule.effect])
        zh += f"；{rule.reason_zh}（{effect_zh}）"
        en += f"; {rule.reason_en} ({effect_en})"
    return zh, en


def assign_classes(
    probabilities: pd.Series,
    cutoffs: Sequence[float],
    *,
    margin: float = 0.0,
    previous: pd.Series | None = None,
    hard_rules: Sequence[HardRule] = (),
    flags: pd.DataFrame | None = None,
    labels: Sequence[str] = CLASS_LABELS,
) -> pd.DataFrame:
    """Risk class per entity, indexed like `probabilities`.

    Columns: `score_class` (cut-offs only), `class` (final), `overrides` (tuple of what
    changed or fixed the class: "hysteresis" when it held or limited a move, then the names
    of the hard rules whose flag is set, in rule order), `reason_zh`, `reason_en` (the score
    class reason followed by one reason per override).

    `previous` holds last period's final class by entity (missing entities: no hysteresis).
    `flags` is a boolean frame indexed by entity with one column per rule's `flag_column`.
    """
    ordered = _check_labels(labels)
    bounds = _check_cutoffs(cutoffs, ordered)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be finite and >= 0, got {margin} / 缓冲带必须非负")
    if not isinstance(probabilities, pd.Series):
        raise TypeError("probabilities must be a pandas Series indexed by entity")
    index = probabilities.index
    if index.has_duplicates:
        raise ValueError(
            f"duplicate entities: {_entity_list(index, index.duplicated())} / 主体重复"
        )
    p = probabilities.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(p)
    if bad.any():
        raise ValueError(
            f"probability missing or not finite for {_entity_list(index, bad)} / 概率缺失"
        )

    target = {label: i for i, label in enumerate(ordered)}
    for rule in hard_rules:
        if rule.target_class not in target:
            raise ValueError(
                f"hard rule {rule.name!r}: target class {rule.target_class!r} not in {ordered}"
            )
    if hard_rules:
        if flags is None:
            raise ValueError("hard rules need a flags frame / 硬规则需要标记数据")
        if flags.index.has_duplicates:
            raise ValueError("flags have duplicate entities / 标记数据主体重复")
        absent = [r.flag_column for r in hard_rules if r.flag_column not in flags.columns]
        if absent:
            raise ValueError(f"flags frame lacks columns / 标记数据缺少列: {absent}")

    score = np.searchsorted(bounds, p, side="right")
    prev = _previous_positions(previous, index, ordered)
    # Hysteresis as a dead band: moving up past a cut-off needs p > cut-off + margin, moving
    # down below it needs p < cut-off - margin; in between, last period's class holds.
    # margin == 0 is exactly the plain cut-off rule.
    has_prev = prev >= 0
    if margin > 0:
        reach_up = np.searchsorted(bounds, p - margin, side="left")
        reach_down = np.searchsorted(bounds, p + margin, side="right")
        final = np.where(has_prev, np.clip(prev, reach_up, reach_down), score)
    else:
        final = score.copy()
    held = has_prev & (final != score)

    steps = [held]
    for rule in hard_rules:
        assert flags is not None
        fired = _flag_mask(flags, rule.flag_column, index)
        goal = target[rule.target_class]
        if rule.effect == "force":
            final = np.where(fired, goal, final)
        elif rule.effect == "at_most":
            final = np.where(fired, np.minimum(final, goal), final)
        else:
            final = np.where(fired, np.maximum(final, goal), final)
        steps.append(fired)

    # What follows the probability in a reason depends only on (score class, held-from class,
    # which rules fired): few combinations over a whole district, each rendered once.
    pattern = np.zeros(len(index), dtype=np.int64)
    for bit, step in enumerate(steps):
        pattern |= step.astype(np.int64) << bit
    held_from = np.where(held, prev, -1)
    combos, row_combo = np.unique(
        (pattern * (len(ordered) + 1) + held_from + 1) * len(ordered) + score,
        return_inverse=True,
    )
    step_names = [HYSTERESIS, *(rule.name for rule in hard_rules)]
    tails_zh, tails_en, combo_overrides = [], [], []
    for combo in combos.tolist():
        rest, score_class = divmod(combo, len(ordered))
        bits, held_code = divmod(rest, len(ordered) + 1)
        zh, en = _reason_tail(ordered[score_class], ordered[held_code - 1] if held_code else None,
                              [rule for i, rule in enumerate(hard_rules) if bits >> (i + 1) & 1],
                              margin)
        tails_zh.append(zh)
        tails_en.append(en)
        combo_overrides.append(tuple(name for i, name in enumerate(step_names) if bits >> i & 1))
    row_codes = row_combo.reshape(-1).tolist()
    p_texts = [f"{value:.4f}" for value in p.tolist()]
    reason_zh = [f"风险概率{t}{tails_zh[c]}" for t, c in zip(p_texts, row_codes, strict=True)]
    reason_en = [f"probability {t}{tails_en[c]}" for t, c in zip(p_texts, row_codes, strict=True)]
    # One shared immutable tuple per combination: no per-row containers for the GC to track.
    overrides = np.empty(len(combos), dtype=object)
    for position, names in enumerate(combo_overrides):
        overrides[position] = names
    label_arr = np.array(ordered, dtype=object)

    return pd.DataFrame(
        {
            "score_class": label_arr[score],
            "class": label_arr[final],
            "overrides": pd.Series(overrides[row_combo.reshape(-1)], index=index, dtype=object),
            "reason_zh": reason_zh,
            "reason_en": reason_en,
        },
        index=index,
        columns=CLASS_COLUMNS,
    )
