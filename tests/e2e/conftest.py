"""Browser tests: the real app served by `streamlit run`, driven in headless Chromium.

`app_url` starts one Streamlit server per test module on a free port, with an empty model
registry of its own (so it serves the shipped default, as a fresh install would), and stops
it after the module; `start_app` gives `serve_app`, which starts one with any environment (a fresh HOME, say) and its
output in a file of the caller's. `browser` launches Debian's chromium through playwright.
`screenshot_dir` is where the README screenshots go: a temporary folder, unless
SCREENSHOT_DIR names one (`make screenshots` sets it to docs/screenshots on purpose).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mri_core.package import registry
from mri_core.io.errors import MriError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_TIMEOUT_S = 120


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives the real app in a browser (select with -m e2e)")


def _skip_or_fail(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(url: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer {url}/_stcore/health in {SERVER_START_TIMEOUT_S} s:\n"
                f"{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where the README screenshots are written; never docs/screenshots during `make test`."""
    chosen = os.environ.get("SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def serve_app(log_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`streamlit run app.py` on a free port, `env` on top of this process's environment, its
    stdout and stderr together in `log_path`; yields the base URL and stops the server after."""
    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server, log_path)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _require_shipped_default() -> None:
    try:
        registry.default_shipped()
    except MriError as exc:
        _skip_or_fail(f"no shipped default model to serve: {exc}")


@pytest.fixture(scope="session")
def start_app():
    """`serve_app`, for a module that starts its own server (its own environment, its output kept)."""
    _require_shipped_default()
    return serve_app


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> str:
    """Base URL of a running `streamlit run app.py` on the shipped default model."""
    _require_shipped_default()
    mri_home = tmp_path_factory.mktemp("e2e_mri_home")
    log_path = tmp_path_factory.mktemp("e2e_server") / "streamlit.log"
    with serve_app(log_path, {"MRI_HOME": str(mri_home)}) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium under playwright, shared by the session's tests."""
    if not Path(CHROMIUM).exists():
        _skip_or_fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser page on the app, 1280x1000, in its own context."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)  # the first model load imports TensorFlow
    page.goto(app_url)
    try:
        yield page
    finally:
        context.close()
