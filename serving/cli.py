"""The `riskmatrix` command line: one entry point, one subcommand per job.

User mistakes (a bad file, a bad policy, a missing snapshot) end with one bilingual message
and a non-zero exit code, never a traceback; programming errors still show theirs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

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

    types: list[type[BaseException]] = [UserError, IngestError]
    try:
        from supervision.policy import PolicyError

        types.append(PolicyError)
    except ImportError:  # pragma: no cover - policy module always ships
        pass
    return tuple(types)


def _settings(home: Path | None) -> Settings:
    return load_settings(home)


HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="运行目录 / runtime home (default: $RISKMATRIX_HOME or ./var)"),
]


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
    from simulation.district import DistrictConfig, simulate_district, write_district

    if fmt not in ("csv", "parquet"):
        raise UserError(f"--format 只能是 csv 或 parquet / --format must be csv or parquet: {fmt}")
    if enterprises < 100:
        raise UserError("--enterprises 至少为 100 / --enterprises must be at least 100")
    started = time.perf_counter()
    config = DistrictConfig(enterprises=enterprises, years=years, seed=seed, projects=projects)
    district = simulate_district(config, progress=True)
    write_district(district, out, fmt=fmt)  # type: ignore[arg-type]
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
    from simulation.district import read_district

    district = read_district(directory)
    report = calibration_report(district.tables, district.truth)
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


@app.command()
def demo(
    home: HomeOption = None,
    enterprises: Annotated[int, typer.Option(help="企业数 / number of enterprises")] = 20_000,
    seed: Annotated[int, typer.Option(help="随机种子 / random seed")] = 7,
) -> None:
    """端到端演示 / run the whole job end to end on the embedded defaults."""
    settings = _settings(home)
    source = settings.sources / f"demo-{enterprises}-{seed}"
    typer.echo(f"== 1. 模拟辖区 / simulate a district -> {source}")
    simulate(out=source, enterprises=enterprises, years=4, seed=seed, projects=None, fmt="csv")
    typer.echo("== 2. 校验导入 / ingest")
    ingest(directory=source, encoding="utf-8", home=settings.home)
    typer.echo(f"完成 / done. 运行目录 / runtime home: {settings.home}")


def main() -> None:
    """Console entry point: run the app, turning user errors into one clear message."""
    try:
        app(standalone_mode=False)
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
