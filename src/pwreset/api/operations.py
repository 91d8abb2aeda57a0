"""Declared operations: each route states its family, scopes and shapes once.

An :class:`Operation` is served under both URL styles of contract section 1, documented in
``/openapi.json``, and wrapped by :func:`endpoint`, which checks the bearer token and its scopes,
checks and echoes the family's tracing header, and renders every error in the family's shape.
Handlers stay thin: parse, call one service function, map the result.

Starlette rather than FastAPI: FastAPI's per-request dependency and serialisation machinery costs
more than the whole bearer check (docs/decisions/0001-starlette.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pwreset.access.principal import BearerInvalid, Principal
from pwreset.audit import origin
from pwreset.db import is_outage
from pwreset.errors import Family, PwresetError, Unavailable, json_response, render
from pwreset.kit.text import all_storable
from pwreset.ops.metrics import DEPENDENCY_UNAVAILABLE
from pwreset.ratelimit.limiter import address_subject

if TYPE_CHECKING:
    from pwreset.container import Container

log = logging.getLogger("pwreset.api")
T = TypeVar("T")

#: URL prefixes of the digitalbanking style, by family (contract section 1).
PORTAL_PREFIX = {
    Family.OAUTH2: "/digitalbanking",
    Family.UX_USERS: "/digitalbanking/ux-users",
    Family.DB_ACCOUNTS: "/digitalbanking/db-accounts",
    Family.DB_USERS: "/digitalbanking/db-users",
}
#: Other spellings published clients use (wire contract section 1), each served as the route it
#: stands for: the older staging prefix, and the family prefix on the gateway host, which the current
#: spec writes for contact methods (``/ux-users/v1/customers/{customerId}/contact-methods``).
ALIASES = (
    ("/digitalbanking/stage/", "/digitalbanking/"),
    ("/ux-users/v1/", "/digitalbanking/ux-users/v1/"),
    ("/db-accounts/v1/", "/digitalbanking/db-accounts/v1/"),
    ("/db-users/v1/", "/digitalbanking/db-users/v1/"),
)


def canonical_path(path: str) -> str:
    """The path of the route an alias stands for (itself when it is none)."""
    for alias, target in ALIASES:
        if path.startswith(alias):
            return target + path[len(alias):]
    return path


#: The tracing header each family requires, and the name it is echoed under.
TRACE_HEADER = {
    Family.OAUTH2: "transactionId",
    Family.UX_USERS: "correlationId",
    Family.DB_ACCOUNTS: "transactionId",
    Family.DB_USERS: "transactionId",
}
MAX_TRANSACTION_ID = 64
#: What the family's tracing-header check can refuse (even where the header is optional, a bad one is).
_TRACE_ERRORS = {
    Family.OAUTH2: ("oauth.invalid_transaction_id",),
    Family.UX_USERS: ("request.missing_correlation_id", "request.invalid_correlation_id"),
    Family.DB_ACCOUNTS: ("request.missing_transaction_id", "request.transaction_id_too_long"),
    Family.DB_USERS: ("request.missing_transaction_id", "request.transaction_id_too_long"),
}
MAX_JSON_BODY = 64 * 1024


class InvalidBody(PwresetError):
    key = "request.invalid_body"
    message = "request body is malformed or fails validation"


class InvalidTransactionId(PwresetError):
    key = "oauth.invalid_transaction_id"
    message = "transactionId header is missing or not a UUID"


class InvalidPathParameter(PwresetError):
    key = "request.invalid_path"
    message = "invalid path parameter"


class InvalidQueryParameter(PwresetError):
    key = "request.invalid_query"
    message = "invalid query parameter"


class MissingCorrelationId(PwresetError):
    key = "request.missing_correlation_id"
    message = "correlationId header is required"


class InvalidCorrelationId(PwresetError):
    key = "request.invalid_correlation_id"
    message = "correlationId must be a UUID"


class InvalidOriginatingIp(PwresetError):
    key = "request.invalid_originating_ip"
    message = "Invalid IP address in the header originating_ip"


class MissingTransactionId(PwresetError):
    key = "request.missing_transaction_id"
    message = "transactionId header is required"


class TransactionIdTooLong(PwresetError):
    key = "request.transaction_id_too_long"
    message = f"transactionId is longer than {MAX_TRANSACTION_ID} characters"


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, the services, and who is calling."""

    request: Request
    services: Container
    principal: Principal | None
    trace: str | None
    operation: Operation

    def check_trace(self) -> None:
        """The family's tracing header rules (contract sections 2 and 5)."""
        op = self.operation
        _check_trace(op.family, self.trace, required=op.trace_required)

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "operation declared without bearer auth"
        return self.principal

    async def unit_of_work(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction that commits even when ``work`` refuses the request.

        For flows whose refusals carry bookkeeping that must stay (a wrong passcode's try, a
        failed sign-in's count, a reused refresh token's revoked family). Services only raise a
        domain error before the changes a success would make, never half-way through them.
        """
        failure: PwresetError | None = None
        async with self.services.db.transaction() as session:
            try:
                return await work(session)
            except PwresetError as error:
                failure = error
        raise failure

    async def body(self, *, limit: int) -> bytes | None:
        """The request body straight from the ASGI channel; ``None`` when longer than ``limit``, which a
        ``Content-Length`` says before a byte is read (a client announcing 100 MB is not waited on)."""
        announced = self.request.headers.get("content-length")
        if announced is not None and (not announced.isdigit() or int(announced) > limit):
            return None
        chunks: list[bytes] = []
        size = 0
        receive = self.request.receive
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json(self, model: type[BaseModel]) -> Any:
        media = self.request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise InvalidBody("Content-Type must be application/json")
        raw = await self.body(limit=MAX_JSON_BODY)
        if raw is None:
            raise InvalidBody("request body is too large")
        try:
            parsed = model.model_validate_json(raw or b"null")
        except ValidationError as exc:
            raise InvalidBody(_describe(exc)) from None
        if not all_storable(parsed):
            raise InvalidBody("request body holds a NUL character or an unpaired surrogate")
        return parsed


Handler = Callable[[Call], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
#: Scope key carrying the matched path template, for logs and metrics.
ROUTE_TEMPLATE = "pwreset.route"
Auth = Literal["bearer", "client", "none"]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # gateway style, e.g. "/v1/customers/{customerId}/contact-methods"
    family: Family
    handler: Handler
    summary: str
    auth: Auth = "bearer"
    scopes: frozenset[str] = frozenset()
    #: Whether the family's tracing header is required (it is always echoed when sent).
    trace_required: bool = True
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)  # query parameter -> description
    tags: tuple[str, ...] = ()
    #: A pwreset extension that Candescent does not publish (documented as such).
    extension: bool = False
    #: Other paths the spec writes for this operation (served through ``ALIASES``), documented too.
    aliases: tuple[str, ...] = ()
    #: Other successful answers: (status, body, when).
    other_responses: tuple[tuple[int, type[BaseModel], str], ...] = ()

    @property
    def paths(self) -> tuple[str, str]:
        return self.path, PORTAL_PREFIX[self.family] + self.path

    @property
    def implied_errors(self) -> tuple[str, ...]:
        """What the endpoint wrapper itself can answer, whatever the handler does."""
        implied = ["internal", "unavailable"]
        if self.auth == "bearer":
            implied += ["auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
                        "request.rate_limited"]
            if self.family is Family.UX_USERS:
                implied.append("request.invalid_originating_ip")
        return (*implied, *_TRACE_ERRORS[self.family])


def endpoint(op: Operation) -> Endpoint:
    family = op.family
    header = TRACE_HEADER[family]
    header_lower = header.lower()
    header_bytes = header.encode()

    async def serve(request: Request) -> Response:
        services: Container = request.app.state.services
        trace = request.headers.get(header_lower)
        try:
            principal = None
            if op.auth == "bearer":
                try:
                    principal = await services.oauth.authenticate_bearer(request.headers.get("authorization"))
                except BearerInvalid as error:
                    if not error.known:  # a guess or garbage; a revoked real token is ordinary
                        await services.auth_failures.failed(address_subject(client_address(request)))
                    raise
                principal.require(op.scopes)
                if principal.trusted_origin:
                    _record_originating_ip(request, family)
            call = Call(request, services, principal, trace, op)
            if op.auth != "client":  # client-authenticated handlers check it after authenticating
                call.check_trace()
                _check_storable(request.scope)  # (the token routes read no path or query parameter)
            response = await op.handler(call)
        except PwresetError as error:
            response = render(error, family)
        except Exception as exc:
            if is_outage(exc):
                # An outage is counted and alerted on by metrics; one line, no traceback.
                DEPENDENCY_UNAVAILABLE.inc()
                log.warning("dependency unavailable: %s", type(exc).__name__)
                response = render(Unavailable(), family, {"Retry-After": "1"})
            else:
                log.exception("unexpected error")
                response = render(PwresetError(), family)
        if trace is not None:
            # Echoed under the contract's spelling; Starlette would lower-case a normal header.
            response.raw_headers.append((header_bytes, trace.encode("latin-1")))
        return response

    serve.__name__ = op.handler.__name__
    return serve


def _check_storable(scope: Scope) -> None:
    """No NUL in the path or the query string (kit/text.py): the server decodes both as UTF-8 with
    replacement, so NUL, as ``%00`` or raw, is the only character in them a database cannot store."""
    if "\x00" in scope["path"]:
        raise InvalidPathParameter("path parameter holds a NUL character")
    query = scope.get("query_string", b"")
    if query and (b"%00" in query or b"\x00" in query):
        raise InvalidQueryParameter("query parameter holds a NUL character")


def _record_originating_ip(request: Request, family: Family) -> None:
    """A trusted partner's ``originating_ip`` header, the end customer's address, on the audit trail.
    The ux-users family refuses one that is no IP address (``UXU_10008``); elsewhere it is left out."""
    value = request.headers.get(origin.ORIGINATING_IP_HEADER)
    if value is None:
        return
    address = origin.parse_ip(value)
    if address is None:
        if family is Family.UX_USERS:
            raise InvalidOriginatingIp()
        return
    origin.add_originating_ip(address)


def client_address(request: Request) -> str:
    """The caller's address (behind proxies, those listed in PWRESET_TRUSTED_PROXIES are looked through)."""
    return request.client.host if request.client else "unknown"


def _check_trace(family: Family, value: str | None, *, required: bool) -> None:
    """oauth2 and ux-users want a UUID; db-accounts and db-users any id of at most 64 characters."""
    if family is Family.OAUTH2:
        if (value is None and required) or (value is not None and not _is_uuid(value)):
            raise InvalidTransactionId()
        return
    if family is Family.UX_USERS:
        if value is None or not value.strip():
            if required:
                raise MissingCorrelationId()
            return
        if not _is_uuid(value):
            raise InvalidCorrelationId()
    else:
        if value is None or not value.strip():
            if required:
                raise MissingTransactionId()
            return
        if len(value) > MAX_TRANSACTION_ID:
            raise TransactionIdTooLong()


_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def _is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value.strip()) is not None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid body"))


