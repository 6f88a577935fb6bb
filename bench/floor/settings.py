"""Settings of the floor project: a bare Django+DRF one-INSERT endpoint.

What "bare" means here, and why:

- INSTALLED_APPS: rest_framework and this app only. `startproject`'s admin, auth, sessions,
  messages and staticfiles serve no request of this endpoint.
- MIDDLEWARE: `startproject`'s defaults minus sessions, CSRF, authentication (it needs sessions)
  and messages, i.e. SecurityMiddleware, CommonMiddleware and XFrameOptionsMiddleware: the part
  of a default project that every request still goes through.
- DRF: JSON parser and renderer only (as the product), no authentication, permission or
  throttle classes, no unauthenticated user object.
- The database is the product's: DATABASE_URL parsed the same way, with the same persistent
  connections (CONN_MAX_AGE, default 60) and health checks (one `SELECT 1` per request), so that
  the floor measures the framework and one INSERT, not connection set-up.
- DEBUG off, SECRET_KEY and ALLOWED_HOSTS from the environment (bench/common.py app_env), USE_TZ.
  No logging configuration: Django's defaults.

The table (bench_floor_row) is created by bench/bench.py with plain SQL before the phase; the
model is unmanaged, so there are no migrations.
"""

import os

import dj_database_url

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]

INSTALLED_APPS = ["rest_framework", "bench.floor"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bench.floor.urls"
WSGI_APPLICATION = "bench.floor.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=int(os.environ.get("CONN_MAX_AGE", 60)))
}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
