"""Every response the test suite receives is checked against pwreset's own ``/openapi.json``.

The ``api`` fixture's client carries :func:`checker` as a response hook: a response to a documented
operation must have a documented status, and its JSON body must validate against that status's
schema (JSON Schema 2020-12, as OpenAPI 3.1 uses). A response that does not is a test failure,
whatever the test itself asserts. Paths no operation documents (probe routes of the tests, 404s,
health routes) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from pwreset.api.operations import canonical_path


class OpenApiMismatch(AssertionError):
    pass


def _compile(template: str) -> re.Pattern[str]:
    parts, position = [], 0
    for param in re.finditer(r"{(\w+)}", template):
        parts += [re.escape(template[position:param.start()]), "[^/]+"]  # as the dispatcher reads them
        position = param.end()
    parts.append(re.escape(template[position:]))
    return re.compile("^" + "".join(parts) + "$")


class ResponseChecker:
    def __init__(self, document: dict[str, Any]) -> None:
        self.registry: Registry = Registry().with_resource("urn:pwreset-openapi", DRAFT202012.create_resource(document))
        self.paths = [(_compile(path), path, item) for path, item in document["paths"].items()]
        self.checked = 0

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any] | None] | None:
        """The documented operation a request reached: of the templates its path matches (a
        parameter also matches ``id:reset-password``), the one with its method."""
        canonical = canonical_path(path)
        matches = [(template, item) for pattern, template, item in self.paths if pattern.match(canonical)]
        actions = [(template, item) for template, item in matches if "}:" in template]
        if actions:  # a path ending in a custom method is that operation's, whatever the method
            matches = actions
        for template, item in matches:
            if method.lower() in item:
                return template, item[method.lower()]
        return (matches[0][0], None) if matches else None

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        found = self.operation(method, path)
        if found is None:
            return
        template, operation = found
        if operation is None:
            if status != 405:
                raise OpenApiMismatch(f"{method} {path}: no such operation, yet {status} (expected 405)")
            return
        responses = operation["responses"]
        documented = responses.get(str(status))
        if documented is None:
            raise OpenApiMismatch(f"{method} {template}: status {status} is not documented ({sorted(responses)})")
        self.checked += 1
        content = documented.get("content")
        if content is None:
            if body:
                raise OpenApiMismatch(f"{method} {template} {status}: documented without a body, got {body[:80]!r}")
            return
        if not content_type.startswith("application/json"):
            raise OpenApiMismatch(f"{method} {template} {status}: not JSON ({content_type})")
        schema = content["application/json"]["schema"]
        ref = schema["$ref"].replace("#/", "urn:pwreset-openapi#/")
        validator = Draft202012Validator({"$ref": ref}, registry=self.registry)
        errors = sorted(validator.iter_errors(orjson.loads(body)), key=lambda e: list(e.absolute_path))
        if errors:
            details = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in errors[:5])
            raise OpenApiMismatch(f"{method} {template} {status}: {details}")


def checker(document: dict[str, Any]) -> tuple[ResponseChecker, Callable[[httpx.Response], Awaitable[None]]]:
    check = ResponseChecker(document)

    async def hook(response: httpx.Response) -> None:
        body = await response.aread()
        request = response.request
        check.check(request.method, request.url.path, response.status_code,
                    response.headers.get("content-type", ""), body)

    return check, hook
