from django.urls import path

from wallets.gate import api

urlpatterns = [
    path("scans", api.ScanView.as_view(), name="gate-scans"),
]
