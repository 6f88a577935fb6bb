"""The gate: devices at the venue's entrance scan what customers present and admit each asset
once. It reads only wallets and catalog rows, never orders (API.md, "Gate admission")."""
