"""`manage.py enable_partner PARTNER_ID`"""

from channel_manager.kernel.commands import SetPartnerEnabledCommand


class Command(SetPartnerEnabledCommand):
    help = "Switch a disabled partnership back on."
    enabled = True
