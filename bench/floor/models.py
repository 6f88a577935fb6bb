"""The one row the floor endpoint inserts per request."""

from django.db import models
from django.utils import timezone


class FloorRow(models.Model):
    """One request's row; the table is bench/floor/schema.py's (unmanaged: a bare project that only
    benchmarks has no migrations)."""

    partner_id = models.CharField(max_length=64)
    reference = models.CharField(max_length=64)
    email = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "bench_floor_row"

    def __str__(self) -> str:
        return self.reference
