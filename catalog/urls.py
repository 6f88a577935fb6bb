from django.urls import path

from catalog import api

urlpatterns = [
    path("items", api.CatalogItemsView.as_view(), name="catalog-items"),
    path("items/<str:itemId>/availability", api.AvailabilityView.as_view(), name="catalog-availability"),
]
