from django.urls import path

from channel_manager.kernel.logs import register_operations
from wallets.gate import api, keys, offline, pages

urlpatterns = [
    path("scans", api.ScanView.as_view(), name="gate-scans"),
    path("keys", keys.GateKeysView.as_view(), name="gate-keys"),
    # The scanner page (settings.API_PAGE_PREFIXES: sessions and CSRF, not the partner API's guards).
    path("scan/", pages.scanner_page, name="gate-scan-page"),
    path("scan/login", pages.device_login, name="gate-scan-login"),
    path("scan/logout", pages.device_logout, name="gate-scan-logout"),
    path("scan/check", pages.PageScanView.as_view(), name="gate-scan-check"),
    path("scans/batch", offline.ScanBatchView.as_view(), name="gate-scans-batch"),
    path("sync", offline.SyncView.as_view(), name="gate-sync"),
]

register_operations({
    ("gate-scans", "POST"): "gateScan",
    ("gate-keys", "GET"): "getGateKeys",
    ("gate-scans-batch", "POST"): "uploadGateScans",
    ("gate-sync", "GET"): "syncGate",
})
