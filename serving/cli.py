"""The `riskmatrix` command line: one entry point, one subcommand per job.

User mistakes (a bad file, a bad policy, a missing snapshot) end with one bilingual message
and a non-zero exit code, never a traceback; programming errors still show theirs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from serving.api.cli_service import register as register_service
from serving.cli_campaign import campaign_app, simulate_policy
from serving.cli_ops import register as register_operations
from serving.cli_options import HomeOption
from serving.cli_project import backtest_project, matrix, train_project
from serving.cli_triggers import triggers_app
from serving.settings import Settings, load_settings

app = typer.Typer(
    name="riskmatrix",
    help="风险分级分类监管引擎 / risk-scoring engine for differentiated supervision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Error types that mean bad input rather than a bug (imported lazily: the CLI starts fast)."""
    from features.ingest import IngestError
    from serving.campaign_store import CampaignStoreError
    from serving.case_store import CaseStoreError
    from serving.cli_project import ProjectCliError
    from serving.scoring import ServingError
    from supervision.campaigns import CampaignError

    types: list[type[BaseException]] = [
        UserError, IngestError, ServingError, CaseStoreError, CampaignStoreError, CampaignError,
        ProjectCliError,
    ]
    try:
        from supervision.policy import PolicyError

        types.append(PolicyError)
    except ImportError:  # pragma: no cover - policy module always ships
        pass
    return tuple(types)


def _settings(home: Path | None) -> Settings:
    return load_settings(home)




@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="输出目录 / output directory")],
    enterprises: Annotated[int, typer.Option(help="企业数 / number of enterprises")] = 20_000,
    years: Annotated[int, typer.Option(help="模拟年数 / simulated years")] = 4,
    seed: Annotated[int, typer.Option(help="随机种子 / random seed")] = 7,
    projects: Annotated[
        int | None, typer.Option(help="工程项目数 / construction projects (default N/40)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "parquet",
) -> None:
    """模拟一个辖区 / simulate a district: writes the contract's tables plus ground truth."""
    from simulation.calibration import calibration_report, format_calibration
    from simulation.district import DistrictConfig, simulate_district
    from simulation.io import write_district

    if fmt not in ("csv", "parquet"):
        raise UserError(f"--format 只能是 csv 或 parquet / --format must be csv or parquet: {fmt}")
    if enterprises < 100:
        raise UserError("--enterprises 至少为 100 / --enterprises must be at least 100")
    started = time.perf_counter()
    config = DistrictConfig(enterprises=enterprises, years=years, seed=seed, projects=projects)
    district = simulate_district(config, progress=True)
    write_district(district, out, fmt="csv" if fmt == "csv" else "parquet")
    rows = {name: len(frame) for name, frame in district.tables.items()}
    typer.echo(f"已写入 / written: {out}  ({time.perf_counter() - started:.1f} s)")
    for name, count in rows.items():
        typer.echo(f"  {name:<22} {count:>10,}")
    typer.echo(format_calibration(calibration_report(district.tables, district.truth)))


@app.command()
def calibration(
    directory: Annotated[Path, typer.Argument(help="模拟输出目录 / simulated district directory")],
) -> None:
    """打印模拟辖区的校准指标 / print a simulated district's calibration figures."""
    from simulation.calibration import calibration_report, format_calibration
    from simulation.io import read_tables, read_truth

    if not (directory / "truth").is_dir():
        raise UserError(f"不是模拟辖区目录 (缺少 truth/) / not a simulated district: {directory}")
    report = calibration_report(read_tables(directory), read_truth(directory))
    typer.echo(format_calibration(report))
    if not bool(report["ok"].all()):
        raise typer.Exit(1)


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="源数据目录 / directory of source tables")],
    encoding: Annotated[
        str, typer.Option(help="CSV 编码 / CSV encoding (utf-8 handles BOM; gb18030 for GBK)")
    ] = "utf-8",
    home: HomeOption = None,
) -> None:
    """校验并导入源数据 / validate source tables into a snapshot; bad rows go to rejects."""
    from features.ingest import format_summary, ingest_directory

    settings = _settings(home)
    report = ingest_directory(directory, settings.snapshots, encoding=encoding, progress=True)
    typer.echo(format_summary(report))


