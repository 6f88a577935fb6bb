"""What wallets tell the layers above them, which they may not import (the order side connects
receivers in its AppConfig.ready)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the scan's transaction when an asset is redeemed for the first time (not when a
# redemption moves to an earlier offline scan), with `wallet_ids` (the wallets holding the
# redeemed assets) and `at` (the scan's time). A receiver writes in the same transaction: it
# commits with the redemption or not at all.
redemption_recorded = Signal()
