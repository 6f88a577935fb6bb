"""The URLs of the whole product: each app's API, the customer pages, the admin and operations."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from channel_manager.kernel import metrics
from channel_manager.ops import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("channel_manager.orders.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("notifications/", include("notifications.urls")),
    path("catalog/", include("catalog.urls")),
    path("", include("wallets.urls")),
    path("gate/", include("wallets.gate.urls")),
    path("octo/", include("channel_manager.octo.urls")),
    path("admin/", admin.site.urls),
]

# The partner API answers problem+json even for a path that matches no route.
handler404 = "channel_manager.kernel.problems.page_not_found"
