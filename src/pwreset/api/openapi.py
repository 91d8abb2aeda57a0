"""``/openapi.json`` built from the declared operations, and ``/docs`` (Swagger UI)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from pwreset import __version__
from pwreset.api.operations import TRACE_HEADER, Operation
from pwreset.errors import WIRE, Family

_PARAM = re.compile(r"{(\w+)}")


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error_schema(family: Family) -> dict[str, Any]:
    props: dict[str, Any] = {"code": {"type": "string"}, "message": {"type": "string"}}
    if family is Family.UX_USERS:
        props["status"] = {"type": "integer"}
    return {"type": "object", "properties": props, "required": list(props)}


def build_openapi(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for op in operations:
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
        responses: dict[str, Any] = {}
        if op.response is not None:
            responses[str(op.status)] = {
                "description": "success",
                "content": {"application/json": {"schema": _schema(op.response, components)}},
            }
        else:
            responses[str(op.status)] = {"description": "success"}
        by_status: dict[int, list[str]] = {}
        for key in op.errors:
            mapped = WIRE.get(key, {}).get(op.family)
            if mapped:
                by_status.setdefault(mapped[0], []).append(mapped[1])
        for status, codes in sorted(by_status.items()):
            responses[str(status)] = {
                "description": ", ".join(sorted(set(codes))),
                "content": {"application/json": {"schema": _error_schema(op.family)}},
            }
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.handler.__name__}_{op.method.lower()}",
            "tags": list(op.tags),
            "parameters": parameters,
            "responses": responses,
        }
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
        for index, path in enumerate(op.paths):
            entry = dict(item, operationId=item["operationId"] + ("" if index == 0 else "_portal"))
            paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pwreset",
            "version": __version__,
            "description": "Reset Password API v2.5, OAuth2 token service and Accounts API (wire-compatible).",
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


SWAGGER_HTML = """<!doctype html>
<html><head><title>pwreset API</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""
