"""The "双随机、一公开" section of the policy file, as validated data.

Every ratio, floor, cap, targeted rule, staffing rule, merge window and publication deadline
that the campaign engine uses lives here, so a district changes its practice by editing a
versioned YAML file (section `sampling:` of the policy file), never the code.
The models forbid unknown keys: a typo in a policy file must fail loudly, not be ignored.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.contract import INSPECTION_OUTCOMES

ConditionOp = Literal["ge", "gt", "le", "lt", "eq", "ne", "in", "not_in", "is_missing"]


class _Strict(BaseModel):
    """Unknown keys rejected, no silent type coercion, immutable (as the root policy's sections)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Condition(_Strict):
    """One test on a roster column, e.g. `registered_capital ge 10000` (万元, i.e. ≥ 1亿)."""

    column: str
    op: ConditionOp
    value: float | int | str | bool | list[str] | list[float] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"condition on {self.column!r}: op {self.op} needs a list value")
        if self.op == "is_missing" and self.value is not None:
            raise ValueError(f"condition on {self.column!r}: is_missing takes no value")
        if self.op not in ("in", "not_in", "is_missing") and (
            self.value is None or isinstance(self.value, list)
        ):
            raise ValueError(f"condition on {self.column!r}: op {self.op} needs a single value")
        return self


class TargetedRule(_Strict):
    """A targeted (定向) stratum: firms meeting all conditions are sampled at `ratio`.

    Example (Shandong, reported): 100 % of companies with registered capital ≥ 1亿 and zero
    employees. Rules are not subject to the general-items cap: they are explicit policy.
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    zh: str
    en: str
    ratio: float = Field(gt=0, le=1)
    conditions: list[Condition] = Field(min_length=1)
    applies_by_default: bool = True


class AssignmentPolicy(_Strict):
    """Inspector staffing rules (≥ 2 inspectors, recusal is always a hard filter)."""

    inspectors_per_target: int = Field(ge=2)
    no_repeat_last_inspectors: bool
    max_targets_per_inspector: int | None = Field(default=None, ge=1)


class JointVisitPolicy(_Strict):
    """"进一次门、查多项事": tasks on one firm whose planned dates fall within the window merge."""

    window_days: int = Field(ge=0)


class PublicationPolicy(_Strict):
    """Result publication: deadline in working days and the calendar that defines them."""

    deadline_working_days: int = Field(ge=1)
    holidays: list[dt.date] = Field(default_factory=list)
    adjusted_working_days: list[dt.date] = Field(default_factory=list)
    problem_outcomes: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_outcomes(self) -> PublicationPolicy:
        unknown = sorted(set(self.problem_outcomes) - set(INSPECTION_OUTCOMES))
        if unknown:
            raise ValueError(f"problem_outcomes has unknown outcome codes {unknown}")
        clash = sorted(set(self.holidays) & set(self.adjusted_working_days))
        if clash:
            raise ValueError(f"dates both holiday and adjusted working day: {clash}")
        return self


class SamplingPolicy(_Strict):
    """Class-driven sampling: ratio sets, floors, caps, targeted rules and downstream rules."""

    version: str = Field(min_length=1)
    classes: list[str] = Field(min_length=1)
    ratio_sets: dict[str, dict[str, float]] = Field(min_length=1)
    default_ratio_set: str
    class_weights: dict[str, float]
    floor_ratio: float = Field(gt=0, le=1)
    min_one_per_stratum: bool
    general_items_max_ratio: float = Field(gt=0, le=1)
    no_redraw_same_year: bool
    eligible_statuses: list[str] = Field(min_length=1)
    targeted_rules: list[TargetedRule] = Field(default_factory=list)
    assignment: AssignmentPolicy
    joint_visits: JointVisitPolicy
    publication: PublicationPolicy
    confidence_level: float = Field(gt=0.5, lt=1)

    @model_validator(mode="after")
    def _consistent(self) -> SamplingPolicy:
        classes = set(self.classes)
        if len(classes) != len(self.classes):
            raise ValueError("classes must be unique")
        for name, ratios in self.ratio_sets.items():
            if set(ratios) != classes:
                raise ValueError(
                    f"ratio set {name!r} must give a ratio for exactly the classes "
                    f"{self.classes}, got {sorted(ratios)}"
                )
            bad = {c: r for c, r in ratios.items() if not 0 <= r <= 1}
            if bad:
                raise ValueError(f"ratio set {name!r}: ratios must be in [0, 1], got {bad}")
        if self.default_ratio_set not in self.ratio_sets:
            raise ValueError(f"default_ratio_set {self.default_ratio_set!r} is not a ratio set")
        if set(self.class_weights) != classes or any(w <= 0 for w in self.class_weights.values()):
            raise ValueError(
                f"class_weights must give a positive weight for each of {self.classes}"
            )
        if self.general_items_max_ratio < self.floor_ratio:
            raise ValueError("general_items_max_ratio must not be below floor_ratio")
        names = [r.name for r in self.targeted_rules]
        if len(set(names)) != len(names):
            raise ValueError("targeted rule names must be unique")
        return self

    def rule(self, name: str) -> TargetedRule:
        """The targeted rule called `name` (clear error naming the known rules otherwise)."""
        for r in self.targeted_rules:
            if r.name == name:
                return r
        known = [r.name for r in self.targeted_rules]
        raise KeyError(f"定向规则不存在 / no targeted rule {name!r}; known: {known}")
