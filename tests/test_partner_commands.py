"""The staff commands create_partner, disable_partner and enable_partner."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from channel_manager.kernel.authentication import key_digest, key_owner, partner_for_key
from channel_manager.kernel.models import ApiKey, Partner
from tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def printed_key(output: str) -> str:
    """The live key printed (the test key beside it starts cmk_test_)."""
    keys = [word for word in output.split() if word.startswith("cmk_") and not word.startswith("cmk_test_")]
    assert len(keys) == 1, output
    return keys[0]


def test_create_partner_prints_a_key_that_authenticates_the_new_partner():
    output = run("create_partner", "acme-travel", "--name", "ACME Travel")

    partner = Partner.objects.get(partner_id="acme-travel")
    assert partner.name == "ACME Travel"
    assert partner.enabled
    assert partner_for_key(printed_key(output)) == partner


def test_create_partner_stores_only_a_digest_of_the_key():
    raw_key = printed_key(run("create_partner", "acme-travel", "--name", "ACME Travel"))

    stored = ApiKey.objects.get(partner__partner_id="acme-travel", livemode=True)
    assert stored.digest != raw_key
    assert raw_key not in stored.digest
    assert stored.digest == key_digest(raw_key)
    assert not ApiKey.objects.filter(prefix=raw_key).exists()


def test_create_partner_json_prints_one_line_with_partner_id_and_key():
    output = run("create_partner", "acme.travel_2", "--name", "ACME", "--json")

    assert output.count("\n") <= 1
    document = json.loads(output)
    assert set(document) == {"partnerId", "apiKey", "testApiKey"}
    assert document["partnerId"] == "acme.travel_2"
    assert partner_for_key(document["apiKey"]).partner_id == "acme.travel_2"


def test_create_partner_also_prints_a_test_key_of_the_same_partner():
    document = json.loads(run("create_partner", "acme-travel", "--name", "ACME", "--json"))

    assert document["testApiKey"].startswith("cmk_test_")
    assert not document["apiKey"].startswith("cmk_test_")
    assert key_owner(document["testApiKey"]) == (Partner.objects.get(partner_id="acme-travel"), False)
    assert key_owner(document["apiKey"])[1] is True


def test_create_partner_without_active_from_is_active_now():
    before = dt.datetime.now(dt.UTC)
    run("create_partner", "acme-travel", "--name", "ACME")
    after = dt.datetime.now(dt.UTC)

    assert before <= Partner.objects.get(partner_id="acme-travel").active_from <= after


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2027-01-01T00:00:00Z", dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("2027-01-01T09:30:00+01:00", dt.datetime(2027, 1, 1, 8, 30, tzinfo=dt.UTC)),
        ("2027-01-01t09:30:00.5z", dt.datetime(2027, 1, 1, 9, 30, 0, 500000, tzinfo=dt.UTC)),
    ],
)
def test_create_partner_stores_active_from(value, expected):
    run("create_partner", "acme-travel", "--name", "ACME", "--active-from", value)

    assert Partner.objects.get(partner_id="acme-travel").active_from == expected


@pytest.mark.parametrize(
    "value",
    ["2027-01-01", "2027-01-01T00:00:00", "2027-13-01T00:00:00Z", "tomorrow", ""],
)
def test_create_partner_rejects_a_bad_active_from(value):
    with pytest.raises(CommandError, match="RFC 3339"):
        run("create_partner", "acme-travel", "--name", "ACME", "--active-from", value)

    assert not Partner.objects.filter(partner_id="acme-travel").exists()


def test_create_partner_rejects_a_duplicate_partner_id():
    PartnerFactory(partner_id="acme-travel", name="ACME Travel")

    with pytest.raises(CommandError, match="already exists"):
        run("create_partner", "acme-travel", "--name", "Someone else")

    assert Partner.objects.get(partner_id="acme-travel").name == "ACME Travel"
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("partner_id", ["has space", "x" * 65, "ümlaut", "a/b", ""])
def test_create_partner_rejects_an_invalid_partner_id(partner_id):
    with pytest.raises(CommandError, match="invalid"):
        run("create_partner", partner_id, "--name", "ACME")

    assert Partner.objects.count() == 0


def test_create_partner_accepts_a_64_character_partner_id():
    run("create_partner", "a" * 64, "--name", "ACME")

    assert Partner.objects.filter(partner_id="a" * 64).exists()


def test_create_partner_rejects_an_empty_name():
    with pytest.raises(CommandError, match="--name"):
        run("create_partner", "acme-travel", "--name", "  ")


def test_disable_partner_switches_the_partnership_off():
    partner = PartnerFactory(partner_id="acme-travel")

    run("disable_partner", "acme-travel")

    partner.refresh_from_db()
    assert partner.enabled is False


def test_enable_partner_switches_the_partnership_back_on():
    partner = PartnerFactory(partner_id="acme-travel", enabled=False)

    run("enable_partner", "acme-travel")

    partner.refresh_from_db()
    assert partner.enabled is True


def test_disable_and_enable_are_idempotent():
    partner = PartnerFactory(partner_id="acme-travel")

    run("disable_partner", "acme-travel")
    run("disable_partner", "acme-travel")
    partner.refresh_from_db()
    assert partner.enabled is False

    run("enable_partner", "acme-travel")
    run("enable_partner", "acme-travel")
    partner.refresh_from_db()
    assert partner.enabled is True


def test_disable_partner_leaves_other_partners_alone():
    PartnerFactory(partner_id="acme-travel")
    other = PartnerFactory(partner_id="other-travel")

    run("disable_partner", "acme-travel")

    other.refresh_from_db()
    assert other.enabled is True


@pytest.mark.parametrize("command", ["disable_partner", "enable_partner"])
def test_switching_an_unknown_partner_is_an_error(command):
    with pytest.raises(CommandError, match="No partner"):
        run(command, "no-such-partner")