train_app = typer.Typer(help="训练并登记模型 / train and register models", no_args_is_help=True)
backtest_app = typer.Typer(help="时间回测 / temporal backtests", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(backtest_app, name="backtest")
app.add_typer(triggers_app, name="triggers")
app.add_typer(campaign_app, name="campaign")
app.command("simulate-policy")(simulate_policy)
register_operations(app)
register_service(app)
train_app.command("project")(train_project)
backtest_app.command("project")(backtest_project)
app.command("matrix")(matrix)

TruthOption = Annotated[
    Path | None,
    typer.Option("--truth", help="模拟辖区真值目录 (仅评估用) / simulated ground truth, "
                 "for evaluation only (e.g. DIR/truth of `riskmatrix simulate`)"),
]
FoldsOption = Annotated[int, typer.Option(help="回测折数 / number of quarterly folds")]


def _enterprise_data(settings: Settings, truth: Path | None) -> Any:
    from serving.scoring import load_context
    from simulation.io import read_truth
    from training.enterprise import EnterpriseData

    context = load_context(settings)
    truth_tables = None
    if truth is not None:
        if not truth.is_dir():
            raise UserError(f"真值目录不存在 / truth directory not found: {truth}")
        truth_tables = read_truth(truth.parent if truth.name == "truth" else truth)
    return EnterpriseData(context.snapshot, context.policy, truth_tables)


@train_app.command("enterprise")
def train_enterprise(
    home: HomeOption = None, truth: TruthOption = None, folds: FoldsOption = 4
) -> None:
    """训练企业信用风险模型并登记 / backtest, train, register and gate the enterprise model."""
    from training.fairness import format_fairness
    from training.registry import configure_mlflow

    settings = _settings(home)
    data = _enterprise_data(settings, truth)
    uri = configure_mlflow(settings.home, settings.mlflow_uri)
    run = _train_with_progress(data, folds)
    typer.echo(run.backtest.table())
    flagged = run.fairness[run.fairness["flag"]]
    typer.echo(f"\n公平性审查 / fairness audit: {len(flagged)} 项超出区间 / flagged "
               f"(门槛只看所有制 / the gate reads ownership type: "
               f"{int(run.metrics['fairness_flags'])})")
    if len(flagged):
        typer.echo(format_fairness(flagged))
    counts = run.scores["class"].value_counts().reindex(["A", "B", "C", "D"], fill_value=0)
    typer.echo(f"\n分类 / classes at {run.fold.name}: "
               + "  ".join(f"{c}: {n:,} ({n / len(run.scores):.1%})" for c, n in counts.items()))
    typer.echo(f"\n已登记 / registered: enterprise-credit-risk v{run.version} "
               f"(run {run.run_id}, MLflow {uri})")
    typer.echo(run.decision.reasons)
    typer.echo(f"用时 / took {run.seconds:.0f} s")


def _train_with_progress(data: Any, folds: int) -> Any:
    """Run training with one progress line per stage."""
    from training.enterprise import train_and_register

    return train_and_register(data, n_folds=folds, progress=lambda m: typer.echo(f"  .. {m}"))


@backtest_app.command("enterprise")
def backtest_enterprise(
    home: HomeOption = None,
    truth: TruthOption = None,
    folds: FoldsOption = 4,
    as_json: Annotated[bool, typer.Option("--json", help="机器可读输出 / JSON output")] = False,
) -> None:
    """企业模型时间回测 / rolling temporal backtest of the enterprise model and baselines."""
    from training.enterprise import run_backtest

    settings = _settings(home)
    data = _enterprise_data(settings, truth)
    say = None if as_json else (lambda m: typer.echo(f"  .. {m}"))
    result = run_backtest(data, n_folds=folds, progress=say)
    if as_json:
        typer.echo(json.dumps(result.records(), ensure_ascii=False, indent=1))
    else:
        typer.echo(result.table())


@app.command()
def explain(
    enterprise_id: Annotated[str, typer.Argument(help="统一社会信用代码 / credit code")],
    home: HomeOption = None,
    top: Annotated[int, typer.Option(help="显示的贡献项数 / contributions shown")] = 8,
    plot: Annotated[
        Path | None, typer.Option(help="保存瀑布图 PNG / save the SHAP waterfall as PNG")
    ] = None,
) -> None:
    """解释一家企业的分类 / explain one enterprise's class with its SHAP contributions."""
    from serving.scoring import score_with_champion

    settings = _settings(home)
    scores = score_with_champion(settings, entities=[enterprise_id])
    typer.echo(explanation_text(scores, enterprise_id, top))
    if plot is not None:
        _save_waterfall(scores, enterprise_id, plot)


def explanation_text(scores: Any, enterprise_id: str, top: int) -> str:
    """One enterprise's decision with everything needed to reproduce it."""
    table = scores.population.scores
    if enterprise_id not in table.index:
        raise UserError(
            f"企业 {enterprise_id} 不在当前快照的在业企业中 / enterprise {enterprise_id} is not "
            "an existing enterprise in the current snapshot"
        )
    row = table.loc[enterprise_id]
    catalogue = scores.context.policy.feature_catalogue()
    contributions = scores.population.contributions.loc[enterprise_id].drop("bias")
    values = scores.features.loc[enterprise_id]
    shown = contributions.reindex(contributions.abs().sort_values(ascending=False).index)[:top]
    lines = [
        f"企业 / enterprise: {enterprise_id}",
        f"类别 / class: {row['class']}  (分数线类别 / score class {row['score_class']}; "
        f"概率 / probability {row['probability']:.3f})",
        f"分类依据 / class reason: {row['class_reason_zh']} / {row['class_reason_en']}",
        f"模型 / model: {scores.model_name} v{scores.model_version}   策略 / policy: "
        f"{scores.context.policy.version} ({scores.context.policy.content_hash[:12]})",
        f"基准日 / as of: {scores.context.as_of.date()}   快照 / snapshot: "
        f"{scores.context.snapshot_id}   输入哈希 / input hash: {row['input_hash'][:16]}",
        "主要原因 / top reasons:",
        f"  {row['top_reasons_zh']}",
        f"  {row['top_reasons_en']}",
        f"SHAP 贡献 (对数几率) / contributions to the log-odds "
        f"(基准 / base {scores.population.contributions.loc[enterprise_id, 'bias']:+.3f}):",
    ]
    for feature, value in shown.items():
        info = catalogue[str(feature)]
        lines.append(f"  {value:+.3f}  {info.zh} / {info.en} = {values[feature]}")
    return "\n".join(lines)


@app.command()
def demo(
    home: HomeOption = None,
    enterprises: Annotated[int, typer.Option(help="企业数 / number of enterprises")] = 20_000,
    seed: Annotated[int, typer.Option(help="随机种子 / random seed")] = 7,
    serve_at_end: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="最后启动服务 / start the service at the end")] = True,
    port: Annotated[int, typer.Option(help="服务端口 / service port")] = 8000,
) -> None:
    """端到端演示 / run the whole job end to end on the embedded defaults."""
    from serving.cli_project import demo_matrix
    from serving.scoring import load_context

    settings = _settings(home)
    source = settings.sources / f"demo-{enterprises}-{seed}"
    typer.echo(f"== 1. 模拟辖区 / simulate a district -> {source}")
    simulate(out=source, enterprises=enterprises, years=4, seed=seed, projects=None, fmt="csv")
    typer.echo("\n== 2. 校验导入 / ingest")
    ingest(directory=source, encoding="utf-8", home=settings.home)
    typer.echo("\n== 3. 训练企业信用风险模型 / train the enterprise credit-risk model")
    train_enterprise(home=settings.home, truth=source / "truth", folds=4)
    typer.echo("\n== 4. 解释风险最高的企业 / explain the riskiest enterprise")
    _explain_riskiest(settings)
    typer.echo("\n== 5. 工程风险矩阵 / construction risk matrix")
    demo_matrix(settings, source / "truth")
    typer.echo("\n== 6. 触发式监管: 今日案件 / trigger-based supervision: today's cases")
    _demo_command("triggers", "--home", str(settings.home), "--show", "3")
    typer.echo("\n== 7. 双随机抽查: 计划、抽取、验证 / a random-inspection campaign, verified")
    _demo_campaign(settings)
    typer.echo("\n== 8. 夜间批处理与审计链 / nightly batch and the audit chain")
    as_of = load_context(settings).as_of
    _demo_command("nightly", "--as-of", f"{as_of:%Y-%m-%d}", "--home", str(settings.home))
    _demo_command("audit", "verify", "--home", str(settings.home))
    typer.echo(f"\n完成 / done. 运行目录 / runtime home: {settings.home}")
    typer.echo("\n== 9. 服务与登录 / the service and how to sign in")
    _demo_service(settings, serve_at_end, port)