_PARAM = re.compile(r"{(\w+)}")


class OperationDispatcher:
    """Serves declared operations straight from the ASGI scope, in front of Starlette.

    The endpoint wrapper already owns error handling, so Starlette's exception middlewares and its
    linear route scan only cost time on the hot path (a third of a bearer request's CPU). Exact
    paths are one dict lookup; paths with parameters are tried in declaration order. Anything
    else (ops routes, 404, 405) falls through to the Starlette app, which registers the same
    routes.
    """

    def __init__(self, app: Starlette, operations: list[Operation]) -> None:
        self.app = app
        self.static: dict[tuple[str, str], tuple[Endpoint, str]] = {}
        self.dynamic: list[tuple[str, re.Pattern[str], Endpoint, str]] = []
        #: Custom-method routes (``{customerId}:reset-password``): a path that ends in one is that
        #: operation's, whatever the method, so a wrong method is 405 with its ``Allow`` rather than
        #: a lookup of a customer named ``x:reset-password``.
        self.actions: list[tuple[re.Pattern[str], str]] = []
        for op in operations:
            serve = endpoint(op)
            for path in op.paths:
                if "{" in path:
                    pattern = _compile(path)
                    self.dynamic.append((op.method, pattern, serve, path))
                    if "}:" in path:
                        self.actions.append((pattern, op.method))
                else:
                    self.static[(op.method, path)] = (serve, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if path[1:2] in ("d", "u") and (canonical := canonical_path(path)) != path:  # (cheap first test)
                scope["path"] = path = canonical
            found = self.static.get((method, path))
            params: dict[str, str] = {}
            if found is None:
                for route_method, pattern, serve, template in self.dynamic:
                    if route_method == method:
                        matched = pattern.match(path)
                        if matched is not None:
                            found, params = (serve, template), matched.groupdict()
                            break
            if ":" in path and (found is None or "}:" not in found[1]):
                allowed = sorted({m for pattern, m in self.actions if pattern.match(path)})
                if allowed and method not in allowed:
                    await _method_not_allowed(allowed)(scope, receive, send)
                    return
            if found is not None:
                serve, template = found
                scope["app"] = self.app
                scope["path_params"] = params
                scope[ROUTE_TEMPLATE] = template
                response = await serve(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _method_not_allowed(allowed: list[str]) -> Response:
    return json_response({"code": "METHOD_NOT_ALLOWED", "message": "Method Not Allowed"}, 405,
                         {"Allow": ", ".join(allowed)})


def _compile(path: str) -> re.Pattern[str]:
    """``/v1/customers/{customerId}:unlock-user`` as a regex with named groups."""
    parts, position = [], 0
    for param in _PARAM.finditer(path):
        parts += [re.escape(path[position : param.start()]), f"(?P<{param.group(1)}>[^/]+)"]
        position = param.end()
    parts.append(re.escape(path[position:]))
    return re.compile("^" + "".join(parts) + "$")


def routes(operations: list[Operation]) -> list[Route]:
    """The same operations as Starlette routes (they answer what the dispatcher passes on: 405s)."""
    out: list[Route] = []
    for op in operations:
        serve = endpoint(op)
        for path in op.paths:
            out.append(Route(path, serve, methods=[op.method]))
    return out
