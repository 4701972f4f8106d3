"""Fixtures and helpers of the web tests (imported by module name, like
tests/serving/serving_champion.py): the pages over a live uvicorn server on a free loopback
port, driven by Debian's chromium through Playwright.

The prepared home (champion, one nightly run, a drawn and staffed campaign, one user per role)
is the one `tests/api/conftest.py` builds; it is loaded here by path so both suites build it
the same way. On top of it a small project model is trained and made champion so the matrix
pages have placements to show.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TABLET = {"width": 1024, "height": 768}
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The committed screenshots are refreshed on request only, so a test run leaves the tree clean:
#   RISKMATRIX_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/web/test_browser.py
SCREENSHOTS = (DOC_SCREENSHOTS if os.environ.get("RISKMATRIX_UPDATE_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "riskmatrix-screenshots")


def _api_conftest() -> Any:
    """tests/api/conftest.py under a name of its own (two conftest modules cannot share one)."""
    name = "riskmatrix_api_test_home"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "api" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


API = _api_conftest()
PASSWORD: str = API.PASSWORD
prepared = API.prepared  # the session fixture itself: same build as the API tests


def _train_project_champion(settings: Any) -> str:
    """A small management model (few trees, low positive floor: the district has few sites)
    registered as the project model's champion; returns its version."""
    from dataclasses import replace

    from features.project_features import build_project_features
    from serving.cli_project import (
        CHAMPION_ALIAS,
        EXPERIMENT,
        REGISTERED_NAME,
        ProjectRunOptions,
        training_config,
    )
    from serving.scoring import load_context
    from training.project_backtest import log_project_model, train_project_model
    from training.registry import configure_mlflow, set_alias

    context = load_context(settings)
    config = training_config(context.policy, ProjectRunOptions(threads=1))
    config = replace(config, min_training_positives=5, calibration_months=6,
                     classifier_params={**config.classifier_params, "n_estimators": 20,
                                        "min_child_samples": 5})
    configure_mlflow(settings.home, settings.mlflow_uri)
    fold = train_project_model(context.snapshot, context.as_of, config)
    registered = log_project_model(
        fold, experiment=EXPERIMENT, registered_name=REGISTERED_NAME,
        policy_version=context.policy.version, policy_hash=context.policy.content_hash,
        input_example=build_project_features(context.snapshot, context.as_of).head(5))
    set_alias(REGISTERED_NAME, CHAMPION_ALIAS, str(registered.version))
    return str(registered.version)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Site:
    """A running server over the prepared home."""

    url: str
    home: Any  # tests/api's Prepared
    project_model_version: str


@pytest.fixture(scope="session")
def site(prepared: Any) -> Iterator[Site]:
    import uvicorn

    from serving.api.app import create_app

    version = _train_project_champion(prepared.settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(prepared.settings), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="riskmatrix-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("测试服务器未能启动 / the test server did not start")
        time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{port}", prepared, version)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium_missing_reason() -> str | None:
    """Why browser tests cannot run here, or None. Under CI a missing browser is a failure:
    .ci/chromium.sh installs it, so its absence means CI is broken, not skippable."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return None
    reason = (f"{CHROMIUM} 不存在 (Debian 的 chromium 未安装, 运行 bash .ci/chromium.sh) / "
              f"{CHROMIUM} not found: Debian's chromium is not installed (run bash "
              ".ci/chromium.sh)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    return reason


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = chromium_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def tablet(browser: Any) -> Iterator[Any]:
    """A fresh tablet-sized browser context (own cookies) per test."""
    context = browser.new_context(viewport=TABLET, device_scale_factor=1, locale="zh-CN",
                                  has_touch=True)
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Any, name: str, full_page: bool = False) -> Path:
    """Save a PNG of what the tablet shows (or the whole page): under docs/screenshots/ when
    RISKMATRIX_UPDATE_SCREENSHOTS=1, else in a temporary folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page: Any, site: Site, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{site.url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form.login button[type=submit]")
    page.wait_for_load_state("domcontentloaded")

