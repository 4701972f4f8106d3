"""The fast read path keeps the promises of the slow one: every answered read is already on
the audit chain, concurrent reads share commits without forking the chain (also across
processes), the remembered token honours revocation and expiry, and a decision remembered
for one reader is never shown to an inspector it is not listed for."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from conftest import Prepared, bearer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message

from serving.api import decisions
from serving.api.auth import (
    SESSION_COOKIE,
    Principal,
    Role,
    get_user,
    issue_token,
    revoke_token,
    token_cache,
)
from serving.audit import records, verify_chain
from serving.store import open_store

READER = Principal("reg", Role.regulator, None)


@pytest.fixture()
def fresh_store(tmp_path: Path) -> Iterator[str]:
    """An empty results store of its own (these tests count every record of the chain)."""
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    open_store(url).dispose()
    yield url


def _app(client: TestClient) -> FastAPI:
    return cast(FastAPI, client.app)


def _trail(url: str, entity: str) -> int:
    return len(records(open_store(url), entity=entity, limit=10_000))


def test_a_read_is_answered_only_after_its_record_is_committed(
        client: TestClient, prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own event order: the commit of the read record comes before the first byte
    of the answer, on the route (first read) and on the remembered path (second read)."""
    app = _app(client)
    uscc = prepared.off_list
    token = prepared.tokens["regulator"].encode()
    events: list[str] = []
    original = decisions.ReadRecorder.append

    def logged(self: decisions.ReadRecorder, entries: list) -> None:
        original(self, entries)
        events.extend(f"committed {e.entity}" for e in entries)

    monkeypatch.setattr(decisions.ReadRecorder, "append", logged)

    async def read() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": f"/api/enterprises/{uscc}",
                 "raw_path": f"/api/enterprises/{uscc}".encode(), "query_string": b"",
                 "root_path": "", "headers": [(b"authorization", b"Bearer " + token)],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                events.append(f"answered {message['status']}")

        await app(scope, receive, send)
        await asyncio.sleep(0.05)  # a record committed late would show up here

    app.state.cache.clear()
    for attempt in ("route (first read)", "remembered decision"):
        events.clear()
        asyncio.run(read())
        assert events == [f"committed {uscc}", "answered 200"], attempt


def test_a_read_whose_record_cannot_be_written_is_not_answered(
        client: TestClient, prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    def broken(self: decisions.ReadRecorder, entries: list) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    uscc = prepared.off_list
    headers = bearer(prepared.tokens["regulator"])
    assert client.get(f"/api/enterprises/{uscc}", headers=headers).status_code == 200
    monkeypatch.setattr(decisions.ReadRecorder, "append", broken)
    quiet = TestClient(client.app, raise_server_exceptions=False)
    response = quiet.get(f"/api/enterprises/{uscc}", headers=headers)
    assert response.status_code == 500 and uscc not in response.text


def test_remembered_answers_equal_the_route_and_respect_inspector_lists(
        client: TestClient, prepared: Prepared) -> None:
    regulator = bearer(prepared.tokens["regulator"])
    inspector = bearer(prepared.tokens["inspector"])
    engine = open_store(prepared.settings.database_url)
    before = len(records(engine, entity=prepared.off_list, limit=10_000))
    _app(client).state.cache.clear()
    first = client.get(f"/api/enterprises/{prepared.off_list}", headers=regulator)
    again = client.get(f"/api/enterprises/{prepared.off_list}", headers=regulator)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    # remembered for the regulator, still refused to an inspector it is not listed for
    assert client.get(f"/api/enterprises/{prepared.off_list}",
                      headers=inspector).status_code == 403
    assert client.get(f"/api/enterprises/{prepared.off_list.lower()}",
                      headers=inspector).status_code == 403
    for _ in range(2):
        assert client.get(f"/api/enterprises/{prepared.on_list}",
                          headers=inspector).status_code == 200
    assert client.get(f"/api/enterprises/{prepared.off_list}").status_code == 401
    browser = TestClient(_app(client), cookies={SESSION_COOKIE: prepared.tokens["regulator"]})
    assert [browser.get(f"/api/enterprises/{prepared.off_list}").content
            for _ in range(2)] == [first.content] * 2
    trail = records(engine, entity=prepared.off_list, limit=10_000)[before:]
    assert [r.payload["reader"] for r in trail] == ["reg"] * 4  # refused reads: no record


def test_revocation_and_expiry_are_honoured_by_the_token_cache(
        client: TestClient, prepared: Prepared) -> None:
    engine = _app(client).state.engine
    principal = get_user(engine, "reg")
    assert principal is not None
    path = f"/api/enterprises/{prepared.off_list}"
    # revoked through the app's own engine (API logout, pages): refused at once
    token = issue_token(engine, principal)
    assert client.get(path, headers=bearer(token)).status_code == 200
    revoke_token(engine, token)
    assert client.get(path, headers=bearer(token)).status_code == 401
    # revoked by another process (the CLI): refused once the short TTL has passed
    cache = token_cache(engine)
    cache.ttl = 0.2
    try:
        token = issue_token(engine, principal)
        assert client.get(path, headers=bearer(token)).status_code == 200
        revoke_token(open_store(prepared.settings.database_url), token)
        time.sleep(0.3)
        assert client.get(path, headers=bearer(token)).status_code == 401
    finally:
        cache.ttl = 2.0
    # expiry is checked on every request, remembered or not
    short = issue_token(engine, principal, ttl=timedelta(seconds=0.5))
    assert client.get(path, headers=bearer(short)).status_code == 200
    time.sleep(0.6)
    assert client.get(path, headers=bearer(short)).status_code == 401


def test_concurrent_async_reads_share_one_commit(fresh_store: str) -> None:
    engine = open_store(fresh_store)
    recorder = decisions.ReadRecorder(engine)

    async def burst() -> None:
        await asyncio.gather(*[recorder.record_async(decisions.read_entry(
            READER, f"E{k}", "enterprise")) for k in range(32)])

    asyncio.run(burst())
    assert recorder.commits == 1
    assert len(records(engine, limit=100)) == 32 and verify_chain(engine).ok


def test_concurrent_sync_reads_are_grouped_and_all_recorded(fresh_store: str) -> None:
    engine = open_store(fresh_store)
    recorder = decisions.ReadRecorder(engine)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: recorder.record(decisions.read_entry(READER, f"E{k}", "list")),
                      range(64)))
    assert len(records(engine, limit=100)) == 64 and verify_chain(engine).ok
    assert recorder.commits < 64


