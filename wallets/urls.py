from django.urls import path

from wallets import views

urlpatterns = [
    path("wallets/<str:token>", views.wallet_manifest, name="wallet-manifest"),
    path("wallets/<str:token>/pass.pkpass", views.wallet_pkpass, name="wallet-pkpass"),
]
