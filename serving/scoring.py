"""Score the current snapshot with the registered champion: the serving side of the model.

Everything that needs today's classes (explanations, campaign rosters, trigger evaluation)
comes through here, so all of them use the same snapshot, model version and policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.snapshot import current_snapshot, load_snapshot, snapshot_manifest
from models.scoring import ScoredPopulation, score_population
from serving.settings import Settings
from supervision.policy import Policy, load_policy
from training.enterprise import (
    REGISTERED_NAME,
    EnterpriseData,
    class_rules,
    data_period,
)


class ServingError(Exception):
    """Something the operator must do first (ingest, train); printed without a traceback."""


@dataclass(frozen=True)
class Context:
    """The inputs of every decision: snapshot, policy, as-of date."""

    snapshot_dir: Path
    snapshot: dict[str, pd.DataFrame]
    policy: Policy
    as_of: pd.Timestamp

    @property
    def snapshot_id(self) -> str:
        return self.snapshot_dir.name

    @property
    def input_hash(self) -> str:
        return str(snapshot_manifest(self.snapshot_dir).get("input_hash", ""))


@dataclass(frozen=True)
class ChampionScores:
    """Scores of the current snapshot with the champion, and the identity of what made them."""

    context: Context
    model_name: str
    model_version: str
    population: ScoredPopulation
    features: pd.DataFrame


def current_snapshot_dir(settings: Settings) -> Path:
    """The latest complete snapshot, or an operator error saying to ingest first."""
    try:
        return current_snapshot(settings.snapshots)
    except Exception as error:
        raise ServingError(
            f"还没有可用的快照, 请先运行 riskmatrix ingest DIR / no snapshot yet: run "
            f"`riskmatrix ingest DIR` first ({error})"
        ) from None


def load_context(settings: Settings, as_of: pd.Timestamp | None = None) -> Context:
    """The current snapshot and policy; `as_of` defaults to the day after the data ends."""
    snapshot_dir = current_snapshot_dir(settings)
    snapshot = load_snapshot(snapshot_dir)
    policy = load_policy(settings.policy_path)
    if as_of is None:
        as_of = (data_period(snapshot)[1] + pd.Timedelta(days=1)).normalize()
    return Context(snapshot_dir, snapshot, policy, pd.Timestamp(as_of))


def champion(settings: Settings, name: str = REGISTERED_NAME) -> tuple[Any, str]:
    """The champion model and its version; a clear error when none is registered yet."""
    from training.registry import configure_mlflow, get_version_by_alias, load_model

    configure_mlflow(settings.home, settings.mlflow_uri)
    version = get_version_by_alias(name, "champion")
    if version is None:
        raise ServingError(
            f"模型 {name} 还没有冠军版本, 请先运行 riskmatrix train enterprise / no champion "
            f"for {name}: run `riskmatrix train enterprise` first"
        )
    return load_model(name, version), version


def score_with_champion(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    previous: pd.Series | None = None,
    entities: list[str] | None = None,
) -> ChampionScores:
    """Features of the current snapshot at `as_of`, scored and explained by the champion.

    Features are always built for the whole district (related-party features need it);
    `entities` limits scoring and TreeSHAP, the costly part, to the firms asked about.
    """
    context = load_context(settings, as_of)
    model, version = champion(settings)
    data = EnterpriseData(context.snapshot, context.policy)
    features = data.features(context.as_of)
    if entities is not None:
        features = features.loc[features.index.intersection(pd.Index(entities))]
    population = score_population(
        model, features, context.policy.feature_catalogue(), class_rules(context.policy),
        previous=previous,
    )
    return ChampionScores(context, REGISTERED_NAME, version, population, features)


def enterprise_roster(scores: ChampionScores) -> pd.DataFrame:
    """The campaign roster: class, probability and reasons beside registry attributes."""
    enterprises = scores.context.snapshot["enterprises"].set_index("uscc")
    attributes = enterprises.reindex(scores.population.scores.index)[
        ["name", "entity_type", "registered_capital", "employees", "industry_code", "street",
         "registered_address", "legal_rep_name"]
    ]
    columns = ["probability", "class", "top_reasons_zh", "top_reasons_en"]
    return attributes.join(scores.population.scores[columns])
