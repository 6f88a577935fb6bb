"""python manage.py load_catalog FILE: create or update the catalog from its JSON file."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.loading import load_catalog
from catalog.specs import CatalogInvalid


class Command(BaseCommand):
    help = (
        "Create or update the catalog (venue, items, time slots, package components, coupons) "
        "from a JSON file; the whole file is checked first and an invalid file changes nothing. "
        "Running it twice changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help='the catalog JSON file ("-" reads standard input)')
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check the file and report the changes without saving",
        )

    def handle(self, *args, **options) -> None:
        name = options["file"]
        try:
            text = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror or exc}") from exc
        try:
            result = load_catalog(text=text, dry_run=options["dry_run"])
        except CatalogInvalid as exc:
            raise CommandError(
                f"{name}: {len(exc.problems)} problem(s), nothing was changed:\n  " + "\n  ".join(exc.problems)
            ) from exc
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        self.stdout.write(self.style.SUCCESS(result.summary()))
