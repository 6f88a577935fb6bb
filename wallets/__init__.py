"""Wallets: what a customer holds (tickets and coupons), with their own validity and a snapshot
of what the customer sees; minting, the manifest page and the pass. Knows the catalog and the
kernel, never orders: the order side links its lines to wallets and pushes changes in."""