def _demo_service(settings: Settings, serve_at_end: bool, port: int) -> None:
    """One user per role (the inspector linked to a team of the demo campaign), how to sign
    in, then the service (unless --no-serve)."""
    from serving.api.cli_service import DEFAULT_HOST, demo_users, run_server
    from serving.api.decisions import ranked_lists_frame

    teams = ranked_lists_frame(settings)["team_id"].astype(str)
    inspector_id = teams.iloc[0].split(";")[0] if len(teams) else None
    url = f"http://{DEFAULT_HOST}:{port}"
    typer.echo(f"网页 / web pages: {url}/   API 文档 / API docs: {url}/docs")
    for name, role, password in demo_users(settings, inspector_id):
        linked = f" (inspector_id {inspector_id})" if role == "inspector" else ""
        typer.echo(f"  用户 / user {name:<10} 角色 / role {role:<9} 密码 / password "
                   f"{password}{linked}")
    typer.echo(f"令牌 / token: curl -d 'username=regulator&password=...' {url}/api/auth/token")
    if serve_at_end:
        run_server(settings, DEFAULT_HOST, port)
    else:
        typer.echo(f"启动服务 / to serve: riskmatrix serve --home {settings.home}")


def _demo_command(*args: str) -> None:
    """Run one of the CLI's own commands, exactly as a user would type it."""
    try:
        code = app(list(args), standalone_mode=False)
    except SystemExit as stop:
        code = stop.code
    if code not in (None, 0):
        raise UserError(f"演示步骤失败 / demo step failed: riskmatrix {' '.join(args)}")


