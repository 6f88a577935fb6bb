from django.apps import AppConfig


class ChannelManagerConfig(AppConfig):
    name = "channel_manager"
    verbose_name = "Channel manager"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from channel_manager.kernel.logs import register_subject_field
        from channel_manager.kernel.metrics import add_scrape_collector
        from channel_manager.ops.collectors import DatabaseCollector, ReadinessCollector

        add_scrape_collector(DatabaseCollector())
        add_scrape_collector(ReadinessCollector())
        # The gate tells the order side of an order's first use (wallets may not import orders).
        from channel_manager.orders.receivers import announce_first_redemption
        from wallets.signals import redemption_recorded

        redemption_recorded.connect(announce_first_redemption, dispatch_uid="orders-announce-first-redemption")
        # Log lines say which order they are about (in requests, from the route's orderId).
        register_subject_field("order_id", url_kwarg="orderId")
