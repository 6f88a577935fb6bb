"""The OpenAPI document: every operationId, and responses that match it."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from tests.payloads import contract_example_body

pytestmark = pytest.mark.django_db

OPERATIONS = {
    "createOrder": ("/channelManager", "post"),
    "findOrders": ("/channelManager", "get"),
    "getOrder": ("/channelManager/{orderId}", "get"),
    "replaceOrder": ("/channelManager/{orderId}", "put"),
    "deleteOrder": ("/channelManager/{orderId}", "delete"),
    "confirmOrder": ("/channelManager/{orderId}/confirm", "post"),
}


@pytest.fixture
def schema(anon_client):
    response = anon_client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def operation_ids(schema) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (path, method)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
        if isinstance(op, dict) and "operationId" in op
    }


def test_schema_names_every_order_operation_of_the_contract(schema):
    found = operation_ids(schema)
    for operation, (path, method) in OPERATIONS.items():
        assert found.get(operation) == (path, method), operation


def test_schema_documents_problem_bodies(schema):
    create = schema["paths"]["/channelManager"]["post"]
    for status in ("400", "401", "403", "413", "415", "422"):
        assert status in create["responses"], status
    assert "Problem" in schema["components"]["schemas"]


def test_docs_page_renders(anon_client):
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_create_response_matches_the_documented_order_schema(client, catalog, schema):
    body = client.post("/channelManager", contract_example_body(), format="json").json()
    components = schema["components"]["schemas"]
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/Order", "components": {"schemas": components}}
    )
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == []
