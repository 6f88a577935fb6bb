"""The hot path's msgspec parsing (channel_manager.orders.api.fast_parsing) must answer exactly
what the DRF serializers answer: whatever it accepts, the serializer accepts with the very same
validated data (types included); whatever it refuses, the serializer decides, so that every error
stays the serializer's own. Bodies are generated: valid ones, then mutated at random places."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channel_manager.kernel.api import parse_body
from channel_manager.kernel.problems import Problem
from channel_manager.orders.api import serializers as s
from channel_manager.orders.api.fast_parsing import fast_parse, parse

# Characters that matter to the fields' rules: whitespace DRF trims (str.strip), NUL and a lone
# surrogate it refuses, the reference alphabet, e-mail punctuation, non-ASCII digits and letters.
ALPHABET = list("aZ09._:-@+ \t\n\r\x0b\x0c\x1c\x85\xa0\u3000\x00\ud800é😀٣２") + ["x"]
TEXT = st.text(alphabet=ALPHABET, max_size=12)
TRICKY = st.sampled_from([
    "", " ", "  x  ", "\n", "x" * 64, " " + "x" * 64, "x" * 65, "x" * 100, "x" * 101, "x" * 128, "x" * 129,
    "x" * 254, "2026-12-30", "2026-1-5", "2026-02-30", "2026-02-29", "2028-02-29", "0000-01-01", "0001-01-01",
    "9999-12-31", "2026-12-30\n", " 2026-12-30", "2026-12-30T10:00", "20261230", "２０２６-12-30", "12:30",
    "9:05", "09:5", "24:00", "23:59", "12:60", "12:30\n", " 12:30", "12:30:00", "١٢:٣٠", "ada@example.com",
    " ada@example.com ", "ada@", "@example.com", "a@localhost", "ACME-T-1", "ACME-T-1\n", "ACME T", "GB", "GBR",
])
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 502), st.sampled_from([2**70, 1.0, 0.5, 500.0]), TEXT, TRICKY,
    st.just([]), st.just({}), st.lists(st.integers(0, 3), max_size=2), st.dictionaries(TEXT, st.integers(), max_size=2),
)

WORD = st.text(alphabet="abcdefghijKLMNOP0123456789", min_size=1, max_size=10)
NAME = st.text(alphabet=st.characters(categories=["L"], max_codepoint=0x2FFF), min_size=1, max_size=20)
REFERENCE = st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True)
DATE = st.dates(dt.date(2001, 1, 1), dt.date(2099, 12, 31)).map(dt.date.isoformat)
TIME = st.times().map(lambda t: t.strftime("%H:%M"))


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


VISIT = st.fixed_dictionaries({"itemId": WORD, "visitDate": DATE}, optional={"visitTime": _maybe(TIME)})
WALLET = st.fixed_dictionaries({}, optional={
    "externalReferenceNumbers": _maybe(st.lists(REFERENCE, max_size=4)),
    "componentSchedule": _maybe(st.lists(VISIT, max_size=3)),
})
LINE = st.fixed_dictionaries(
    {"itemId": WORD, "quantity": st.integers(1, 500), "visitDate": DATE},
    optional={"visitTime": _maybe(TIME), "wallet": _maybe(WALLET)},
)
CUSTOMER = st.fixed_dictionaries({}, optional={
    "firstName": _maybe(NAME), "lastName": _maybe(NAME), "email": _maybe(st.emails().filter(lambda e: len(e) <= 254)),
    "phone": _maybe(st.from_regex(r"\+?[0-9]{6,15}", fullmatch=True)), "country": _maybe(st.just("NL")),
    "language": _maybe(st.sampled_from(["en", "nl-NL"])),
})
ORDER = st.fixed_dictionaries(
    {"partnerId": WORD, "sellToOrderReference": REFERENCE, "items": st.lists(LINE, min_size=1, max_size=4)},
    optional={
        "paymentReference": _maybe(st.text(alphabet="PAY-0123456789 ", max_size=20)),
        "customer": _maybe(CUSTOMER),
    },
)
REPLACE = ORDER.flatmap(lambda body: st.fixed_dictionaries(
    {}, optional={"orderId": WORD, "buyFromOrderReference": WORD}).map(lambda extra: {**body, **extra}))
CONFIRM = st.fixed_dictionaries({"paymentReference": st.text(alphabet="PAY-0123456789", min_size=1, max_size=20)})

VALID_BODIES = {
    s.OrderRequestSerializer: ORDER,
    s.ReplaceOrderRequestSerializer: REPLACE,
    s.ConfirmRequestSerializer: CONFIRM,
}


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place in a body: each key of each object, each element of each list."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


@st.composite
def mutated(draw, valid: st.SearchStrategy) -> Any:
    """A valid body with up to three changes: a value replaced, a member dropped, one added."""
    body = draw(valid)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(body)))
        if not path:
            continue
        *parents, last = path
        container = body
        for step in parents:
            container = container[step]
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "drop" and isinstance(container, dict):
            del container[last]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.sampled_from(["unknown", "visitTime", "wallet", "customer", "orderId"]))] = draw(JUNK)
        else:
            container[last] = draw(JUNK)
    return body


def typed(value: Any) -> Any:
    """A value with every leaf's exact type, so that True never passes for 1 nor a str subclass for str."""
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    return (type(value).__name__, value)


