"""One prepared home for every API test: a small district with a champion, one nightly run,
one market campaign planned, drawn, staffed and merged into visits, and one user per role.

Built once per session (about half a minute on 2 cores) on top of tests/serving's champion
home; tests that write (users, tokens) use names of their own so they never collide.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_champion import AS_OF, CHUNK, champion_home, settings_for

from serving.api.auth import Principal, Role, add_user, issue_token
from serving.settings import Settings

PASSWORD = "correct-horse-battery"


@dataclass(frozen=True)
class Prepared:
    settings: Settings
    campaign_id: str
    inspector_id: str
    other_inspector_id: str
    on_list: str
    off_list: str
    tokens: dict[str, str]


def _cli(*args: str) -> None:
    from serving.cli import app

    code = app(list(args), standalone_mode=False)
    assert code in (None, 0), args


def _campaign(settings: Settings) -> str:
    from serving.campaign_store import CampaignStore

    home = ["--home", str(settings.home)]
    _cli("campaign", "plan", "--department", "market", "--items", "SC-GS-01;SC-GS-02",
         "--period-start", f"{AS_OF:%Y-%m-%d}", "--period-end",
         f"{AS_OF + pd.DateOffset(months=3) - pd.Timedelta(days=1):%Y-%m-%d}", *home)
    campaign_id = CampaignStore(settings.campaigns).campaign_ids()[-1]
    _cli("campaign", "draw", campaign_id, *home)
    _cli("campaign", "assign", campaign_id, *home)
    _cli("campaign", "visits", *home)
    return campaign_id


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    import os

    from serving.api.decisions import ranked_lists_frame
    from serving.nightly import run_nightly
    from serving.store import open_store, scores_frame

    home = champion_home(tmp_path_factory.mktemp("api") / "home")
    settings = settings_for(home, f"sqlite:///{home / 'riskmatrix.db'}")
    os.environ["RISKMATRIX_HOME"] = str(home)
    run_nightly(settings, AS_OF, progress=False, chunk_size=CHUNK)
    campaign_id = _campaign(settings)
    ranked = ranked_lists_frame(settings)
    teams = ranked["team_id"].astype(str)
    inspector_id = teams.iloc[0].split(";")[0]
    on_list = set(ranked.loc[teams.str.contains(inspector_id, regex=False), "uscc"])
    others = sorted({m for t in teams for m in t.split(";")} - {inspector_id})
    engine = open_store(settings.database_url)
    scored = scores_frame(engine).index
    off_list = sorted(set(scored) - on_list)[0]
    users = {
        "inspector": Principal("insp", Role.inspector, inspector_id),
        "inspector2": Principal("insp2", Role.inspector, others[0]),
        "regulator": Principal("reg", Role.regulator, None),
        "admin": Principal("root", Role.admin, None),
    }
    tokens = {}
    for key, user in users.items():
        add_user(engine, user.username, user.role, PASSWORD, user.inspector_id)
        tokens[key] = issue_token(engine, user)
    engine.dispose()
    return Prepared(settings, campaign_id, inspector_id, others[0], sorted(on_list)[0],
                    off_list, tokens)


@pytest.fixture(scope="session")
def client(prepared: Prepared) -> Iterator[TestClient]:
    from serving.api.app import create_app

    with TestClient(create_app(prepared.settings)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
