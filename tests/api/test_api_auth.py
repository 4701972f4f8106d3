"""Sign-in, tokens, the session cookie and user management (API and CLI)."""

from __future__ import annotations

from datetime import timedelta

from conftest import PASSWORD, Prepared, bearer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serving.api.auth import SESSION_COOKIE, authenticate, get_user, issue_token
from serving.store import api_tokens, open_store, users


def test_password_login_gives_a_working_token_and_wrong_passwords_fail(
        client: TestClient) -> None:
    wrong = client.post("/api/auth/token", data={"username": "reg", "password": "nope-nope"})
    assert wrong.status_code == 401 and "密码" in wrong.json()["detail"]
    issued = client.post("/api/auth/token", data={"username": "reg", "password": PASSWORD})
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    assert client.get("/api/me", headers=bearer(token)).json()["role"] == "regulator"
    cookie_client = TestClient(client.app, cookies={SESSION_COOKIE: token})
    assert cookie_client.get("/api/me").json()["username"] == "reg"


def test_secrets_are_stored_hashed_and_expired_tokens_refused(client: TestClient,
                                                              prepared: Prepared) -> None:
    engine = open_store(prepared.settings.database_url)
    principal = get_user(engine, "reg")
    expired = issue_token(engine, principal, ttl=timedelta(seconds=-1))
    assert client.get("/api/me", headers=bearer(expired)).status_code == 401
    with engine.connect() as connection:
        hashes = [r.password_hash for r in connection.execute(users.select())]
        stored_tokens = {r.token_hash for r in connection.execute(api_tokens.select())}
    assert all(h.startswith("$argon2") and PASSWORD not in h for h in hashes)
    assert expired not in stored_tokens and prepared.tokens["regulator"] not in stored_tokens
    assert client.get("/api/me", headers=bearer("made-up")).status_code == 401


def test_admin_manages_users_through_the_api(client: TestClient, prepared: Prepared) -> None:
    admin = bearer(prepared.tokens["admin"])
    no_id = client.post("/api/users", headers=admin,
                        json={"username": "api-insp", "role": "inspector", "password": PASSWORD})
    assert no_id.status_code == 422 and "inspector-id" in no_id.json()["detail"]
    made = client.post("/api/users", headers=admin, json={
        "username": "api-insp", "role": "inspector", "password": PASSWORD,
        "inspector_id": prepared.inspector_id})
    assert made.status_code == 201
    token = client.post("/api/users/api-insp/tokens", headers=admin).json()["access_token"]
    assert client.get("/api/me/list", headers=bearer(token)).status_code == 200
    assert client.delete("/api/users/api-insp", headers=admin).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_users_cli_adds_lists_and_issues_tokens(prepared: Prepared) -> None:
    from serving.cli import app

    runner = CliRunner()
    home = ["--home", str(prepared.settings.home)]
    added = runner.invoke(app, ["users", "add", "cli-reg", "--role", "regulator",
                                "--password-stdin", *home], input=f"{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["users", "add", "cli-reg", "--role", "regulator",
                                "--password-stdin", *home], input=f"{PASSWORD}\n")
    assert again.exit_code == 2 and "already exists" in again.output
    bad_role = runner.invoke(app, ["users", "add", "cli-x", "--role", "boss",
                                   "--password-stdin", *home], input=f"{PASSWORD}\n")
    assert bad_role.exit_code == 2 and "角色无效" in bad_role.output
    listed = runner.invoke(app, ["users", "list", *home])
    assert "cli-reg\tregulator" in listed.output
    token = runner.invoke(app, ["users", "token", "cli-reg", *home]).output.strip()
    engine = open_store(prepared.settings.database_url)
    from serving.api.auth import principal_for_token

    assert principal_for_token(engine, token) == get_user(engine, "cli-reg")
    assert authenticate(engine, "cli-reg", PASSWORD) is not None
