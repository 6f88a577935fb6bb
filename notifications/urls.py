from django.urls import path

from notifications import views

urlpatterns = [
    path("subscriptions", views.SubscriptionCollectionView.as_view(), name="notification-subscriptions"),
    path(
        "subscriptions/<str:subscriptionId>", views.SubscriptionDetailView.as_view(), name="notification-subscription"
    ),
    path("events", views.EventCollectionView.as_view(), name="notification-events"),
]
