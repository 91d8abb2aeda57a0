"""What every server-rendered page needs of a form: reading the body, the CSRF token, the caller's address.

Shared by the developer portal (``portal/``) and the hosted reset page (``web/``).

- :func:`read_form`: a small, well-formed, storable ``application/x-www-form-urlencoded`` body, or
  :class:`BadForm` (never a 500, whatever bytes arrive).
- :class:`SignedCSRF`: WTForms' documented CSRF extension point (``wtforms.csrf.core.CSRF``) rather than its
  ``SessionCSRF``, which compares with ``!=`` and fails with a KeyError when the session lacks its secret:
  the token is an HMAC-SHA256, under a key the page derives from the service's secret key (one per page
  family, so a portal token is no reset-page token), of the browser's CSRF cookie (a random value) and an
  expiry, compared in constant time (decision 0011).
- :func:`address_key`: what per-address limits count by.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import Request
from wtforms import Form
from wtforms.csrf.core import CSRF
from wtforms.validators import ValidationError

from pwreset.kit.text import storable

FORM_LIMIT = 16 * 1024
TOKEN_LIFETIME = 4 * 3600
EXPIRED = "This form has expired. Reload the page and try again."


class BadForm(Exception):
    """A body that is not a small, well-formed, storable HTML form."""


async def read_form(request: Request, *, limit: int = FORM_LIMIT) -> FormData:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadForm("send the form as application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadForm("the form is too large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BadForm("the form is too large")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadForm("the form could not be read") from None
    if not all(storable(k) and storable(v) for k, v in pairs):
        raise BadForm("the form holds characters that cannot be stored")
    form_pairs: list[tuple[str, str | Any]] = list(pairs)
    return FormData(form_pairs)


def address_key(host: str) -> str:
    """What per-address limits count by: an IPv4 address, or an IPv6 address's /64 network (one customer
    line gets a whole /64, so counting single IPv6 addresses would give it 2^64 allowances)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def csrf_binding(request: Request, cookie: str) -> str:
    """The browser's CSRF cookie (a random value this service set), or a new one to set."""
    value = request.cookies.get(cookie, "")
    if len(value) == 43 and value.replace("-", "").replace("_", "").isalnum():
        return value
    return str(getattr(request.state, "csrf_binding", None) or secrets.token_urlsafe(32))


class SignedCSRF(CSRF):  # type: ignore[misc]
    """``expires.hmac`` bound to the browser's CSRF cookie; ``csrf_context`` is ``(key, cookie)``."""

    message = EXPIRED

    def setup_form(self, form: Any) -> Any:
        self.key, self.binding = form.meta.csrf_context
        self.message = getattr(form.meta, "csrf_message", EXPIRED)
        return super().setup_form(form)

    def _mac(self, expires: str) -> str:
        return hmac.new(self.key, f"portal-csrf\x00{self.binding}\x00{expires}".encode(), hashlib.sha256).hexdigest()

    def generate_csrf_token(self, csrf_token_field: Any) -> str:
        expires = str(int(time.time()) + TOKEN_LIFETIME)
        return f"{expires}.{self._mac(expires)}"

    def validate_csrf_token(self, form: Any, field: Any) -> None:
        expires, _, mac = str(field.data or "").partition(".")
        if not (self.binding and expires.isdigit() and len(expires) < 12
                and hmac.compare_digest(mac.encode(), self._mac(expires).encode())):
            raise ValidationError(self.message)
        if int(expires) < time.time():
            raise ValidationError(self.message)


class CSRFForm(Form):  # type: ignore[misc]
    class Meta:
        csrf = True
        csrf_class = SignedCSRF
        csrf_field_name = "csrf_token"
