"""The catalog: venue, items, packages and coupons, time slots and capacity rows, reserving and
releasing capacity, and the catalog and availability API. Knows only the kernel."""
