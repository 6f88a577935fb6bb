"""The demo's staff logins and orders (`manage.py bootstrap_demo`, run by `make run`).

Staff logins: a superuser, a Support and a Finance user, with generated passwords kept in
`demo_staff_logins` beside the demo API key (var/ by default; readable by its owner only) and
reused while they still work; a password that no longer works is replaced, so that what
`make run` prints always logs in.

Orders: three of the demo partner's, placed and issued through the same services as the
partner API and the workers (create_order, then issue_order in this process), so that the admin
shows every settled status at once: one Issued, one Draft, and one in Error for a real reason
(a package whose timed component has no time: the mistake a new integrator makes first).
Each is created once, by its sellToOrderReference.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse

from catalog.selectors import venue_today
from channel_manager.kernel.models import Partner
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order
from channel_manager.orders.services import LineInput, OrderInput, create_order
from wallets.models import Wallet

STAFF_LOGINS_FILE = "demo_staff_logins"


@dataclass(frozen=True)
class StaffLogin:
    username: str
    group: str | None  # None: a superuser
    what: str  # what the login is for, as printed


DEMO_STAFF = (
    StaffLogin("admin", None, "superuser: everything, also the task queue"),
    StaffLogin("support", "Support", "Support: orders and their triage (one demo order is in Error)"),
    StaffLogin("finance", "Finance", "Finance: orders, partners and the exports"),
)


def new_password() -> str:
    """16 letters and digits: selected whole by a double click, pasted without surprises."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def write_private(path: Path, text: str) -> None:
    """Replace the file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_logins(path: Path) -> dict[str, str]:
    """username -> password from "username password" lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError):
        return {}
    logins = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            logins[parts[0]] = parts[1]
    return logins


def ensure_staff_logins(path: Path) -> list[tuple[StaffLogin, str]]:
    """Each demo login exists, is active staff in its group, and logs in with the password kept
    in `path`. Returns (login, password) for each."""
    User = get_user_model()
    kept = read_logins(path)
    result = []
    changed = False
    with transaction.atomic():
        for login in DEMO_STAFF:
            password = kept.get(login.username)
            user = User.objects.filter(username=login.username).first()
            if user is None:
                user = User(username=login.username, email=f"{login.username}@example.com")
            if not password or user.pk is None or not user.check_password(password):
                password = new_password()
                user.set_password(password)
                changed = True
            user.is_active = user.is_staff = True
            user.is_superuser = login.group is None
            user.save()
            if login.group:
                user.groups.add(Group.objects.get(name=login.group))  # made by migrate
            result.append((login, password))
    if changed or set(kept) != {login.username for login in DEMO_STAFF}:
        lines = ["# The demo's staff logins (manage.py bootstrap_demo): username password"]
        lines += [f"{login.username} {password}" for login, password in result]
        write_private(path, "\n".join(lines) + "\n")
    return result


def demo_order_inputs(today: dt.date) -> list[OrderInput]:
    visit = today + dt.timedelta(days=7)
    return [
        OrderInput(
            sell_to_order_reference="DEMO-ISSUED-1",
            payment_reference="PAY-DEMO-1",
            customer={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
            lines=(LineInput(item_code="DAY-ADULT", quantity=2, visit_date=visit,
                             external_reference_numbers=("DEMO-ISSUED-1-1", "DEMO-ISSUED-1-2")),),
        ),
        OrderInput(
            sell_to_order_reference="DEMO-DRAFT-1",
            customer={"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com"},
            lines=(LineInput(item_code="FAMILY-GROUP", quantity=4, visit_date=visit),),
        ),
        # PARK-AND-SHOW includes the timed SHOW-EVENING: without a componentSchedule naming its
        # slot, issuance settles the order in Error ("... needs a visitTime ...").
        OrderInput(
            sell_to_order_reference="DEMO-ERROR-1",
            payment_reference="PAY-DEMO-3",
            customer={"firstName": "Alan", "lastName": "Turing", "email": "alan@example.com"},
            lines=(LineInput(item_code="PARK-AND-SHOW", quantity=1, visit_date=visit),),
        ),
    ]


def ensure_demo_orders(partner: Partner) -> list[Order]:
    """The demo orders the partner does not have yet, placed and issued; returns all of them."""
    inputs = demo_order_inputs(venue_today())
    references = [entry.sell_to_order_reference for entry in inputs]
    have = set(
        Order.objects.filter(partner=partner, sell_to_order_reference__in=references)
        .values_list("sell_to_order_reference", flat=True)
    )
    for entry in inputs:
        if entry.sell_to_order_reference not in have:
            order = create_order(partner=partner, order_input=entry)
            issue_order(order_pk=order.pk)  # as the worker would, here and now
    return list(
        Order.objects.filter(partner=partner, sell_to_order_reference__in=references).order_by("pk")
    )


def wallet_page_path(order: Order) -> str | None:
    """The path of the order's first minted wallet page (a capability URL), if it has one."""
    token = (
        Wallet.objects.filter(order_link__order=order, manifest_token__isnull=False)
        .order_by("pk").values_list("manifest_token", flat=True).first()
    )
    return reverse("wallet-manifest", kwargs={"token": token}) if token else None
