"""Real server processes for tests that cross process boundaries."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


REPO_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], log: Path, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *args, "--port", str(port)], env={**os.environ, **env}, cwd=REPO_ROOT,
            stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pwreset_server(env: dict[str, str], log: Path) -> contextlib.AbstractContextManager[str]:
    """``pwreset serve``, as an operator starts it."""
    return server(["pwreset", "serve"], env, log)


def probe_server(env: dict[str, str], log: Path) -> contextlib.AbstractContextManager[str]:
    """The real app plus the bearer-protected probe routes of ``tests/support.py``."""
    return server(["uvicorn", "tests.apps:probe_app", "--factory", "--log-level", "warning"], env, log)
