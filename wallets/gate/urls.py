from django.urls import path

from channel_manager.kernel.logs import register_operations
from wallets.gate import api, keys

urlpatterns = [
    path("scans", api.ScanView.as_view(), name="gate-scans"),
    path("keys", keys.GateKeysView.as_view(), name="gate-keys"),
]

register_operations({
    ("gate-scans", "POST"): "gateScan",
    ("gate-keys", "GET"): "getGateKeys",
})
