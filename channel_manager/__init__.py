"""The OTA Channel Manager project: settings, URLs and the wiring of its layers (kernel,
catalog, wallets, notifications, orders, ops). See README "Architecture"."""