APPENDER = textwrap.dedent("""
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from serving.api.auth import Principal, Role
    from serving.api.decisions import record_read
    from serving.store import create_store_engine
    engine = create_store_engine(sys.argv[1])
    reader = Principal(sys.argv[2], Role.regulator, None)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: record_read(engine, reader, f"E{k}", "enterprise"), range(150)))
""")


def test_two_processes_append_reads_to_one_unbroken_chain(fresh_store: str) -> None:
    """What several service workers do: SQLite's write lock orders their group commits."""
    root = Path(__file__).resolve().parents[2]
    workers = [subprocess.Popen([sys.executable, "-c", APPENDER, fresh_store, name], cwd=root)
               for name in ("worker-1", "worker-2")]
    assert [w.wait(120) for w in workers] == [0, 0]
    engine = open_store(fresh_store)
    trail = records(engine, limit=1000)
    assert len(trail) == 300 and [r.seq for r in trail] == list(range(1, 301))
    assert {r.payload["reader"] for r in trail} == {"worker-1", "worker-2"}
    assert verify_chain(engine).ok


def test_the_read_trail_wal_is_rewound_without_losing_a_record(fresh_store: str) -> None:
    """Under reads without pause a PASSIVE checkpoint never catches up with the commits and
    SQLite never rewinds the WAL (it grew by gigabytes in a benchmark); the recorder's
    RESTART checkpoint makes the next commit write from the file's start again."""
    import sqlite3

    engine = open_store(fresh_store)
    recorder = decisions.ReadRecorder(engine)

    def batch(tag: str) -> list[decisions.AuditEntry]:
        return [decisions.read_entry(READER, f"{tag}{k}", "enterprise") for k in range(20)]

    reader = sqlite3.connect(fresh_store.removeprefix("sqlite:///"), isolation_level=None)

    def pin() -> None:  # a reader's snapshot: what a commit during a checkpoint amounts to
        reader.execute("COMMIT") if reader.in_transaction else None
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM audit_log").fetchone()

    recorder.append(batch("a"))
    pin()
    recorder.append(batch("b"))
    before = recorder._checkpoint()
    pin()
    recorder.append(batch("c"))
    grown = recorder._checkpoint()
    assert grown > before  # checkpoints that never catch up: the WAL only grows
    started = time.monotonic()
    recorder._rewind_wal()  # a reader holds on: gives up quickly, nothing lost
    assert time.monotonic() - started < 5
    reader.execute("COMMIT")
    recorder.append(batch("d"))
    recorder._rewind_wal()
    recorder.append(batch("e"))
    assert recorder._checkpoint() < before
    trail = records(engine, limit=1000)
    assert len(trail) == 100 and [r.seq for r in trail] == list(range(1, 101))
    assert verify_chain(engine).ok
    reader.close()


def test_the_served_app_answers_reads_from_decisions_loaded_before_the_first_request(
        client: TestClient, prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    """`riskmatrix serve`'s app: the run's decisions are ready before any read (no first
    reader waits for its firm's decision to be built), the fast lane sits in front of the
    whole app and answers exactly what the route answers, recording the read."""
    import gc

    from serving.api import app as app_module
    from serving.api import cache as cache_module

    monkeypatch.setattr(cache_module, "DECISION_CACHE_ENTRIES", 3)
    served = app_module.create_served_app(prepared.settings)
    gc.unfreeze()
    inner = served.fastapi_app  # type: ignore[attr-defined]
    engine = open_store(prepared.settings.database_url)
    first_three = sorted(inner.state.cache._decisions)
    assert len(first_three) == 3 and all(
        inner.state.cache.cached_decision(u) is not None for u in first_three)
    uscc = first_three[0]
    before = _trail(prepared.settings.database_url, uscc)
    headers = bearer(prepared.tokens["regulator"])
    with TestClient(served) as served_client:
        answer = served_client.get(f"/api/enterprises/{uscc}", headers=headers)
        assert served_client.get("/api/health").status_code == 200
    assert answer.status_code == 200
    assert answer.content == client.get(f"/api/enterprises/{uscc}", headers=headers).content
    trail = records(engine, entity=uscc, limit=10_000)[before:]
    assert [r.payload["reader"] for r in trail] == ["reg", "reg"]
