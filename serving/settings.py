"""Runtime settings: where riskmatrix keeps its state, read from the environment.

Everything the product writes lives under one home directory so an operator can back it up,
move it or wipe it as a unit; production swaps the embedded stores for servers by URL alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("var")


@dataclass(frozen=True)
class Settings:
    """Resolved runtime locations (see README, "Runtime home")."""

    home: Path
    database_url: str
    mlflow_uri: str | None
    policy_path: Path | None

    @property
    def snapshots(self) -> Path:
        return self.home / "snapshots"

    @property
    def sources(self) -> Path:
        return self.home / "sources"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def campaigns(self) -> Path:
        return self.home / "campaigns"


def load_settings(home: Path | None = None) -> Settings:
    """Settings from `RISKMATRIX_HOME`, `RISKMATRIX_DB_URL`, `RISKMATRIX_MLFLOW_URI`,
    `RISKMATRIX_POLICY`, with the embedded defaults (SQLite and a local MLflow store under
    the home) when unset."""
    resolved_home = (home or Path(os.environ.get("RISKMATRIX_HOME", DEFAULT_HOME))).absolute()
    database_url = os.environ.get(
        "RISKMATRIX_DB_URL", f"sqlite:///{resolved_home / 'riskmatrix.db'}"
    )
    policy = os.environ.get("RISKMATRIX_POLICY")
    return Settings(
        home=resolved_home,
        database_url=database_url,
        mlflow_uri=os.environ.get("RISKMATRIX_MLFLOW_URI") or None,
        policy_path=Path(policy) if policy else None,
    )
