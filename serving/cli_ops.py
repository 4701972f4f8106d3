"""Operations commands: the nightly batch and the audit trail.

Registered by `serving.cli` (`app.command("nightly")(nightly)`,
`app.add_typer(audit_app, name="audit")`). Operator mistakes — no snapshot, no champion, an
unreachable database, an unknown date — end with one bilingual line and exit code 2; a broken
audit chain or a replay that does not match exits 1, so cron and CI notice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from serving.cli_options import HomeOption
from serving.settings import load_settings

EXIT_FAILED_CHECK = 1
EXIT_USER_ERROR = 2

audit_app = typer.Typer(
    name="audit",
    help="审计链校验与决定重放 / verify the audit chain and replay decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _operator_errors() -> tuple[type[BaseException], ...]:
    from features.ingest import IngestError
    from features.snapshot import SnapshotError
    from serving.audit import AuditError
    from serving.scoring import ServingError
    from serving.store import StoreError
    from supervision.policy import PolicyError

    return (ServingError, StoreError, AuditError, SnapshotError, IngestError, PolicyError)


@contextmanager
def _operator_errors_as_exit() -> Iterator[None]:
    """Print an operator mistake as one line (no traceback) and exit with code 2."""
    try:
        yield
    except _operator_errors() as error:
        typer.echo(f"错误 / error: {error}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _date(text: str) -> Any:
    import pandas as pd

    try:
        return pd.Timestamp(text).normalize()
    except (ValueError, TypeError):
        typer.echo(f"错误 / error: 日期无效 {text!r}, 应为 YYYY-MM-DD / invalid date {text!r}, "
                   "expected YYYY-MM-DD", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


def nightly(
    as_of: Annotated[str, typer.Option("--as-of", help="评分基准日 / as-of date, YYYY-MM-DD")],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="先导入的源数据目录 / source tables to ingest first"),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="每块企业数 / enterprises per chunk")
    ] = 50_000,
    home: HomeOption = None,
) -> None:
    """夜间批量评分并发布 / score every enterprise with the champion and publish the run.

    Atomic, idempotent and resumable: re-run the same command after a crash.
    """
    from serving.nightly import run_nightly

    day = _date(as_of)
    with _operator_errors_as_exit():
        summary = run_nightly(load_settings(home), day, source=source, progress=True,
                              chunk_size=chunk_size)
    typer.echo(summary.format())


@audit_app.command("verify")
def verify(home: HomeOption = None) -> None:
    """重算整条审计链 / recompute the hash chain and report the first bad record."""
    from serving.audit import verify_chain
    from serving.store import open_store

    with _operator_errors_as_exit():
        report = verify_chain(open_store(load_settings(home).database_url))
    typer.echo(report.describe())
    if not report.ok:
        raise typer.Exit(EXIT_FAILED_CHECK)


@audit_app.command("replay")
def replay(
    entity: Annotated[str, typer.Argument(help="统一社会信用代码 / the enterprise's USCC")],
    as_of: Annotated[str, typer.Option("--as-of", help="决定的基准日 / the decision's as-of")],
    home: HomeOption = None,
) -> None:
    """重放一个决定 / rebuild a published decision and show whether it matches."""
    from serving.nightly import replay_decision

    day = _date(as_of)
    with _operator_errors_as_exit():
        report = replay_decision(load_settings(home), entity.strip().upper(), day)
    typer.echo(report.format())
    if not report.matches:
        raise typer.Exit(EXIT_FAILED_CHECK)


def register(app: typer.Typer, command: Callable[..., Any] = nightly) -> None:
    """Add `nightly` and the `audit` group to the main CLI (one call for the lead)."""
    app.command("nightly")(command)
    app.add_typer(audit_app, name="audit")
