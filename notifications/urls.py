from django.urls import path

from channel_manager.kernel.logs import register_operations
from notifications import views

urlpatterns = [
    path("subscriptions", views.SubscriptionCollectionView.as_view(), name="notification-subscriptions"),
    path(
        "subscriptions/<str:subscriptionId>", views.SubscriptionDetailView.as_view(), name="notification-subscription"
    ),
    path("events", views.EventCollectionView.as_view(), name="notification-events"),
]

register_operations({
    ("notification-subscriptions", "POST"): "createSubscription",
    ("notification-subscriptions", "GET"): "listSubscriptions",
    ("notification-subscription", "DELETE"): "deleteSubscription",
    ("notification-events", "GET"): "listEvents",
})
