from django.urls import path

from catalog import api
from channel_manager.kernel.logs import register_operations

urlpatterns = [
    path("items", api.CatalogItemsView.as_view(), name="catalog-items"),
    path("items/<str:itemId>/availability", api.AvailabilityView.as_view(), name="catalog-availability"),
]

register_operations({
    ("catalog-items", "GET"): "listCatalogItems",
    ("catalog-availability", "GET"): "getAvailability",
})
