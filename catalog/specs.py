"""What a valid catalog file says (format: API.md, "Catalog file"), and what loading it did."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class VenueSpec:
    name: str
    time_zone: str
    currency: str


@dataclass(frozen=True)
class SlotSpec:
    time: dt.time
    capacity: int | None


@dataclass(frozen=True)
class CouponSpec:
    code: str
    description: str
    valid_days: int


@dataclass
class ItemSpec:
    item_id: str
    name: str
    item_type: str
    price: Decimal
    active: bool = True
    sale_from: dt.date | None = None
    sale_until: dt.date | None = None
    capacity_per_day: int | None = None
    max_group_size: int | None = None
    # A timed ticket's admission window at the gate, in minutes either side of its visitTime.
    admit_before_minutes: int = 60
    admit_after_minutes: int = 60
    time_slots: list[SlotSpec] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # itemIds, in order
    coupons: list[CouponSpec] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "item_type": self.item_type,
            "price": self.price,
            "active": self.active,
            "sale_from": self.sale_from,
            "sale_until": self.sale_until,
            "capacity_per_day": self.capacity_per_day,
            "max_group_size": self.max_group_size,
            "admit_before_minutes": self.admit_before_minutes,
            "admit_after_minutes": self.admit_after_minutes,
        }


@dataclass
class CatalogSpec:
    venue: VenueSpec | None  # None: the file names no venue; the row is left as it is
    items: list[ItemSpec]


class CatalogInvalid(Exception):
    """The file has problems; `problems` lists each as "path: message"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the catalog file:\n" + "\n".join(problems))


@dataclass
class LoadResult:
    venue: str = "unchanged"  # created, updated, unchanged, or absent (not in the file)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    capacity_rows_updated: int = 0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        prefix = "Dry run, nothing saved: " if self.dry_run else "Catalog loaded: "
        return (
            f"{prefix}venue {self.venue}; items {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged; {self.capacity_rows_updated} capacity rows updated"
            + (f"; {len(self.warnings)} warning(s)" if self.warnings else "")
            + "."
        )


