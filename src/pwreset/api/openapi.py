"""``/openapi.json`` (and ``/openapi.yaml``) built from the declared operations.

The document states what pwreset sends: Candescent's schema names, field names, types, enums and
required lists where the spec defines the operation, every status an operation can answer (its
declared errors and what the endpoint wrapper itself can answer), and ``x-pwreset-extension`` on
what Candescent does not publish. An optional field is left out when empty, never ``null``, so no
schema here admits ``null``. The test suite checks every response it receives against this document
(``tests/openapi_check.py``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from pwreset import __version__
from pwreset.api.operations import ALIASES, TRACE_HEADER, Operation
from pwreset.errors import WIRE, Family

_PARAM = re.compile(r"{(\w+)}")


def _no_nulls(schema: Any) -> Any:
    """Pydantic writes ``X | None = None`` as ``anyOf: [X, null]`` with ``default: null``; on the
    wire such a field is absent instead, so the schema is plain ``X``."""
    if isinstance(schema, list):
        return [_no_nulls(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _no_nulls(value) for key, value in schema.items() if not (key == "default" and value is None)}
    options = out.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) != len(options):
            out.pop("anyOf")
            if len(kept) == 1:
                out.update(kept[0])
            else:
                out["anyOf"] = kept
    return out


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = _no_nulls(sub)
    components[model.__name__] = _no_nulls(schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


#: Error bodies: Candescent's ``ErrorResponse`` (token service, Accounts, institution users) and
#: ``Error`` (ux-users, whose ``status`` repeats the HTTP status).
ERROR_SCHEMAS: dict[str, Any] = {
    "ErrorResponse": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Error": {
        "type": "object", "required": ["status", "message", "code"],
        "properties": {
            "status": {"type": "integer"}, "message": {"type": "string"}, "code": {"type": "string"},
            "reasons": {"type": "array", "items": {"type": "string"},
                        "description": "why a new password was refused (UXU_20022) [ext]"},
        },
    },
}


def _error_ref(family: Family) -> dict[str, str]:
    return {"$ref": "#/components/schemas/" + ("Error" if family is Family.UX_USERS else "ErrorResponse")}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(op.path)
    ]
    parameters.append(
        {
            "name": TRACE_HEADER[op.family],
            "in": "header",
            "required": op.trace_required,
            "schema": {"type": "string", "format": "uuid"} if op.family in (Family.OAUTH2, Family.UX_USERS)
            else {"type": "string", "maxLength": 64},
        }
    )
    for name, description in op.params.items():
        where, _, text = description.partition(": ")
        location = where if where in ("header", "query") else "query"
        parameters.append(
            {"name": name, "in": location, "required": False, "description": text or description,
             "schema": {"type": "string"}}
        )
    return parameters


def _responses(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.response is not None:
        responses[str(op.status)] = {
            "description": "success",
            "content": {"application/json": {"schema": _schema(op.response, components)}},
        }
    else:
        responses[str(op.status)] = {"description": "success, no body"}
    for status, model, when in op.other_responses:
        responses[str(status)] = {
            "description": when, "content": {"application/json": {"schema": _schema(model, components)}},
        }
    by_status: dict[int, set[str]] = {}
    for key in (*op.errors, *op.implied_errors):
        mapped = WIRE.get(key, {}).get(op.family)
        if mapped:
            by_status.setdefault(mapped[0], set()).add(mapped[1])
    for status, codes in sorted(by_status.items()):
        entry: dict[str, Any] = {
            "description": ", ".join(sorted(codes)),
            "content": {"application/json": {"schema": _error_ref(op.family)}},
        }
        if status == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[str(status)] = entry
    return responses


def build_openapi(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = dict(ERROR_SCHEMAS)
    for op in operations:
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.handler.__name__}_{op.method.lower()}",
            "tags": list(op.tags),
            "parameters": _parameters(op),
            "responses": _responses(op, components),
        }
        if op.extension:
            item["x-pwreset-extension"] = True
        if op.body is not None:
            item["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": _schema(op.body, components)}}
            }
        if op.form is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _schema(op.form, components)}},
            }
        if op.auth == "bearer":
            item["security"] = [{"bearer": sorted(op.scopes)}]
        elif op.auth == "client":
            item["security"] = [{"basic": []}]
        for index, path in enumerate((*op.paths, *op.aliases)):
            entry = dict(item, operationId=item["operationId"] + ("", "_portal", "_spec")[min(index, 2)])
            paths.setdefault(path, {})[op.method.lower()] = entry
    aliases = "; ".join(f"`{alias}...` is served as `{target}...`" for alias, target in ALIASES)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pwreset",
            "version": __version__,
            "description": (
                "Reset Password API v2.5, OAuth2 token service, institution users and Accounts API, "
                "wire-compatible with Candescent's published API; operations marked x-pwreset-extension are "
                f"pwreset's own. Every path is also served under other prefixes published clients use: {aliases}."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "sharedKey:secretKey"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