def assert_agrees(serializer_class, body: Any) -> Any:
    sent = copy.deepcopy(body)
    fast = fast_parse(serializer_class, body)
    assert body == sent, "the fast path must not change the body"
    serializer = serializer_class(data=copy.deepcopy(body))
    valid = serializer.is_valid()
    if fast is not None:
        assert valid, serializer.errors
        assert typed(fast) == typed(serializer.validated_data)
    # Whichever path answers, the outcome is the serializer's: its data or its problem.
    try:
        expected = parse_body(serializer_class, copy.deepcopy(body))
    except Problem as problem:
        with pytest.raises(Problem) as raised:
            parse(serializer_class, body)
        assert (raised.value.detail, raised.value.errors) == (problem.detail, problem.errors)
    else:
        assert typed(parse(serializer_class, body)) == typed(expected)
    return fast


SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("serializer_class", list(VALID_BODIES), ids=lambda c: c.__name__)
@SLOW
@given(data=st.data())
def test_valid_bodies_take_the_fast_path_with_the_serializers_result(serializer_class, data):
    body = data.draw(VALID_BODIES[serializer_class])
    assert assert_agrees(serializer_class, body) is not None


@pytest.mark.parametrize("serializer_class", list(VALID_BODIES), ids=lambda c: c.__name__)
@SLOW
@given(data=st.data())
def test_mutated_bodies_get_the_serializers_answer(serializer_class, data):
    assert_agrees(serializer_class, data.draw(mutated(VALID_BODIES[serializer_class])))


@pytest.mark.parametrize("body", [None, [], "order", 42, {}])
def test_bodies_that_are_not_orders_are_the_serializers_to_refuse(body):
    assert fast_parse(s.OrderRequestSerializer, body) is None
    assert_agrees(s.OrderRequestSerializer, body)


@pytest.mark.parametrize(
    ("field", "sent", "parsed"),
    [
        ("firstName", "  Ada  ", "Ada"),  # customer members are trimmed
        ("firstName", "   ", ""),  # and blank after trimming is ''
        ("email", " ada@example.com ", "ada@example.com"),
    ],
)
def test_customer_members_are_trimmed_as_the_serializer_does(field, sent, parsed):
    body = {"partnerId": "p", "sellToOrderReference": "R", "customer": {field: sent},
            "items": [{"itemId": " DAY-ADULT ", "quantity": 1, "visitDate": "2026-12-30"}]}
    fast = assert_agrees(s.OrderRequestSerializer, body)
    assert fast["customer"][field] == parsed
    assert fast["items"][0]["itemId"] == "DAY-ADULT"
