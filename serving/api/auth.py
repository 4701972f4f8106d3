"""Users, roles and tokens: who may read which decision.

Classes are internal data ("不公开"), so every request but health, version and the public
publication export carries a principal. Passwords are hashed with argon2 (pwdlib) in the
`users` table; tokens are opaque random strings stored only as their sha256, with an expiry,
in `api_tokens` — a stolen database yields neither a password nor a usable token. The same
token works as `Authorization: Bearer <token>` (other systems) or as the session cookie
(browser pages).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pwdlib import PasswordHash
from sqlalchemy import Engine, delete, select, update

from serving.store import api_tokens, users, utc_now

SESSION_COOKIE = "riskmatrix_session"
DEFAULT_TOKEN_TTL = timedelta(hours=12)
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class Role(StrEnum):
    """Who the service serves: field inspectors, regulators (auditors), administrators."""

    inspector = "inspector"
    regulator = "regulator"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller; `inspector_id` links an inspector to `inspectors.inspector_id`."""

    username: str
    role: Role
    inspector_id: str | None


class AuthError(Exception):
    """A user-management request that cannot be done (message bilingual, zh first)."""


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


def token_digest(token: str) -> str:
    """What the store keeps of a token: its sha256 (tokens are 256-bit random, no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything riskmatrix writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _principal(username: str, role: str, inspector_id: str | None) -> Principal:
    return Principal(username=username, role=Role(role), inspector_id=inspector_id)


# --------------------------------------------------------------------------- user management


def add_user(engine: Engine, username: str, role: Role | str, password: str,
             inspector_id: str | None = None) -> Principal:
    """Create a user; an inspector must name the `inspector_id` whose lists they work."""
    if not _USERNAME.match(username):
        raise AuthError(f"用户名无效 {username!r}: 只能用字母、数字和 _ . @ -, 最多 64 个字符 / "
                        f"invalid username {username!r}: letters, digits, _ . @ -, at most 64")
    try:
        resolved = Role(role)
    except ValueError:
        raise AuthError(f"角色无效 {role!r}, 应为 inspector、regulator 或 admin / invalid role "
                        f"{role!r}: use inspector, regulator or admin") from None
    if resolved is Role.inspector and not inspector_id:
        raise AuthError("检查员用户必须指定 --inspector-id / an inspector user needs "
                        "--inspector-id (the inspectors.inspector_id of their lists)")
    if resolved is not Role.inspector and inspector_id:
        raise AuthError("只有检查员用户才有 inspector-id / only inspector users have an "
                        "inspector-id")
    if len(password) < 8:
        raise AuthError("密码至少 8 个字符 / the password needs at least 8 characters")
    with engine.begin() as connection:
        exists = connection.execute(
            select(users.c.username).where(users.c.username == username)).first()
        if exists is not None:
            raise AuthError(f"用户 {username} 已存在 / user {username} already exists")
        connection.execute(users.insert().values(
            username=username, role=resolved.value, inspector_id=inspector_id,
            password_hash=_hasher().hash(password), active=True, created_at=utc_now()))
    return Principal(username, resolved, inspector_id)


def set_password(engine: Engine, username: str, password: str) -> bool:
    """Replace a user's password (and reactivate them); False when there is no such user."""
    if len(password) < 8:
        raise AuthError("密码至少 8 个字符 / the password needs at least 8 characters")
    with engine.begin() as connection:
        changed = connection.execute(
            update(users).where(users.c.username == username)
            .values(password_hash=_hasher().hash(password), active=True)).rowcount
    return bool(changed)


def get_user(engine: Engine, username: str) -> Principal | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(users.c.username, users.c.role, users.c.inspector_id)
            .where(users.c.username == username, users.c.active.is_(True))).first()
    return None if row is None else _principal(row.username, row.role, row.inspector_id)


def list_users(engine: Engine) -> list[Principal]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(users.c.username, users.c.role, users.c.inspector_id)
            .where(users.c.active.is_(True)).order_by(users.c.username)).all()
    return [_principal(r.username, r.role, r.inspector_id) for r in rows]


def deactivate_user(engine: Engine, username: str) -> bool:
    """Disable a user and revoke every token they hold; False when there is no such user."""
    with engine.begin() as connection:
        changed = connection.execute(
            update(users).where(users.c.username == username).values(active=False)).rowcount
        connection.execute(delete(api_tokens).where(api_tokens.c.username == username))
    token_cache(engine).forget(username=username)
    return bool(changed)


# --------------------------------------------------------------------------- login and tokens


def authenticate(engine: Engine, username: str, password: str) -> Principal | None:
    """The user when the password matches (argon2), else None (same answer for an unknown
    user, so a caller cannot probe which usernames exist)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(users.c.username, users.c.role, users.c.inspector_id, users.c.password_hash)
            .where(users.c.username == username, users.c.active.is_(True))).first()
    if row is None:
        _hasher().hash(password)  # spend the same time as a real check
        return None
    if not _hasher().verify(password, row.password_hash):
        return None
    return _principal(row.username, row.role, row.inspector_id)


def issue_token(engine: Engine, principal: Principal, ttl: timedelta | None = None) -> str:
    """A new opaque bearer token for `principal`, valid for `ttl` (default 12 hours)."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    with engine.begin() as connection:
        connection.execute(api_tokens.insert().values(
            token_hash=token_digest(token), username=principal.username, issued_at=now,
            expires_at=now + (ttl or DEFAULT_TOKEN_TTL)))
    return token


