"""The staff back office, split by subject: orders (triage and actions), partners (and their
API keys), exports (finance) and tombstones (deleted orders). Importing the package registers
them all."""

from channel_manager.orders.admin import exports, orders, partners, tombstones  # noqa: F401
