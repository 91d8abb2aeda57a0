"""The API catalogue: pwreset's own OpenAPI document split per API, shown as pages, downloadable as JSON and
YAML, and turned into a Postman collection (v2.1) with its environment.

Everything here is derived from the document ``create_app`` builds from the operations it serves, so the
pages, the downloads and the collection cannot drift from what the service answers.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Api:
    slug: str
    title: str
    summary: str
    tags: tuple[str, ...] = ()
    #: pwreset's own operations (``x-pwreset-extension``) of every API.
    extensions: bool = False


APIS = (
    Api("authentication", "Authentication (OAuth V2)",
        "Tokens for partner applications: client credentials with the shared key and secret key, revocation and "
        "introspection.", tags=("OAuth2",)),
    Api("reset-password", "Reset Password v2.5",
        "Look a customer's contact methods up, send a one-time passcode, check it and set the new password.",
        tags=("Reset Password",)),
    Api("institution-users", "Institution users",
        "A customer's profile, the institution user behind it, unlocking a locked user, and changing a customer's "
        "phone number or email address.", tags=("Customers", "Contact Info")),
    Api("accounts", "Accounts", "A customer's deposit and loan accounts, with balances and allowed actions.",
        tags=("Accounts",)),
    Api("extensions", "pwreset extensions",
        "What pwreset adds to the published contract: verifying the passcode, setting the password, token "
        "introspection and revocation by POST.", extensions=True),
)
BY_SLUG = {api.slug: api for api in APIS}
METHODS = ("get", "put", "post", "delete", "patch")
#: Paths under the ``/digitalbanking`` prefix repeat the gateway paths: the pages and the collection show one.
_ALIAS = re.compile(r"^/(digitalbanking|ux-users)/")


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    extension: bool
    scopes: list[str]
    parameters: list[dict[str, Any]]
    request_schema: str | None
    request_example: Any
    responses: list[tuple[str, str, list[str]]] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    bearer: bool = False
    #: The first success status with a body, and an example of that body.
    success_example: tuple[str, Any] | None = None

    @property
    def anchor(self) -> str:
        return self.operation_id.replace("_", "-")

    @property
    def tryable(self) -> bool:
        """The test drive calls operations that take a bearer token (the token service's take the keys)."""
        return self.bearer

    def path_parameters(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    def query_parameters(self) -> list[dict[str, Any]]:
        return [p for p in self.parameters if p.get("in") == "query"]


def _belongs(api: Api, operation: dict[str, Any]) -> bool:
    if api.extensions:
        return bool(operation.get("x-pwreset-extension"))
    return bool(set(operation.get("tags", ())) & set(api.tags))


def _entries(document: dict[str, Any], api: Api | None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is not None and (api is None or _belongs(api, operation)):
                yield path, method, operation


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref" and isinstance(inner, str) and inner.startswith("#/components/schemas/"):
                yield inner.rsplit("/", 1)[1]
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def document_for(document: dict[str, Any], slug: str, *, server: str | None = None) -> dict[str, Any]:
    """The OpenAPI document of one API (``all``: the whole), with only the schemas its operations use, and
    ``server`` (the portal's public address) as its base URL."""
    if slug == "all":
        return {**document, "servers": [{"url": server}]} if server else document
    api = BY_SLUG[slug]
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation in _entries(document, api):
        paths.setdefault(path, {})[method] = copy.deepcopy(operation)
    schemas = document["components"]["schemas"]
    needed: set[str] = set()
    queue = list(_refs(paths))
    while queue:
        name = queue.pop()
        if name not in needed and name in schemas:
            needed.add(name)
            queue.extend(_refs(schemas[name]))
    return {
        "openapi": document["openapi"],
        "info": {**document["info"], "title": f"pwreset: {api.title}", "description": api.summary},
        **({"servers": [{"url": server}]} if server else {}),
        "paths": paths,
        "components": {"schemas": {name: schemas[name] for name in schemas if name in needed},
                       "securitySchemes": document["components"]["securitySchemes"]},
    }


def as_yaml(document: dict[str, Any]) -> str:
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def example(document: dict[str, Any], schema: dict[str, Any] | None, depth: int = 0) -> Any:
    """An example value built from a schema: its own example, its first enum value, or one per type."""
    if not schema or depth > 6:
        return None
    if "$ref" in schema:
        return example(document, document["components"]["schemas"].get(schema["$ref"].rsplit("/", 1)[1]), depth + 1)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("allOf", "oneOf", "anyOf"):
        if schema.get(combined):
            return example(document, schema[combined][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return {name: example(document, inner, depth + 1) for name, inner in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(document, schema.get("items"), depth + 1)]
    if kind == "integer":
        return 0
    if kind == "number":
        return 0.0
    if kind == "boolean":
        return True
    if schema.get("format") == "uuid":
        return "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    return "string"


def operations(document: dict[str, Any], slug: str) -> list[Operation]:
    """The operations of one API as the page shows them: each once, with the paths that also serve it."""
    api = BY_SLUG[slug]
    found: dict[tuple[str, str], Operation] = {}
    for path, method, operation in _entries(document, api):
        body: dict[str, Any] = operation.get("requestBody", {}).get("content", {})
        media: dict[str, Any] = next(iter(body.values()), {}) if body else {}
        schema = media.get("schema")
        key = (method, operation.get("summary", ""))
        if key in found:
            found[key].aliases.append(path)
            continue
        responses = []
        success_example = None
        for status, response in operation.get("responses", {}).items():
            content: dict[str, Any] = response.get("content", {})
            first: dict[str, Any] = next(iter(content.values()), {}) if content else {}
            schema_ref = first.get("schema", {})
            codes = re.findall(r"\b[A-Z]{2,5}_\d{5}\b", response.get("description", ""))
            responses.append((status, _schema_name(schema_ref) or "", codes or [response.get("description", "")]))
            if success_example is None and status.startswith("2") and schema_ref:
                success_example = (status, example(document, schema_ref))
        security = operation.get("security", [{}])
        scopes = sorted({scope for entry in security for values in entry.values() for scope in values})
        found[key] = Operation(
            method=method.upper(), path=path, operation_id=operation["operationId"],
            summary=operation.get("summary", ""), extension=bool(operation.get("x-pwreset-extension")),
            scopes=scopes, parameters=operation.get("parameters", []), request_schema=_schema_name(schema),
            request_example=example(document, schema) if schema else None, responses=responses,
            bearer=any("bearer" in entry for entry in security), success_example=success_example,
        )
    ordered = list(found.values())  # in the order the service declares them (reset, verify, set)
    for op in ordered:  # the gateway path first
        if _ALIAS.match(op.path) and op.aliases:
            gateway = next((p for p in op.aliases if not _ALIAS.match(p)), None)
            if gateway:
                op.aliases.remove(gateway)
                op.aliases.append(op.path)
                op.path = gateway
    return ordered


def _schema_name(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    ref = schema.get("$ref") or (schema.get("items") or {}).get("$ref")
    return ref.rsplit("/", 1)[1] if isinstance(ref, str) else None


def error_meanings() -> dict[str, str]:
    """Each wire code the service answers with, and what it means: the message of the error behind it
    (``errors.WIRE`` maps an error's key to its code in each family)."""
    from pwreset.errors import WIRE, PwresetError

    def every(cls: type[PwresetError]) -> list[type[PwresetError]]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in every(child))]

    meanings: dict[str, str] = {}
    for cls in every(PwresetError):
        for _status, code in WIRE.get(cls.key, {}).values():
            meanings.setdefault(code, cls.message[:1].upper() + cls.message[1:])
    return meanings


def example_json(value: Any) -> str:
    return json.dumps(value, indent=2)
