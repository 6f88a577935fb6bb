"""Property-based fuzzing of the partner API against its own OpenAPI document (schemathesis).

The schema is loaded in-process from `/api/schema/` of the WSGI application, and every operation
gets a bounded, deterministic batch of generated requests (valid and invalid bodies, query
strings and path parameters), authenticated with a real partner key (`acme-travel`). Checks:
no 5xx, documented status codes, documented content types and headers, and response bodies that
match the schema. Some path parameters are swapped for real orders (Draft, Issued, Error), so
that the state-dependent answers (200, 202, 204, 409) are exercised as well as 404.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from catalog.selectors import venue_today
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.services import LineInput, OrderInput, create_order
from channel_manager.wsgi import application

MAX_EXAMPLES = 25

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _order(partner, reference: str, *, payment: str | None, lines: tuple[LineInput, ...]) -> str:
    order = create_order(
        partner=partner,
        order_input=OrderInput(sell_to_order_reference=reference, lines=lines, payment_reference=payment),
    )
    issue_order(order_pk=order.pk)
    return str(order.order_id)


@pytest.fixture
def real_orders(catalog, partner) -> list[str]:
    """Orders of acme-travel in Draft, Issued and Error (issued in-process: no worker runs)."""
    day = venue_today() + dt.timedelta(days=10)
    return [
        _order(partner, "FUZZ-DRAFT", payment=None, lines=(LineInput("DAY-ADULT", 2, day),)),
        _order(partner, "FUZZ-ISSUED", payment="PAY-1", lines=(LineInput("FAMILY-GROUP", 3, day),)),
        # SHOW-EVENING is timed: without a visitTime issuance settles the order in Error.
        _order(partner, "FUZZ-ERROR", payment=None, lines=(LineInput("SHOW-EVENING", 1, day),)),
    ]


# Loaded when the module is collected, from the application itself (no database involved).
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def _keep_test_connection(db):
    """Requests go to the WSGI handler in this thread, inside the test's transaction: like
    Django's test client, keep the handler from closing the test's database connection at the
    end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


_turn = itertools.count()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_schema(case, api_key, real_orders):
    # Every other case that names an order uses one of the partner's real orders instead.
    if case.path_parameters and "orderId" in case.path_parameters:
        turn = next(_turn)
        if turn % 2 == 0:
            case.path_parameters["orderId"] = real_orders[(turn // 2) % len(real_orders)]
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)
