"""Browser tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``) against a real ``pwreset serve``.

The server runs as an operator starts it, on PostgreSQL and Redis when they are up (SQLite otherwise), with
its email provider pointed at an SMTP server these tests start. A test that fails leaves a screenshot of
every page it had open in ``test-results/screenshots/`` (``PWRESET_SCREENSHOTS`` moves it). Without
Chromium the tests are skipped on a laptop; in CI (``CI=true``) a missing Chromium fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import (
    POSTGRES_ADMIN_URL,
    POSTGRES_UP,
    REDIS_UP,
    REQUIRE_SERVICES,
    TEST_SECRET_KEY,
    WORKER,
    _admin,
)
from tests.servers import REPO_ROOT, free_port, server

CHROMIUM = os.environ.get("PWRESET_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("PWRESET_SCREENSHOTS", REPO_ROOT / "test-results" / "screenshots"))
PORTAL_INSTITUTION = "07675"
REPRESENTATIVE = "partners@bank.example"
BROWSER_REDIS = f"redis://127.0.0.1:6379/{14 - 2 * WORKER}"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists() or REQUIRE_SERVICES:  # in CI a missing Chromium fails the tests
        return
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"))


@dataclass
class Mailbox:
    """What the test's SMTP server received, waited on with a condition (no sleeping)."""

    messages: list[EmailMessage] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()
        return "250 2.0.0 Ok: queued"

    def wait_for(self, to: str, subject: str, timeout: float = 15.0) -> EmailMessage:
        """The first message to ``to`` whose subject contains ``subject``, once it has arrived."""
        def found() -> EmailMessage | None:
            return next((m for m in self.messages if to in str(m["To"]) and subject in str(m["Subject"])), None)
        with self.changed:
            if not self.changed.wait_for(lambda: found() is not None, timeout=timeout):
                subjects = [str(m["Subject"]) for m in self.messages]
                raise AssertionError(f"no email to {to} about {subject!r}; got {subjects}")
            message = found()
            assert message is not None
            self.messages.remove(message)
            return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture(scope="session")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


async def _prepare(url: str) -> None:
    from pwreset.config import Settings
    from pwreset.container import build_container
    from pwreset.institutions.service import create_institution

    services = build_container(Settings(database_url=url, secret_key=TEST_SECRET_KEY, _env_file=None))  # type: ignore[call-arg]
    try:
        async with services.db.transaction() as session:
            await create_institution(session, institution_id=PORTAL_INSTITUTION, name="First Harbor Credit Union",
                                     clock=services.clock)
    finally:
        await services.close()


@dataclass(frozen=True)
class Served:
    base: str  # http://localhost:port
    env: dict[str, str]  # the server's settings, for commands run beside it (pwreset portal ...)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pwreset", *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[Mailbox, int]) -> Iterator[Served]:
    """``pwreset serve`` with the portal, on its own database."""
    here = tmp_path_factory.mktemp("portal")
    with scratch_database("pwreset_browser", here) as url:
        asyncio.run(_prepare(url))
        yield from _serve_portal(url, here, mailbox)


def _serve_portal(url: str, here: Path, mailbox: tuple[Mailbox, int]) -> Iterator[Served]:
    if REDIS_UP:  # this server's own Redis database: counters of an earlier run must not carry over
        import redis

        redis.Redis.from_url(BROWSER_REDIS).flushdb()
    port = free_port()
    env = {
        "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
        "PWRESET_PORTAL_INSTITUTION_ID": PORTAL_INSTITUTION, "PWRESET_PUBLIC_URL": f"http://localhost:{port}",
        "PWRESET_PORTAL_REPRESENTATIVE_EMAIL": REPRESENTATIVE, "PWRESET_EMAIL_PROVIDER": "smtp",
        "PWRESET_SMTP_HOST": "127.0.0.1", "PWRESET_SMTP_PORT": str(mailbox[1]), "PWRESET_SMTP_SECURITY": "none",
        "PWRESET_EMAIL_FROM": "portal@bank.example", "PWRESET_ARGON2_MEMORY_KIB": "1024",
        "PWRESET_ARGON2_TIME_COST": "1", "PWRESET_LOG_JSON": "false",
        "PWRESET_REDIS_URL": BROWSER_REDIS if REDIS_UP else "",
    }
    with server(["pwreset", "serve"], env, here / "server.log", port=port) as base:
        yield Served(base.replace("127.0.0.1", "localhost"), env)


@contextlib.contextmanager
def scratch_database(prefix: str, here: Path) -> Iterator[str]:
    """A migrated database of its own for one server (PostgreSQL when it answers, else a SQLite file); its URL."""
    from pwreset.migrate import upgrade

    pg_name = f"{prefix}_{os.getpid()}"
    if POSTGRES_UP:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{pg_name}"'))
        asyncio.run(_admin(f'CREATE DATABASE "{pg_name}"'))
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name
    else:
        url = f"sqlite:///{here / (prefix + '.db')}"
    upgrade(url)
    try:
        yield url
    finally:
        if POSTGRES_UP:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def portal(served: Served) -> str:
    return served.base


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium for one module. Not for the session: Playwright's sync API keeps an event loop running on
    this thread while it is open, and every asyncio test after it would fail to start its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def browse(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """New browser contexts (a developer each); screenshots of their pages are kept if the test fails."""
    contexts: list[Any] = []

    def new(**options: Any) -> Any:
        context = chromium.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield new
    if request.node.stash.get(_FAILED, False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for c, context in enumerate(contexts):
            for p, page in enumerate(context.pages):
                name = re.sub(r"[^\w.-]", "_", request.node.name)
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{c}-{p}.png"), full_page=True)
    for context in contexts:
        context.close()


def assert_accessible(page: Any) -> None:
    """axe-core finds no WCAG 2.2 AA violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG}, "resultTypes": ["violations"]})
    problems = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                for v in results.response["violations"]]
    assert not problems, f"{page.url}:\n" + "\n".join(problems)


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@partner.example"


def link_in(text: str) -> str:
    found = re.search(r"http://localhost:\d+/portal/verify\?token=\S+", text)
    assert found, text
    return found.group(0)


def have_newman() -> str:
    """newman's path; skipped on a laptop without it, a failure in CI (``.ci/run`` installs it)."""
    found = shutil.which("newman")
    if found is None:
        if REQUIRE_SERVICES:
            pytest.fail("newman is not installed (npm install --global newman; .ci/run does)")
        pytest.skip("newman is not installed (npm install --global newman)")
    return found


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll a condition another process makes true (the delivery worker), with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)
