from django.urls import path

from channel_manager.kernel.logs import register_operations
from wallets.gate import api

urlpatterns = [
    path("scans", api.ScanView.as_view(), name="gate-scans"),
]

register_operations({
    ("gate-scans", "POST"): "gateScan",
})
