"""`riskmatrix serve` and `riskmatrix users ...`: start the service, manage who may use it.

Registered by `serving.cli` (`register(app)`). Mistakes (unknown role, existing user, missing
inspector id) end with one bilingual line and exit code 2.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from serving.cli_options import HomeOption
from serving.settings import Settings, load_settings

EXIT_USER_ERROR = 2
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

users_app = typer.Typer(
    name="users",
    help="服务用户与令牌 / service users and tokens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@contextmanager
def _user_errors() -> Iterator[None]:
    from serving.api.auth import AuthError
    from serving.store import StoreError

    try:
        yield
    except (AuthError, StoreError) as error:
        typer.echo(f"错误 / error: {error}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _engine(home: Path | None) -> Engine:
    from serving.store import open_store

    return open_store(load_settings(home).database_url)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="用户名 / username")],
    role: Annotated[str, typer.Option("--role", help="inspector | regulator | admin")],
    inspector_id: Annotated[str | None, typer.Option(
        "--inspector-id", help="检查员对应的 inspectors.inspector_id / the inspector's id")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="从标准输入读取密码 / read the password from stdin")] = False,
    home: HomeOption = None,
) -> None:
    """新建用户 / create a user (password prompted, or one line on stdin)."""
    from serving.api.auth import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    with _user_errors():
        user = add_user(_engine(home), name, role, password, inspector_id)
    link = f" (inspector_id {user.inspector_id})" if user.inspector_id else ""
    typer.echo(f"已创建用户 / user created: {user.username}, 角色 / role {user.role.value}{link}")


@users_app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="用户名 / username")],
    hours: Annotated[float, typer.Option("--hours", min=0.01, help="有效小时数 / hours valid")
                     ] = 12.0,
    home: HomeOption = None,
) -> None:
    """签发令牌并打印 / issue a bearer token for a user and print it."""
    from datetime import timedelta

    from serving.api.auth import AuthError, get_user, issue_token

    with _user_errors():
        engine = _engine(home)
        principal = get_user(engine, name)
        if principal is None:
            raise AuthError(f"用户 {name} 不存在 / no user {name}")
        typer.echo(issue_token(engine, principal, timedelta(hours=hours)))


@users_app.command("list")
def list_users(home: HomeOption = None) -> None:
    """列出用户 / list active users."""
    from serving.api.auth import list_users as active_users

    with _user_errors():
        found = active_users(_engine(home))
    if not found:
        typer.echo("还没有用户 / no user yet: riskmatrix users add NAME --role admin")
        return
    for user in found:
        typer.echo(f"{user.username}\t{user.role.value}\t{user.inspector_id or '-'}")


@users_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="用户名 / username")],
            home: HomeOption = None) -> None:
    """停用用户并吊销其令牌 / deactivate a user and revoke their tokens."""
    from serving.api.auth import AuthError, deactivate_user

    with _user_errors():
        if not deactivate_user(_engine(home), name):
            raise AuthError(f"用户 {name} 不存在 / no user {name}")
    typer.echo(f"已停用 / disabled: {name}")


def serve(
    host: Annotated[str, typer.Option("--host", help="监听地址 / bind address")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="端口 / port")
                    ] = DEFAULT_PORT,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64,
        help="工作进程数 / worker processes (one is fastest on 2 cores, see docs/operations.md)"
    )] = 1,
    home: HomeOption = None,
) -> None:
    """启动服务 (API 与网页) / start the service: API under /api, docs at /docs, pages at /."""
    run_server(load_settings(home), host, port, workers)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes `load_settings()` in a worker process return `settings`."""
    env = {"RISKMATRIX_HOME": str(settings.home), "RISKMATRIX_DB_URL": settings.database_url}
    if settings.mlflow_uri:
        env["RISKMATRIX_MLFLOW_URI"] = settings.mlflow_uri
    if settings.policy_path is not None:
        env["RISKMATRIX_POLICY"] = str(settings.policy_path)
    return env


def run_server(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """uvicorn on `settings`; with uvloop and httptools when installed (uvicorn[standard]).

    More than one worker means one app per process, each created from the environment; the
    read trail stays one chain because audit appends take SQLite's write lock first.
    """
    import os

    import uvicorn

    from serving.api.app import create_served_app

    with _user_errors():
        app = create_served_app(settings)  # fail here, once, with a clear message
    typer.echo(f"服务地址 / serving at http://{host}:{port}/  (API 文档 / docs: "
               f"http://{host}:{port}/docs; Ctrl+C 停止 / to stop)")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    os.environ.update(settings_environment(settings))
    uvicorn.run("serving.api.app:create_served_app", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)


def demo_users(settings: Settings, inspector_id: str | None) -> list[tuple[str, str, str]]:
    """One user per role for the demo, with fresh random passwords: (name, role, password).

    Re-running the demo on the same home resets the demo users' passwords.
    """
    from serving.api.auth import add_user, get_user, set_password
    from serving.store import open_store

    engine = open_store(settings.database_url)
    wanted = [("inspector", "inspector", inspector_id), ("regulator", "regulator", None),
              ("admin", "admin", None)]
    created = []
    for name, role, linked in wanted:
        if role == "inspector" and linked is None:
            continue
        password = secrets.token_urlsafe(9)
        if get_user(engine, name) is None:
            add_user(engine, name, role, password, linked)
        else:
            set_password(engine, name, password)
        created.append((name, role, password))
    engine.dispose()
    return created


def register(app: typer.Typer) -> None:
    """Add `serve` and the `users` group to the main CLI (one call)."""
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
