"""Validates /octo/ responses against octo-types' openapi.yaml (vendored in tests/octo/, MIT).

`assert_octo(response, method, path)` finds the operation by path (the spec writes /products/,
/bookings/{uuid}, …) and method, takes the schema of the response's status (every error the
spec declares is under 400, so any 4xx/5xx is checked against that operation's error schema),
turns OpenAPI 3.0's `nullable` into JSON Schema, resolves the $refs through a registry and
validates with jsonschema, formats included."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "octo" / "openapi.yaml"
SPEC_URI = "urn:octo-openapi"


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items() if not k.startswith("x-")}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def spec() -> dict[str, Any]:
    return _nullable(yaml.safe_load(SPEC_PATH.read_text()))


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def _operation(method: str, path: str) -> dict[str, Any]:
    path = path.split("?", 1)[0]
    assert path.startswith("/octo/"), path
    wanted = "/" + path[len("/octo/"):].strip("/")
    for template, operations in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template.rstrip("/") or "/")) + "$"
        if re.match(pattern, wanted) and method.lower() in operations:
            return operations[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of octo-types' openapi.yaml")


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    responses = _operation(method, path)["responses"]
    key = str(status) if str(status) in responses else ("400" if status >= 400 else None)
    assert key is not None, f"{method} {path} declares no {status} response"
    return responses[key]["content"]["application/json"]["schema"]


def validate(body: Any, method: str, path: str, status: int) -> None:
    schema = response_schema(method, path, status)
    # $refs in the operation's schema are "#/components/…" of the spec: resolve them there.
    validator = jsonschema.Draft202012Validator(
        _rebase(schema), registry=_registry(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(body)


def _rebase(node: Any) -> Any:
    if isinstance(node, list):
        return [_rebase(x) for x in node]
    if isinstance(node, dict):
        return {k: (SPEC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in node.items()}
    return node


def assert_octo(response, method: str, path: str) -> Any:
    """The body, after checking it against the spec (and that it is JSON)."""
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    validate(body, method, path, response.status_code)
    return body
