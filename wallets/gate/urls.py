from django.urls import path

from channel_manager.kernel.logs import register_operations
from wallets.gate import api, offline

urlpatterns = [
    path("scans", api.ScanView.as_view(), name="gate-scans"),
    path("scans/batch", offline.ScanBatchView.as_view(), name="gate-scans-batch"),
    path("sync", offline.SyncView.as_view(), name="gate-sync"),
]

register_operations({
    ("gate-scans", "POST"): "gateScan",
    ("gate-scans-batch", "POST"): "uploadGateScans",
    ("gate-sync", "GET"): "syncGate",
})
