"""`manage.py bootstrap_demo`: the demo catalog and the demo partner, idempotently.

It does not migrate (`run_demo` does that first). API keys are shown once and stored hashed, so
the demo key is kept in a local file beside the SQLite database (`var/demo_api_key` by default)
and reused for as long as it still authenticates. Beside it, `demo_staff_logins` keeps the
passwords of the demo's staff logins (admin, support, finance: channel_manager.demo), which it
also creates, with three demo orders (Issued, Draft and Error).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from catalog.models import Venue
from channel_manager import demo
from channel_manager.kernel import partners
from channel_manager.kernel.authentication import key_owner, partner_for_key
from channel_manager.kernel.models import Partner

DEMO_PARTNER_ID = "demo-travel"
DEMO_PARTNER_NAME = "Demo Travel"
DEMO_ITEM_ID = "DAY-ADULT"
DEMO_CATALOG = Path(settings.BASE_DIR) / "catalog" / "data" / "demo_catalog.json"


def default_key_file() -> Path:
    """Beside the SQLite database, so that each SQLITE_PATH keeps its own demo key."""
    return Path(settings.SQLITE_PATH).parent / "demo_api_key"


def test_key_file(key_file: Path) -> Path:
    """The demo test key's file, beside the live key's (demo_api_key -> demo_test_api_key)."""
    return key_file.with_name(key_file.name.replace("api_key", "test_api_key", 1)
                              if "api_key" in key_file.name else key_file.name + ".test")


def venue_today() -> dt.date:
    venue = Venue.objects.first()
    zone = venue.time_zone if venue else settings.VENUE_TIME_ZONE
    return timezone.now().astimezone(ZoneInfo(zone)).date()


def read_key(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError):
        return None


def write_key(path: Path, raw_key: str) -> None:
    """Replace the file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".demo_api_key.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(raw_key + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = (
        "Load the demo catalog and create the demo partner 'demo-travel' if missing; print its "
        "API key and curl examples. Safe to run again: it reuses what exists."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--key-file",
            type=Path,
            default=None,
            help="Where the demo API key is kept (default: demo_api_key beside the SQLite DB).",
        )
        parser.add_argument(
            "--port",
            default=os.environ.get("PORT", "8000"),
            help="Port used in the printed curl examples (default: $PORT or 8000).",
        )

    def handle(self, *args, key_file: Path | None, port: str, **options) -> None:
        key_file = key_file or default_key_file()

        if DEMO_CATALOG.is_file():
            call_command("load_catalog", str(DEMO_CATALOG), stdout=self.stdout, stderr=self.stderr)
        else:
            self.stderr.write(f"Demo catalog {DEMO_CATALOG} not found; skipping the catalog.")

        raw_key = self.demo_key(key_file)
        test_key = self.demo_test_key(test_key_file(key_file))
        orders = []
        if Venue.objects.exists():
            orders = demo.ensure_demo_orders(Partner.objects.get(partner_id=DEMO_PARTNER_ID))
        logins_file = key_file.parent / demo.STAFF_LOGINS_FILE
        logins = demo.ensure_staff_logins(logins_file)
        self.print_instructions(raw_key, key_file, port, test_key=test_key)
        self.print_staff(logins, logins_file, orders, port)

    def demo_test_key(self, path: Path) -> str:
        """The demo partner's test key (test mode: test orders only), kept beside the live key."""
        partner = Partner.objects.get(partner_id=DEMO_PARTNER_ID)
        raw_key = read_key(path)
        owner = key_owner(raw_key)
        if owner is not None and owner[0].pk == partner.pk and owner[1] is False:
            return raw_key
        _, raw_key = partners.issue_api_key(partner=partner, label="demo test key", livemode=False)
        write_key(path, raw_key)
        return raw_key

    def demo_key(self, key_file: Path) -> str:
        partner = Partner.objects.filter(partner_id=DEMO_PARTNER_ID).first()
        if partner is None:
            partner, raw_key = partners.create_partner(
                partner_id=DEMO_PARTNER_ID, name=DEMO_PARTNER_NAME
            )
            write_key(key_file, raw_key)
            self.stdout.write(f"Created demo partner {DEMO_PARTNER_ID} ({DEMO_PARTNER_NAME}).")
            return raw_key

        if not partner.enabled:
            self.stderr.write(
                f"Partner {DEMO_PARTNER_ID} is disabled; its requests answer 403 until "
                f"`python manage.py enable_partner {DEMO_PARTNER_ID}`."
            )
        raw_key = read_key(key_file)
        owner = partner_for_key(raw_key)
        if owner is not None and owner.pk == partner.pk:
            self.stdout.write(
                f"Demo partner {DEMO_PARTNER_ID} exists; reusing its API key from {key_file}."
            )
            return raw_key

        _, raw_key = partners.issue_api_key(partner=partner, label="demo")
        write_key(key_file, raw_key)
        self.stdout.write(
            f"Issued a new API key for the demo partner {DEMO_PARTNER_ID} (saved in {key_file})."
        )
        return raw_key

    def print_instructions(self, raw_key: str, key_file: Path, port: str, *, test_key: str = "") -> None:
        base = f"http://127.0.0.1:{port}"
        visit_date = (venue_today() + dt.timedelta(days=7)).isoformat()
        auth = shlex.quote(f"Authorization: Bearer {raw_key}")
        # The reference is made unique per paste by the shell, so the example can be rerun.
        body = (
            '{"partnerId": "' + DEMO_PARTNER_ID + '", '
            '"sellToOrderReference": "DEMO-\'"$(date +%Y%m%d%H%M%S)"\'", '
            '"items": [{"itemId": "' + DEMO_ITEM_ID + '", "quantity": 2, '
            '"visitDate": "' + visit_date + '"}]}'
        )
        lines = [
            "",
            f"Demo partner: {DEMO_PARTNER_ID}",
            f"API key:      {raw_key}",
            f"              (kept in {key_file})",
            f"Test key:     {test_key}",
            "              (test mode: test orders only, never live tickets; see README \"Test mode\")",
            "",
            "Create an order (answers 202 with a Location header):",
            "",
            f"  curl -i -X POST {base}/channelManager \\",
            f"    -H {auth} \\",
            "    -H 'Content-Type: application/json' \\",
            f"    -d '{body}'",
            "",
            "Get it back (the orderId is in the Location header and the body):",
            "",
            f"  curl -s {base}/channelManager/ORDER_ID -H {auth}",
            "",
            f"API docs: {base}/api/docs/",
            "",
        ]
        self.stdout.write("\n".join(lines))

    def print_staff(self, logins, logins_file: Path, orders, port: str) -> None:
        width = max(len(login.username) for login, _ in logins)
        lines = [f"Staff console: http://127.0.0.1:{port}/admin/  (username, password; kept in {logins_file})", ""]
        lines += [f"  {login.username:<{width}}  {password}  {login.what}" for login, password in logins]
        if orders:
            lines += ["", "Demo orders: " + ", ".join(f"{o.sell_to_order_reference} {o.status}" for o in orders)]
            page = next(filter(None, (demo.wallet_page_path(o) for o in orders if o.status == "Issued")), None)
            if page:
                lines.append(f"A wallet page (a customer's tickets): http://127.0.0.1:{port}{page}")
        self.stdout.write("\n".join(lines + [""]))
