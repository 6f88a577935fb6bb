"""Settings, read from the environment. Production-safe defaults; `make run` sets dev values."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from channel_manager import devsettings

BASE_DIR = Path(__file__).resolve().parent.parent
# The embedded default (no DATABASE_URL) reads its development settings (a generated SECRET_KEY,
# CM_DEV, WEBHOOK_ALLOW_PRIVATE_TARGETS) from var/dev.env, which `make run` writes; the
# environment wins over the file (channel_manager/devsettings.py).
DEV_SETTINGS_FILE = devsettings.dev_file(BASE_DIR)
if not os.environ.get("DATABASE_URL"):
    devsettings.load(DEV_SETTINGS_FILE)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


DEBUG = env_bool("DEBUG", False)
# Development (`make run`, the tests): plain http on 127.0.0.1, plain-text logs.
DEV = DEBUG or env_bool("CM_DEV", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG or env_bool("CM_DEV", False):
        SECRET_KEY = "dev-only-insecure-secret-key-change-me"
    else:
        # One line (manage.py and wsgi.py print it without a traceback).
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: production needs it in the environment "
            "(channel_manager/deploy/production.env.example); in a checkout, `make run` writes "
            f"{DEV_SETTINGS_FILE} with development settings."
        )

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h.strip()]
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
VENUE_TIME_ZONE = os.environ.get("VENUE_TIME_ZONE", "Europe/Amsterdam")
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
# Webhook delivery (notifications.delivery): the TCP connect must succeed within the first of
# these, the whole exchange within the second.
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env_float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3.0)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
# Resolving a webhook host (on subscribing and before every send) must answer within this.
WEBHOOK_DNS_TIMEOUT_SECONDS = env_float("WEBHOOK_DNS_TIMEOUT_SECONDS", 2.0)
# Circuit breaker per subscription: after this many consecutive failed attempts (no answer, 429,
# 5xx) nothing is sent to it for a cool-down that doubles with each further failure, up to the
# maximum; then one probe. Its deliveries stay pending meanwhile.
WEBHOOK_BREAKER_THRESHOLD = env_int("WEBHOOK_BREAKER_THRESHOLD", 5)
WEBHOOK_BREAKER_COOLDOWN_SECONDS = env_int("WEBHOOK_BREAKER_COOLDOWN_SECONDS", 30)
WEBHOOK_BREAKER_MAX_COOLDOWN_SECONDS = env_int("WEBHOOK_BREAKER_MAX_COOLDOWN_SECONDS", 900)
# At most this many deliveries of one partner are sent at once, across all webhook workers.
WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = env_int("WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER", 2)
# notifications is a generic outbox: it is told here which event types partners may subscribe
# to (type -> what it announces), and how its partner API names what an event is about (API.md).
NOTIFICATION_EVENT_TYPES = {
    "ota_cm_order_processed": "An order settled into Draft, Issued or Error",
    "ota_cm_order_redeemed": "A ticket or coupon of an order was used at the gate for the first time",
}
# An event's body (an order, with its ticket numbers and manifest URLs) is shown in the admin
# only to staff holding all of these permissions.
NOTIFICATION_BODY_PERMISSIONS = ["wallets.view_wallet", "wallets.view_asset"]
NOTIFICATION_SUBJECT = {
    "field": "orderId",
    "description": "The order the event is about.",
    "data": '{"order": <Order>}',  # what a webhook's "data" holds, for the API description
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "catalog",
    "channel_manager",
    "wallets",
    "notifications",
]

MIDDLEWARE = [
    # First: the request id and access log (channel_manager.kernel.logs), then request timing.
    "channel_manager.kernel.logs.RequestContextMiddleware",
    "channel_manager.kernel.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Sessions, staff auth and messages run for the admin and the pages, not for the partner API
    # (settings.PARTNER_API_PREFIXES): see channel_manager.kernel.middleware.OffPartnerApi.
    "channel_manager.kernel.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "channel_manager.kernel.middleware.AuthenticationMiddleware",
    "channel_manager.kernel.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # OCTO's error shape for whatever the guards below answer on /octo/ (channel_manager.octo).
    "channel_manager.octo.errors.OctoErrorsMiddleware",
    "channel_manager.kernel.middleware.ApiGuardMiddleware",
    "channel_manager.kernel.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "channel_manager.urls"
WSGI_APPLICATION = "channel_manager.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is SQLite in WAL mode with IMMEDIATE transactions, so that the web
# server and the qcluster processes can share one file without "database is locked" upgrades.
SQLITE_PATH = devsettings.sqlite_path(BASE_DIR)
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("CONN_MAX_AGE", 60))}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            },
        }
    }

# The gate's hot statements are prepared once per connection (channel_manager.kernel.prepared).
# Turn off behind a pooler in transaction mode that does not track prepared statements
# (PgBouncer before 1.21, or without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# Request bodies above this answer 413 payload_too_large.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
MAX_WALLETS_PER_ORDER = env_int("MAX_WALLETS_PER_ORDER", 500)
# findOrders stops adding orders to a page once it holds this many live wallets (always at
# least one order), so that a page of large orders stays a few megabytes.
MAX_WALLETS_PER_PAGE = env_int("MAX_WALLETS_PER_PAGE", 1000)
# Visit dates (and componentSchedule dates) more than this many days after the venue's today are
# refused at submission (400 validation_error on the field).
MAX_VISIT_HORIZON_DAYS = env_int("MAX_VISIT_HORIZON_DAYS", 730)
# QR payloads are signed with the venue's Ed25519 key (wallets.gate.keystore): kept in the database
# sealed under SECRET_KEY, or read from this PEM file when set. Processes reload keys this often.
GATE_SIGNING_KEY_FILE = os.environ.get("GATE_SIGNING_KEY_FILE", "")
GATE_KEY_CACHE_SECONDS = env_int("GATE_KEY_CACHE_SECONDS", 60)
# A retired key stays listed in /gate/keys at least this many days (and while its codes can be used).
GATE_KEY_RETIRED_MIN_DAYS = env_int("GATE_KEY_RETIRED_MIN_DAYS", 7)
# The partner API's paths: JSON bodies, problem+json errors, Idempotency-Key (kernel middleware).
PARTNER_API_PREFIXES = ("/channelManager", "/notifications/", "/catalog/", "/gate/", "/octo/")
# Pages under those prefixes (the gate's scanner page): sessions, CSRF and forms, like the admin.
API_PAGE_PREFIXES = ("/gate/scan/",)
# Paths of the API whose callers are not partners (gate devices): no Idempotency-Key records,
# which are kept per partner.
IDEMPOTENCY_EXEMPT_PREFIXES = ("/gate/",)
IDEMPOTENCY_RETENTION_HOURS = env_int("IDEMPOTENCY_RETENTION_HOURS", 48)
# A request holding an Idempotency-Key longer than this is presumed dead and may be taken over.
IDEMPOTENCY_LOCK_SECONDS = env_int("IDEMPOTENCY_LOCK_SECONDS", 60)
# In-flight orders untouched for this long are re-enqueued by the sweeper.
ISSUANCE_STUCK_SECONDS = env_int("ISSUANCE_STUCK_SECONDS", 120)
# An order whose issuance started this many times without finishing (a crash loop) settles in Error.
ISSUANCE_MAX_ATTEMPTS = env_int("ISSUANCE_MAX_ATTEMPTS", 5)
# Issuance claims due orders in batches of this many; a run stops claiming after this long
# (well inside the task timeout) and queues its successor.
ISSUANCE_BATCH_SIZE = env_int("ISSUANCE_BATCH_SIZE", 50)
ISSUANCE_RUN_SECONDS = env_int("ISSUANCE_RUN_SECONDS", 20)
# OCTO answers with the booking: how long a request issues its order inline before it gives up.
OCTO_INLINE_ISSUANCE_SECONDS = env_int("OCTO_INLINE_ISSUANCE_SECONDS", 10)
# A run asked for this long ago and not started is taken as lost, and asked for again.
ISSUANCE_SIGNAL_STALE_SECONDS = env_int("ISSUANCE_SIGNAL_STALE_SECONDS", 5)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["channel_manager.kernel.authentication.PartnerApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["channel_manager.kernel.authentication.IsActivePartner"],
    # DRF's JSONParser, refusing deep nesting as 400 malformed_json (not a RecursionError 500).
    "DEFAULT_PARSER_CLASSES": ["channel_manager.kernel.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "channel_manager.kernel.negotiation.ContentNegotiation",
    "EXCEPTION_HANDLER": "channel_manager.kernel.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["channel_manager.kernel.throttling.PartnerRateThrottle"],
    # e.g. "50/second" or "3000/minute"; empty switches rate limiting off.
    "DEFAULT_THROTTLE_RATES": {"partner": os.environ.get("RATE_LIMIT_PER_PARTNER", "100/second") or None},
}

CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith("redis"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "channel-manager"}}

SPECTACULAR_SETTINGS = {
    "TITLE": "OTA Channel Manager partner API",
    "DESCRIPTION": "Orders in, tickets, coupons and wallets out. See README.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Two queues on one ORM broker (django-q2 clusters): issuance on the default one, webhook
# deliveries on their own, so that a partner's slow endpoint never holds an issuance worker.
# Q_SITE_NAME names the site (it salts the task signatures: the same on every process);
# Q_CLUSTER_NAME (django-q2's own variable) picks the queue a `manage.py qcluster` serves:
# unset for issuance, WEBHOOK_QUEUE for deliveries.
ISSUANCE_QUEUE = os.environ.get("Q_SITE_NAME", "channel_manager")
WEBHOOK_QUEUE = "webhooks"
if os.environ.get("Q_CLUSTER_NAME", "") not in ("", ISSUANCE_QUEUE, WEBHOOK_QUEUE):
    # Before the webhook queue, Q_CLUSTER_NAME named the site; a cluster started with an old
    # value would serve a queue nobody enqueues to.
    raise ImproperlyConfigured(
        f"Q_CLUSTER_NAME must be unset (issuance), {ISSUANCE_QUEUE!r} or {WEBHOOK_QUEUE!r}; "
        "the site name is Q_SITE_NAME"
    )
Q_CLUSTER = {
    "name": ISSUANCE_QUEUE,
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    # A task running longer than `timeout` is killed; one not acknowledged within `retry`
    # (its worker died) is handed out again. timeout < retry, as django-q2 requires.
    "timeout": env_int("Q_TIMEOUT", 120),
    "retry": env_int("Q_RETRY", 180),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 5),
    "ack_failures": True,
    "catch_up": False,
    # Successful results are not stored: the orders and deliveries are the record.
    "save_limit": -1,
    "poll": 0.05,
    "bulk": 10,
    "label": "Task queue",
    "ALT_CLUSTERS": {
        WEBHOOK_QUEUE: {
            # Mostly waiting on partners' endpoints, not on the CPU: more workers than cores.
            "workers": env_int("Q_WEBHOOK_WORKERS", 4),
            "timeout": env_int("Q_WEBHOOK_TIMEOUT", 120),
            "retry": env_int("Q_WEBHOOK_RETRY", 180),
            "poll": 0.2,
        },
    },
}

# Logs go to stderr: JSON lines in production, plain text in development unless LOG_FORMAT=json
# (channel_manager/logs.py: request id, partner, order, operation; secrets redacted).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or ("plain" if DEV else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "channel_manager.kernel.logs.ContextFilter"}},
    "formatters": {
        "plain": {"()": "channel_manager.kernel.logs.PlainFormatter"},
        "json": {"()": "channel_manager.kernel.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # SQL with its parameters (which include webhook secrets) is never logged.
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# ---- operations: /healthz, /readyz, /metrics, housekeeping (README "Running in production") ----

# /readyz: 503 once no qcluster scheduler has run for this long, or the oldest queued task waited this long.
QCLUSTER_MAX_SILENCE_SECONDS = env_int("QCLUSTER_MAX_SILENCE_SECONDS", 60)
QUEUE_MAX_AGE_SECONDS = env_int("QUEUE_MAX_AGE_SECONDS", 300)
# /metrics: a bearer token; without one, only these comma-separated CIDRs may scrape (plus loopback
# under DEV). In production with neither set, /metrics is refused (kernel/metrics.py).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = [n.strip() for n in os.environ.get("METRICS_ALLOWED_NETWORKS", "").split(",") if n.strip()]
# Housekeeping schedules: rows deleted per run, and how long things are kept.
HOUSEKEEPING_BATCH = env_int("HOUSEKEEPING_BATCH", 10_000)
TASK_RESULT_RETENTION_DAYS = env_int("TASK_RESULT_RETENTION_DAYS", 7)
FAILED_TASK_RETENTION_DAYS = env_int("FAILED_TASK_RETENTION_DAYS", 30)
DELIVERY_ATTEMPT_RETENTION_DAYS = env_int("DELIVERY_ATTEMPT_RETENTION_DAYS", 30)
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 90)
# Tombstones of deleted Draft/Error orders (who, when, why, what): the audit trail finance reads.
TOMBSTONE_RETENTION_DAYS = env_int("TOMBSTONE_RETENTION_DAYS", 400)
# Test-mode orders (made with cmk_test_ keys) are removed with their wallets and events after this.
TEST_DATA_RETENTION_DAYS = env_int("TEST_DATA_RETENTION_DAYS", 30)
# The gate's change feed keeps a change this long at least, and for as long as its code is usable.
GATE_CHANGES_RETENTION_DAYS = env_int("GATE_CHANGES_RETENTION_DAYS", 30)

# ---- transport security: production defaults, off in development (plain http on 127.0.0.1) ----

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEV)
# Probes and scrapes come over plain http from inside the network (patterns match the path without "/").
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEV else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preload is a commitment to the browsers' HSTS preload list: opt in with SECURE_HSTS_PRELOAD=1.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
# SECURE_COOKIES is the older name of both switches.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", env_bool("SECURE_COOKIES", not DEV))
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", env_bool("SECURE_COOKIES", not DEV))
# Behind a TLS-terminating proxy that gunicorn does not trust (FORWARDED_ALLOW_IPS), name the header
# it sets: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    _header, _, _value = _proxy_ssl_header.partition(",")
    if not _header.strip() or not _value.strip():
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must look like HTTP_X_FORWARDED_PROTO,https")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