def revoke_token(engine: Engine, token: str) -> None:
    digest = token_digest(token)
    with engine.begin() as connection:
        connection.execute(delete(api_tokens).where(api_tokens.c.token_hash == digest))
    token_cache(engine).forget(digest=digest)


def _token_holder(engine: Engine, digest: str) -> tuple[Principal, datetime] | None:
    """The active user holding the token with sha256 `digest`, and when the token expires."""
    query = (select(users.c.username, users.c.role, users.c.inspector_id,
                    api_tokens.c.expires_at)
             .join(users, users.c.username == api_tokens.c.username)
             .where(api_tokens.c.token_hash == digest, users.c.active.is_(True)))
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return _principal(row.username, row.role, row.inspector_id), _aware(row.expires_at)


def principal_for_token(engine: Engine, token: str) -> Principal | None:
    """The active user holding the unexpired `token`, else None (always asks the store)."""
    found = _token_holder(engine, token_digest(token))
    if found is None or found[1] <= utc_now():
        return None
    return found[0]


# --------------------------------------------------------------------------- token cache

# How long a token's holder is remembered by one process. Revoking a token or deactivating a
# user through this process (API, pages) takes effect at once; through another process (the
# `users` CLI, another service worker) within this many seconds. Expiry is checked on every
# request against the remembered expiry time.
TOKEN_CACHE_SECONDS = 2.0
TOKEN_CACHE_ENTRIES = 10_000


@dataclass
class TokenCache:
    """Token digest → (holder, expiry, when looked up) for one engine, so a signed-in read
    does not query the users and tokens tables every time."""

    ttl: float = TOKEN_CACHE_SECONDS
    entries: dict[str, tuple[Principal, datetime, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def peek(self, digest: str) -> tuple[Principal | None] | None:
        """(holder or None when expired,) if remembered and fresh; None when the store must
        be asked."""
        found = self.entries.get(digest)
        if found is None or time.monotonic() - found[2] > self.ttl:
            return None
        principal, expires_at, _ = found
        return (principal if expires_at > utc_now() else None,)

    def remember(self, digest: str, principal: Principal, expires_at: datetime) -> None:
        with self.lock:
            if len(self.entries) >= TOKEN_CACHE_ENTRIES:
                self.entries.clear()
            self.entries[digest] = (principal, expires_at, time.monotonic())

    def forget(self, *, digest: str | None = None, username: str | None = None) -> None:
        with self.lock:
            if digest is not None:
                self.entries.pop(digest, None)
            if username is not None:
                for key in [k for k, v in self.entries.items() if v[0].username == username]:
                    del self.entries[key]


_TOKEN_CACHES: weakref.WeakKeyDictionary[Engine, TokenCache] = weakref.WeakKeyDictionary()
_TOKEN_CACHES_LOCK = threading.Lock()


def token_cache(engine: Engine) -> TokenCache:
    """The token cache of `engine` in this process."""
    with _TOKEN_CACHES_LOCK:
        cache = _TOKEN_CACHES.get(engine)
        if cache is None:
            cache = _TOKEN_CACHES[engine] = TokenCache()
        return cache


def cached_principal_for_token(engine: Engine, token: str) -> Principal | None:
    """`principal_for_token` remembered for `TOKEN_CACHE_SECONDS` (see the token cache)."""
    digest = token_digest(token)
    cache = token_cache(engine)
    remembered = cache.peek(digest)
    if remembered is not None:
        return remembered[0]
    found = _token_holder(engine, digest)
    if found is None:
        return None  # unknown tokens are not remembered: a new token works at once
    cache.remember(digest, *found)
    return found[0] if found[1] > utc_now() else None


# --------------------------------------------------------------------------- FastAPI dependencies


def request_token(request: Request) -> str | None:
    """The bearer token of the request, else its session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie or None


def optional_principal(request: Request) -> Principal | None:
    """The caller, or None when the request carries no valid token (pages redirect on None)."""
    token = request_token(request)
    if token is None:
        return None
    return cached_principal_for_token(request.app.state.engine, token)


def _not_signed_in() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="未登录或令牌已失效 / not signed in, or the token is invalid or expired",
        headers={"WWW-Authenticate": "Bearer"})


def current_principal(request: Request) -> Principal:
    """The caller; 401 (with a bilingual detail) when the token is missing, unknown or expired."""
    principal = optional_principal(request)
    if principal is None:
        raise _not_signed_in()
    return principal


async def current_principal_async(request: Request) -> Principal:
    """`current_principal` for async endpoints: a remembered token costs no thread; only a
    store lookup goes to the thread pool."""
    token = request_token(request)
    if token is None:
        raise _not_signed_in()
    engine = request.app.state.engine
    remembered = token_cache(engine).peek(token_digest(token))
    if remembered is not None:
        principal = remembered[0]
    else:
        principal = await run_in_threadpool(cached_principal_for_token, engine, token)
    if principal is None:
        raise _not_signed_in()
    return principal


def require_roles(*roles: Role) -> Callable[..., Principal]:
    """A dependency that returns the caller when their role is one of `roles`, else 403."""
    allowed = frozenset(roles)

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status_code=403,
                detail=f"无权访问, 需要角色: {names} / forbidden: this needs the role {names}")
        return principal

    return dependency
