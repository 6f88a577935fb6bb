"""The OCTO supplier API (/octo/): a second façade over the same order, catalog and wallet
services as the partner API, speaking the Open Connectivity for Tours, Activities and
Attractions standard (octotravel/octo-types). Products and availability are read from the
catalog; a booking is an order (OctoBooking maps its uuid and unit-item uuids to the order);
errors are OCTO's {"error", "errorMessage"}. Nothing imports this package but the URLs."""
