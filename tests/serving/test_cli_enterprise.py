"""The command line as an operator uses it: simulate, ingest, train, backtest, explain."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app

RUNNER = CliRunner()


def invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("cli")
    source, home = root / "district", root / "home"
    # A district this small cannot meet the production gate (ECE ≤ 0.02 needs tens of
    # thousands of firms), so the test runs under a policy copy with a loose gate.
    from supervision.policy import default_policy_text

    loose = (default_policy_text().replace("ece_gate: 0.02", "ece_gate: 0.5")
             .replace("band: [0.8, 1.25]", "band: [0.01, 100.0]"))
    policy = root / "policy.yaml"
    policy.write_text(loose, encoding="utf-8")
    previous = os.environ.get("RISKMATRIX_POLICY")
    os.environ["RISKMATRIX_POLICY"] = str(policy)
    invoke("simulate", "--out", str(source), "--enterprises", "1500", "--years", "4",
           "--seed", "3", "--format", "csv")
    invoke("ingest", str(source), "--home", str(home))
    yield source, home
    if previous is None:
        os.environ.pop("RISKMATRIX_POLICY", None)
    else:
        os.environ["RISKMATRIX_POLICY"] = previous


@pytest.mark.slow
def test_train_registers_a_champion_and_explain_uses_it(trained_home: tuple[Path, Path]) -> None:
    source, home = trained_home
    output = invoke("train", "enterprise", "--home", str(home), "--truth",
                    str(source / "truth"), "--folds", "1")
    assert "enterprise-credit-risk v1" in output
    assert "lightgbm" in output and "oracle" in output
    assert (home / "mlflow" / "mlflow.db").exists()

    backtest = json.loads(invoke("backtest", "enterprise", "--home", str(home), "--folds", "1",
                                 "--json"))
    rows = backtest["tables"]["10%"]
    assert {r["model"] for r in rows} >= {"lightgbm", "logistic", "scorecard",
                                           "uniform_random"}

    from features.snapshot import current_snapshot, load_snapshot

    enterprises = load_snapshot(current_snapshot(home / "snapshots"))["enterprises"]
    active = enterprises.loc[enterprises["status"] == "active", "uscc"].iloc[0]
    plot = home / "waterfall.png"
    explained = invoke("explain", str(active), "--home", str(home), "--plot", str(plot))
    assert str(active) in explained
    assert "enterprise-credit-risk v1" in explained and "haizhu-2022" in explained
    assert plot.stat().st_size > 0


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RISKMATRIX_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "serving.cli", *args], capture_output=True,
                          text=True, env=env, check=False)


def test_user_mistakes_get_one_message_and_no_traceback(tmp_path: Path) -> None:
    missing = run_cli("ingest", str(tmp_path / "nowhere"), home=tmp_path)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr and "nowhere" in missing.stderr

    no_snapshot = run_cli("explain", "91440105000000CT71", home=tmp_path)
    assert no_snapshot.returncode == 2
    assert "riskmatrix ingest" in no_snapshot.stderr and "Traceback" not in no_snapshot.stderr
