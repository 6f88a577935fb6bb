"""Orders: the lifecycle a partner drives (create, replace, confirm, delete), the one transition
function, background issuance, the partner API, the staff admin and finance exports. Orders
orchestrate the catalog, wallets and notifications; nothing below imports them."""
