"""The staff back office, split by subject: orders (triage and actions), partners (and their
API keys) and exports (finance). Importing the package registers all three."""

from channel_manager.orders.admin import exports, orders, partners  # noqa: F401
