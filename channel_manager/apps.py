from django.apps import AppConfig


class ChannelManagerConfig(AppConfig):
    name = "channel_manager"
    verbose_name = "Channel manager"
    default_auto_field = "django.db.models.BigAutoField"
