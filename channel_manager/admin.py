"""Django's admin autodiscovery imports this module: the orders package registers its admins."""

import channel_manager.orders.admin  # noqa: F401
