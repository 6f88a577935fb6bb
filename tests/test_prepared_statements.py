"""channel_manager.kernel.prepared: statements PostgreSQL plans once per connection, unless a
pooler forbids them (DATABASE_PREPARED_STATEMENTS) or queries are being logged."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import DEFAULT_DB_ALIAS, connection
from django.test.utils import CaptureQueriesContext

from channel_manager.kernel.prepared import prepared_cursor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("prepared statements are PostgreSQL's; run the tests on PostgreSQL")


def run_marked_statement() -> tuple[str, list[tuple]]:
    """A statement no other test runs (its text names a fresh marker) and what it returned."""
    marker = f"m{uuid.uuid4().hex}"
    with prepared_cursor(DEFAULT_DB_ALIAS) as cursor:
        noon = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
        cursor.execute(f"SELECT %s::int + 1 AS {marker}, %s::timestamptz", [41, noon])
        return marker, cursor.fetchall()


def is_prepared(marker: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{marker}%"])
        return cursor.fetchone()[0] == 1


def test_a_statement_is_prepared_on_its_first_run():
    marker, rows = run_marked_statement()
    assert rows == [(42, dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC))]
    assert is_prepared(marker)


def test_behind_a_pooler_without_prepared_statements_nothing_is_prepared(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    marker, rows = run_marked_statement()
    assert rows[0][0] == 42
    assert not is_prepared(marker)


def test_logged_statements_are_logged_with_their_values_and_not_prepared():
    with CaptureQueriesContext(connection) as logged:
        marker, _ = run_marked_statement()
    assert "41" in logged.captured_queries[0]["sql"] and marker in logged.captured_queries[0]["sql"]
    assert not is_prepared(marker)
