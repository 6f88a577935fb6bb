import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channel_manager.settings")
try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    # A missing or bad setting (SECRET_KEY, ...) is one line on stderr, not a traceback. Exit
    # status 4 is gunicorn's "App failed to load": its master then stops, instead of booting
    # workers that fail the same way again and again.
    print(f"channel_manager: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None
