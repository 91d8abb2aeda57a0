"""Slow clients are not held forever (issue 12, item 12): a real `pwreset serve`, raw sockets."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.servers import pwreset_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(database_url, tmp_path):
    env = {"PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
           "PWRESET_HEADER_TIMEOUT": "1", "PWRESET_BODY_TIMEOUT": "1"}
    with pwreset_server(env, tmp_path / "serve.log") as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (the socket's own timeout catches a server that
    never does: a hang, not a speed target)."""
    sock.settimeout(30)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_request_whose_headers_never_finish_is_answered_408_and_closed(server):
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: pwreset\r\nX-Slow: ")
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_silent_connection_is_closed(server):
    with socket.create_connection(server) as sock:
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_slow_next_request_on_a_kept_alive_connection_is_closed(server):
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: pwreset\r\n\r\n")
        sock.settimeout(30)
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTT")
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_that_never_arrives_is_answered_408_and_closed(server):
    """The token endpoint reads its form before anything else: it waits for the body."""
    with socket.create_connection(server) as sock:
        sock.sendall(b"POST /oauth2/v1/token HTTP/1.1\r\nHost: pwreset\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ng")
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_request_answered_before_its_body_came_is_closed_without_a_second_answer(server):
    with socket.create_connection(server) as sock:
        sock.sendall(b"PUT /v1/customers/x:reset-password HTTP/1.1\r\nHost: pwreset\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"408" not in answer


def test_an_announced_100_mb_body_is_refused_at_once(server):
    with socket.create_connection(server) as sock:
        sock.sendall(b"POST /oauth2/v1/token HTTP/1.1\r\nHost: pwreset\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 104857600\r\n"
                     b"transactionId: 0f8fad5b-d9cb-469f-a165-70867728950e\r\n\r\ng")
        sock.settimeout(30)
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 4"), head
