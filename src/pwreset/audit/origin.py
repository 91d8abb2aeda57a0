"""Where the request being served came from, for every audit event it writes (PCI DSS 10.2.2).

The HTTP edge sets it once per request (ops/middleware.py): the client's address, as the trusted
proxies report it (``PWRESET_TRUSTED_PROXIES``, applied by uvicorn's proxy-headers middleware), and
its user agent. After the bearer check, a partner trusted to do so (``api_clients.trusted_origin``)
adds the end customer's address from the ``originating_ip`` header, the header Candescent's APIs
use. :func:`pwreset.audit.service.event_row` reads it, so no service passes it along by hand; work
outside a request (the worker, the command line) has none.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass, replace

from pwreset.kit.text import scrub

USER_AGENT_LENGTH = 256
ORIGINATING_IP_HEADER = "originating_ip"


@dataclass(frozen=True, slots=True)
class Origin:
    ip: str | None
    user_agent: str | None
    originating_ip: str | None = None


current: ContextVar[Origin | None] = ContextVar("pwreset_origin", default=None)


def from_scope(client: tuple[str, int] | None, user_agent: bytes | None) -> Origin:
    agent = scrub(user_agent.decode("latin-1"))[:USER_AGENT_LENGTH] if user_agent else None
    return Origin(ip=client[0][:45] if client else None, user_agent=agent or None)


def parse_ip(value: str) -> str | None:
    """An IPv4 or IPv6 address in its canonical text, or ``None`` when ``value`` is not one."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def add_originating_ip(address: str) -> None:
    """Record the end customer's address on this request's origin (a trusted partner's header)."""
    found = current.get()
    if found is not None:
        current.set(replace(found, originating_ip=address))
