"""The enterprise read's fast lane: a remembered token, permission and decision answered
before FastAPI's routing and dependency machinery.

`GET /api/enterprises/{uscc}` is the call other systems and inspectors make most; at
concurrency 32 on 2 cores the framework's per-request work (routing, dependency solving,
response building: ~0.2 ms) was most of the cost. This ASGI middleware serves only the case
where everything is already in memory — the token holder (`auth.TokenCache`), the inspector's
targets and the serialised decision (`ServiceCache`) — with the same permission rule
(`routes._cached_enterprise_view`), the same audit record (`decisions.record_read_async`,
committed before the answer leaves) and the same body as the route. Anything else (a miss, a
refusal, an odd path) falls through to the route, so errors have one implementation.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/api/enterprises/"
# The route's own path rule (1–18 characters) for plain codes; anything else takes the route.
PLAIN_CODE = re.compile(r"^[0-9A-Za-z]{1,18}$")


def _token(scope: Scope) -> str | None:
    """The bearer token, else the session cookie (as `auth.request_token` reads them)."""
    from serving.api.auth import SESSION_COOKIE

    cookie_header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"cookie":
            cookie_header = value.decode("latin-1")
    if cookie_header is None:
        return None
    from starlette.requests import cookie_parser

    return cookie_parser(cookie_header).get(SESSION_COOKIE) or None


class EnterpriseReadFastPath:
    """ASGI middleware; `app` is the rest of the stack (FastAPI's router)."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET"
                or not scope["path"].startswith(PREFIX) or scope.get("query_string")):
            await self.app(scope, receive, send)
            return
        body = await self._answer(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode("latin-1")),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        """The decision's body once its read is recorded; None when the route must answer."""
        from serving.api import decisions
        from serving.api.auth import token_cache, token_digest
        from serving.api.routes import _cached_enterprise_view

        raw = scope["path"][len(PREFIX):]
        token = _token(scope)
        if not PLAIN_CODE.match(raw) or token is None:
            return None
        state = self.fastapi_app.state
        remembered = token_cache(state.engine).peek(token_digest(token))
        if remembered is None or remembered[0] is None:
            return None
        principal = remembered[0]
        uscc = raw.upper()
        try:
            view = _cached_enterprise_view(state.cache, principal, uscc)
        except HTTPException:
            return None
        if view is None:
            return None
        await decisions.record_read_async(state.engine, principal, uscc, "enterprise",
                                          run_id=view.run_id, as_of=view.as_of)
        return view.body