def _demo_campaign(settings: Settings) -> None:
    """Plan, draw, verify, staff and merge one market campaign for the next quarter."""
    from serving.campaign_store import CampaignStore
    from serving.scoring import load_context

    start = load_context(settings).as_of
    home = ["--home", str(settings.home)]
    _demo_command("campaign", "plan", "--department", "market", "--items",
                  "SC-GS-01;SC-GS-02", "--period-start", f"{start:%Y-%m-%d}", "--period-end",
                  f"{start + pd.DateOffset(months=3) - pd.Timedelta(days=1):%Y-%m-%d}", *home)
    campaign_id = CampaignStore(settings.campaigns).campaign_ids()[-1]
    _demo_command("campaign", "draw", campaign_id, *home)
    _demo_command("campaign", "verify", campaign_id, *home)
    _demo_command("campaign", "assign", campaign_id, *home)
    _demo_command("campaign", "visits", *home)
    typer.echo(f"检查清单 / ranked lists: riskmatrix campaign lists {campaign_id}; 结果与公示 / "
               f"results and publication: riskmatrix campaign results|publish {campaign_id}")


def _explain_riskiest(settings: Settings) -> None:
    from serving.scoring import score_with_champion

    scores = score_with_champion(settings)
    riskiest = str(scores.population.scores["probability"].idxmax())
    typer.echo(explanation_text(scores, riskiest, top=8))
    _save_waterfall(scores, riskiest, settings.exports / f"waterfall-{riskiest}.png")


def _save_waterfall(scores: Any, enterprise_id: str, path: Path) -> None:
    """The SHAP waterfall of one enterprise's score as a PNG."""
    from training.plots import feature_labels, waterfall_plot

    figure = waterfall_plot(
        scores.population.contributions.loc[[enterprise_id]].iloc[0],
        scores.features.loc[[enterprise_id]].iloc[0],
        feature_labels(scores.context.policy.feature_catalogue()),
        title=enterprise_id,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    typer.echo(f"瀑布图 / waterfall chart: {path}")


def main() -> None:
    """Console entry point: run the app, turning user errors into one clear message."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as error:
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if isinstance(error, _user_error_types()):
            typer.echo(f"错误 / error: {error}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
