"""Per-app dependencies: the settings and the one engine `create_app` put on `app.state`."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine

from serving.settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was created with (not re-read from the environment per request)."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    """The app's results-store engine: one pool per app, migrated once at start."""
    engine: Engine = request.app.state.engine
    return engine
