from django.urls import path

from channel_manager.kernel.logs import register_operations
from channel_manager.orders.api import views

urlpatterns = [
    path("channelManager", views.OrderCollectionView.as_view(), name="orders"),
    path("channelManager/<str:orderId>", views.OrderDetailView.as_view(), name="order-detail"),
    path("channelManager/<str:orderId>/confirm", views.OrderConfirmView.as_view(), name="order-confirm"),
]

register_operations({
    ("orders", "POST"): "createOrder",
    ("orders", "GET"): "findOrders",
    ("order-detail", "GET"): "getOrder",
    ("order-detail", "PUT"): "replaceOrder",
    ("order-detail", "DELETE"): "deleteOrder",
    ("order-confirm", "POST"): "confirmOrder",
})
