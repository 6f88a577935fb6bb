"""WSGI entry point of the floor project: `gunicorn bench.floor.wsgi` (bench/bench.py sets
DJANGO_SETTINGS_MODULE=bench.floor.settings explicitly, as app_env would otherwise name the
product's)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor.settings")
application = get_wsgi_application()
