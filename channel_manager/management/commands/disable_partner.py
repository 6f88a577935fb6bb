"""`manage.py disable_partner PARTNER_ID`"""

from channel_manager.kernel.commands import SetPartnerEnabledCommand


class Command(SetPartnerEnabledCommand):
    help = "Switch a partnership off: its API requests answer 403 partnership_disabled."
    enabled = False
