"""HITL Portal settings: one file, every deployment difference from environment variables.

Bad values fail loudly at start-up (ImproperlyConfigured) instead of being guessed at.
docs/configuration.md lists every variable read here (tests/test_docs.py checks it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
# Development settings persist in a git-ignored .env that `make run` writes (DEBUG=1), so
# every documented `manage.py` command works in a checkout. The real environment wins over
# it; production sets no .env at all. HITL_ENV_FILE names another file ("" reads none).
_ENV_FILE = os.environ.get("HITL_ENV_FILE", str(BASE_DIR / ".env"))
if _ENV_FILE and Path(_ENV_FILE).is_file():
    load_dotenv(_ENV_FILE, override=False)
VAR_DIR = Path(os.environ.get("HITL_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be >= {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: list[str], sep: str = ",") -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(sep) if item.strip()]


DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if not DEBUG and len(key) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters in production")
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production (DEBUG=0) refuses to start without one; "
            "for development set DEBUG=1 and a key is generated into var/."
        )
    # Development only: a per-checkout key, generated once and never committed (var/ is ignored).
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _encryption_keys() -> list[str]:
    """HITL_ENCRYPTION_KEY: Fernet keys, comma-separated, the current one first (see
    core/crypto.py). Required in production; development generates one into var/."""
    from cryptography.fernet import Fernet

    keys = env_list("HITL_ENCRYPTION_KEY", [])
    for key in keys:
        try:
            Fernet(key.encode())
        except ValueError:
            raise ImproperlyConfigured(
                "HITL_ENCRYPTION_KEY holds a value that is not a Fernet key (32 url-safe "
                "base64-encoded bytes)"
            ) from None
    if keys:
        return keys
    if not DEBUG:
        raise ImproperlyConfigured(
            "HITL_ENCRYPTION_KEY is not set. Production (DEBUG=0) refuses to start without "
            "it: secrets at rest are encrypted with it. Generate one with: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    path = VAR_DIR / "encryption_key"
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return [path.read_text().strip()]


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production (comma-separated)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
HITL_ENCRYPTION_KEYS = _encryption_keys()
SITE_URL = env_str("HITL_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "hitlportal.apps.HitlPortalAdminConfig",
    # before django.contrib.auth: its `createsuperuser` (audited) replaces Django's
    "hitlportal.apps.HitlPortalConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_q",
    # Login for the portal (the admin login is routed through it): password, TOTP MFA with
    # recovery codes, rate limits; optional OIDC SSO below.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "core.apps.CoreConfig",
    "audit.apps.AuditConfig",
    "approvals.apps.ApprovalsConfig",
    "agents.apps.AgentsConfig",
    "api.apps.ApiConfig",
    "integrations.apps.IntegrationsConfig",
    "oversight.apps.OversightConfig",
    "notifications.apps.NotificationsConfig",
]

MIDDLEWARE = [
    # Prometheus: requests by route and status (api.metrics, served at /metrics).
    "api.metrics.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every page (django-csp): no inline script anywhere.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # /api/: NUL in a query parameter is a 400; a database outage is a 503, not a 500.
    "api.middleware.ApiGuardMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After auth: staff without TOTP are sent to set it up when HITL_REQUIRE_MFA is on.
    "hitlportal.mfa.RequireMFAMiddleware",
]

ROOT_URLCONF = "hitlportal.urls"
WSGI_APPLICATION = "hitlportal.wsgi.application"
ASGI_APPLICATION = "hitlportal.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# Embedded default: a SQLite file under var/ in WAL mode. IMMEDIATE transactions take the write
# lock at BEGIN, so concurrent writers queue on the busy timeout instead of failing with
# "database is locked" half-way through a transaction (django-q2 result saves hit that).
SQLITE_PATH = VAR_DIR / "hitl.sqlite3"
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
    except Exception as exc:  # dj-database-url raises a bare ValueError/KeyError on nonsense
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if _db["ENGINE"] not in (
        "django.db.backends.postgresql",
        "django.db.backends.sqlite3",
    ):
        raise ImproperlyConfigured(f"DATABASE_URL engine {_db['ENGINE']} is not supported")
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(SQLITE_PATH)}

if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {})
    _db["OPTIONS"].update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,  # seconds a writer queues for the lock before "database is locked"
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
            ),
        }
    )
    # Tests need a file database: threads in race tests share it, :memory: would not.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test_hitl.sqlite3")}
else:
    _db["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", "test_hitl")}

if _db["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_POOL", False):
    # Under ASGI every request runs its sync part in a fresh thread, so persistent
    # connections (DB_CONN_MAX_AGE) are not reused; a process-wide pool is (Django >= 5.1).
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2, minimum=0),
        "max_size": env_int("DB_POOL_MAX_SIZE", 20, minimum=1),
        "timeout": env_int("DB_POOL_TIMEOUT", 10, minimum=1),
    }
    _db["CONN_MAX_AGE"] = 0  # required by Django with a pool

DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker ----------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    if urlparse(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must be a redis:// URL")
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # A database cache, not LocMem: django-q2's admin monitor and several processes share it.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "hitl_cache",
        }
    }

Q_CLUSTER = {
    "name": env_str("HITL_Q_NAME", "hitl"),
    "workers": env_int("HITL_Q_WORKERS", 2, minimum=1),
    # A task is leased for `retry` seconds; keep it well above `timeout` (ORM broker semantics).
    "timeout": env_int("HITL_Q_TIMEOUT", 120, minimum=1),
    "retry": env_int("HITL_Q_RETRY", 300, minimum=2),
    "max_attempts": 3,
    "queue_limit": 20,
    "bulk": 10,
    "poll": env_float("HITL_Q_POLL", 0.1),
    "save_limit": env_int("HITL_Q_SAVE_LIMIT", 500),
    "catch_up": False,
    "ack_failures": True,
    "label": "Tasks",
    "sync": env_bool("HITL_Q_SYNC", False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "admin:index"
LOGOUT_REDIRECT_URL = "account_login"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# django-allauth: accounts are created by admins (or SSO), never by public signup.
ACCOUNT_ADAPTER = "hitlportal.auth.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
# Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR blocks; empty: the
# peer address is the client). Login rate limits, the anonymous API rate limit and the
# /metrics allow-list use the client address this gives (core.clientip).
from core.clientip import parse_networks  # noqa: E402

try:
    HITL_TRUSTED_PROXIES = parse_networks(env_list("HITL_TRUSTED_PROXIES", []))
except ValueError as _exc:
    raise ImproperlyConfigured(f"HITL_TRUSTED_PROXIES: {_exc}") from None
# Rate limits (cache-backed): failed logins per IP and per account, MFA code attempts. The IP
# is the client's (HITL_TRUSTED_PROXIES), so one client cannot lock out everyone else.
ACCOUNT_RATE_LIMITS = {
    "login": env_str("HITL_LOGIN_RATE_IP", "30/m/ip"),
    "login_failed": env_str("HITL_LOGIN_FAILED_RATE", "10/m/ip,5/300s/key"),
    "change_password": "5/m/user",
    "reset_password": "20/m/ip,5/m/key",
    "reauthenticate": "10/m/user",
}
MFA_ADAPTER = "hitlportal.auth.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("HITL_MFA_ISSUER", "HITL Portal")
MFA_RECOVERY_CODE_COUNT = 10
# Staff users (reviewers, managers, admins) must enrol TOTP before using the portal.
HITL_REQUIRE_MFA = env_bool("HITL_REQUIRE_MFA", False)

# Optional single sign-on through any OpenID Connect provider (Keycloak, Okta, Entra ID,
# Google, ...). Users are matched to existing accounts by verified email; new accounts are
# only created when HITL_OIDC_SIGNUP=1 (they start without roles and are not staff).
HITL_OIDC_SERVER_URL = env_str("HITL_OIDC_SERVER_URL")
HITL_OIDC_SIGNUP = env_bool("HITL_OIDC_SIGNUP", False)
if HITL_OIDC_SERVER_URL:
    _oidc_client_id = env_str("HITL_OIDC_CLIENT_ID")
    _oidc_secret = env_str("HITL_OIDC_CLIENT_SECRET")
    if not _oidc_client_id or not _oidc_secret:
        raise ImproperlyConfigured(
            "HITL_OIDC_SERVER_URL is set: HITL_OIDC_CLIENT_ID and HITL_OIDC_CLIENT_SECRET "
            "are required too"
        )
    INSTALLED_APPS += [
        "allauth.socialaccount",
        "allauth.socialaccount.providers.openid_connect",
    ]
    SOCIALACCOUNT_ADAPTER = "hitlportal.auth.SocialAccountAdapter"
    SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
    SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
    SOCIALACCOUNT_LOGIN_ON_GET = False
    SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": env_str("HITL_OIDC_PROVIDER_ID", "sso"),
                    "name": env_str("HITL_OIDC_NAME", "Single sign-on"),
                    "client_id": _oidc_client_id,
                    "secret": _oidc_secret,
                    "settings": {"server_url": HITL_OIDC_SERVER_URL},
                }
            ],
        }
    }
if env_bool("HITL_FAST_HASHER", False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- I18n, static, media -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production defaults; `manage.py check --deploy` is clean with DEBUG=0) ----------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$", r"^metrics$"]
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Strict: scripts, styles, images and fonts only from the portal itself (vendored, as files),
# no inline script or style, no framing, forms post only to the portal (and the SSO server).
# Artifact downloads send their own stricter policy (a sandbox).
_FORM_ACTION = ["'self'"]
if HITL_OIDC_SERVER_URL:
    _oidc = urlparse(HITL_OIDC_SERVER_URL)
    _FORM_ACTION.append(f"{_oidc.scheme}://{_oidc.netloc}")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": _FORM_ACTION,
    }
}

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.HitlAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.CredentialRateThrottle"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HITL Portal API",
    "DESCRIPTION": "Agents ask humans; humans decide; agents resume. Errors are RFC 9457 "
    "problem details; every POST takes an Idempotency-Key.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.require_action_for_approvals",
    ],
    "ENUM_NAME_OVERRIDES": {
        "CheckpointStatusEnum": "approvals.models.Checkpoint.Status",
        "RunStatusEnum": "agents.models.Run.Status",
        "RiskEnum": "approvals.models.Risk",
        "ArtifactKindEnum": "approvals.models.Artifact.Kind",
        "CheckpointKindEnum": "approvals.models.Checkpoint.Kind",
        "RunEventKindEnum": "agents.models.RunEvent.Kind",
        "DecisionOutcomeEnum": "approvals.models.Decision.Outcome",
    },
}
# Request limits: bigger bodies are refused with 413 before they are read.
HITL_API_MAX_BODY_BYTES = env_int("HITL_API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
HITL_API_MAX_UPLOAD_BYTES = env_int("HITL_API_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
HITL_API_MAX_JSON_DEPTH = env_int("HITL_API_MAX_JSON_DEPTH", 32, minimum=4)
# The request line and headers together (431 above it), checked by the ASGI app; the reverse
# proxy in front of the WSGI server enforces its own (docs/nginx/).
HITL_MAX_HEADER_BYTES = env_int("HITL_MAX_HEADER_BYTES", 32 * 1024, minimum=4096)
# An agent's `action.args_schema` (approvals/schemas.py): refused at create (400) beyond these;
# checking an edit against it may spend this much work (units of ~100 ns), else the edit is a 400.
HITL_ARGS_SCHEMA_MAX_BYTES = env_int("HITL_ARGS_SCHEMA_MAX_BYTES", 64 * 1024, minimum=1024)
HITL_ARGS_SCHEMA_MAX_DEPTH = env_int("HITL_ARGS_SCHEMA_MAX_DEPTH", 20, minimum=2)
HITL_ARGS_SCHEMA_MAX_PATTERNS = env_int("HITL_ARGS_SCHEMA_MAX_PATTERNS", 100, minimum=0)
HITL_ARGS_SCHEMA_CHECK_BUDGET = env_int("HITL_ARGS_SCHEMA_CHECK_BUDGET", 10_000_000, minimum=1000)
# Rate limits ("N/s|m|h|d"; empty: none), per agent key / per user / per anonymous client.
HITL_API_THROTTLE_AGENT = env_str("HITL_API_THROTTLE_AGENT", "3000/m")
HITL_API_THROTTLE_USER = env_str("HITL_API_THROTTLE_USER", "1200/m")
HITL_API_THROTTLE_ANON = env_str("HITL_API_THROTTLE_ANON", "120/m")
# Counters live in Redis when there is one (shared by all processes), else per process.
HITL_API_THROTTLE_CACHE = "default" if REDIS_URL else "throttle"
if not REDIS_URL:
    CACHES["throttle"] = {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "hitl-throttle",
    }
HITL_IDEMPOTENCY_TTL_HOURS = env_int("HITL_IDEMPOTENCY_TTL_HOURS", 48, minimum=1)
# Webhooks: per-attempt timeout, and how long failed deliveries are retried (backoff).
HITL_WEBHOOK_TIMEOUT = env_int("HITL_WEBHOOK_TIMEOUT", 10, minimum=1)
HITL_WEBHOOK_RETRY_HOURS = env_int("HITL_WEBHOOK_RETRY_HOURS", 25, minimum=1)

# --- Ledger (core.ledger): the audit trail as a transparency log -------------------------------
# The Ed25519 key that signs tree heads and receipts: required in production, generated into
# var/ for development (like SECRET_KEY). Its handling is in core/ledger/keys.py.
from core.ledger.keys import LedgerKeyError, load_signing_key, parse_public_key  # noqa: E402
from core.net import UnsafeURL, check_url  # noqa: E402

try:
    HITL_LEDGER_SIGNING_KEY = load_signing_key(env_str("HITL_LEDGER_SIGNING_KEY"), VAR_DIR, DEBUG)
    HITL_LEDGER_PREVIOUS_KEYS = env_list("HITL_LEDGER_PREVIOUS_KEYS", [])
    for _key in HITL_LEDGER_PREVIOUS_KEYS:
        parse_public_key(_key)
except LedgerKeyError as exc:
    text = str(exc)
    if not text.startswith("HITL_"):
        text = f"HITL_LEDGER_SIGNING_KEY or HITL_LEDGER_PREVIOUS_KEYS: {text}"
    raise ImproperlyConfigured(text) from None
# The log's name in every signed head (witnesses keep logs apart by it).
HITL_LEDGER_ORIGIN = env_str("HITL_LEDGER_ORIGIN", f"{urlparse(SITE_URL).netloc or 'hitl'}/ledger")
# The standing sequencer's entries per batch (its poll interval and how long a reader waits
# for a seq are constants in core/management/commands/sequencer.py, core/ledger/sequencer.py).
HITL_LEDGER_BATCH = env_int("HITL_LEDGER_BATCH", 2000, minimum=1)
# Sync mode (tests, HITL_Q_SYNC=1): every transaction sequences its own events on commit.
HITL_LEDGER_SYNC = Q_CLUSTER["sync"]
# Outgoing requests to addresses people or agents chose (role channels, witnesses, agent
# callbacks) reach public addresses only (core.net); tests and local development, whose
# receivers run on 127.0.0.1, allow the others.
HITL_ALLOW_PRIVATE_URLS = env_bool("HITL_ALLOW_PRIVATE_URLS", False)
# Witnesses: where signed heads are pushed, so a copy exists outside the database.
HITL_LEDGER_WITNESSES = env_list("HITL_LEDGER_WITNESSES", [], sep=" ")
HITL_LEDGER_WITNESS_SECRET = env_str("HITL_LEDGER_WITNESS_SECRET", "")
HITL_LEDGER_WITNESS_INTERVAL = env_int("HITL_LEDGER_WITNESS_INTERVAL", 60, minimum=1)
HITL_LEDGER_WITNESS_EMAIL_INTERVAL = env_int(
    "HITL_LEDGER_WITNESS_EMAIL_INTERVAL", 86400, minimum=60
)
for _witness in HITL_LEDGER_WITNESSES:
    if urlparse(_witness).scheme not in ("file", "http", "https", "mailto"):
        raise ImproperlyConfigured(
            f"HITL_LEDGER_WITNESSES: {_witness!r} is not a file://, http(s):// or mailto: URL"
        )
    if urlparse(_witness).scheme in ("http", "https"):
        try:  # its form and a numeric host now; what its name resolves to at each push
            check_url(_witness, allow_private=HITL_ALLOW_PRIVATE_URLS, resolve=False)
        except UnsafeURL as exc:
            raise ImproperlyConfigured(f"HITL_LEDGER_WITNESSES: {_witness!r}: {exc}") from None
# Receipts: how long an approval's receipt may be redeemed.
HITL_RECEIPT_TTL = env_int("HITL_RECEIPT_TTL", 3600, minimum=10)
# --- Notifications: email, Slack, Teams, webhooks (notifications/, integrations/slack/) ---------
# EMAIL_URL: any SMTP server, e.g. smtp://user:pass@mail.example.com:587?tls=1 (dj-email-url);
# console: prints mail to the log (the development default). Unset in production: the SMTP
# server on localhost:25.
_email_url = env_str("EMAIL_URL", "console:" if DEBUG else "smtp://localhost:25")
try:
    import dj_email_url

    _email = dj_email_url.parse(_email_url)
    _email["EMAIL_BACKEND"]  # absent for a scheme it does not know
except Exception as exc:
    raise ImproperlyConfigured(
        f"EMAIL_URL={_email_url!r} is not an email URL (smtp://, smtps://, console:): {exc!r}"
    ) from None
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST, EMAIL_PORT = _email["EMAIL_HOST"], _email["EMAIL_PORT"]
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_USER"], _email["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS, EMAIL_USE_SSL = _email["EMAIL_USE_TLS"], _email["EMAIL_USE_SSL"]
if _email.get("EMAIL_FILE_PATH"):
    EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]
EMAIL_TIMEOUT = env_int("HITL_NOTIFY_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("HITL_EMAIL_FROM", "HITL Portal <hitl@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Per-attempt timeout of every channel, and how long failed notifications are retried.
HITL_NOTIFY_TIMEOUT = EMAIL_TIMEOUT
HITL_NOTIFY_RETRY_HOURS = env_int("HITL_NOTIFY_RETRY_HOURS", 6, minimum=1)
# More new requests than this in a minute to one mailbox: the rest of the minute's come as one
# "N new requests in your queue" email when the minute is over (0: never coalesce).
HITL_NOTIFY_COALESCE_PER_MINUTE = env_int("HITL_NOTIFY_COALESCE_PER_MINUTE", 10, minimum=0)
# Reminders this many seconds before a pending request's deadline and before its SLA target
# (0: none); an hourly digest collects a person's emails for this many minutes.
HITL_REMIND_BEFORE_DEADLINE = env_int("HITL_REMIND_BEFORE_DEADLINE", 300, minimum=0)
HITL_REMIND_BEFORE_SLA = env_int("HITL_REMIND_BEFORE_SLA", 300, minimum=0)
HITL_DIGEST_MINUTES = env_int("HITL_DIGEST_MINUTES", 60, minimum=1)
# Slack: the app's signing secret turns on the interactive buttons (POST
# /integrations/slack/actions/); its bot token lets "Reject" open a modal asking the reason.
HITL_SLACK_SIGNING_SECRET = env_str("HITL_SLACK_SIGNING_SECRET")
HITL_SLACK_BOT_TOKEN = env_str("HITL_SLACK_BOT_TOKEN")
HITL_SLACK_API_URL = env_str("HITL_SLACK_API_URL", "https://slack.com/api/").rstrip("/") + "/"
# Linking a Slack account to a portal account: with a bot token, its Slack email must be the
# portal account's (someone could send you the link of their own Slack account).
HITL_SLACK_LINK_MATCH_EMAIL = env_bool("HITL_SLACK_LINK_MATCH_EMAIL", True)

# --- HITL Portal -----------------------------------------------------------------------------
HITL_DEFAULT_ROLE = env_str("HITL_DEFAULT_ROLE", "ops")
HITL_DEFAULT_TIMEOUT = env_int("HITL_DEFAULT_TIMEOUT", 1800, minimum=1)
# Requests no policy matches: does an agent's role hint (a review role) add a stage?
HITL_HONOUR_ROLE_HINTS = env_bool("HITL_HONOUR_ROLE_HINTS", True)
HITL_MANAGERS_GROUP = env_str("HITL_MANAGERS_GROUP", "managers")
HITL_CLAIM_LEASE = env_int("HITL_CLAIM_LEASE", 900, minimum=1)
# Personal API tokens expire after this many days unless their owner picks another lifetime.
HITL_TOKEN_DAYS = env_int("HITL_TOKEN_DAYS", 90, minimum=1)
# The policy engine (approvals.policies): standing rules proposed from a review page last at
# most this many days and are tried at this priority; replay looks back this far by default;
# with four-eyes on, nobody publishes a policy version they wrote (standing rules: always).
HITL_STANDING_RULE_MAX_DAYS = env_int("HITL_STANDING_RULE_MAX_DAYS", 90, minimum=1)
HITL_STANDING_RULE_PRIORITY = env_int("HITL_STANDING_RULE_PRIORITY", 0)
HITL_REPLAY_DAYS = env_int("HITL_REPLAY_DAYS", 30, minimum=1)
HITL_REPLAY_LIMIT = env_int("HITL_REPLAY_LIMIT", 200_000, minimum=1)
HITL_POLICY_FOUR_EYES = env_bool("HITL_POLICY_FOUR_EYES", False)
# What one condition may cost on the largest request the API admits (approvals.policies.cel_cost):
# time in units of about a nanosecond on the reference machine, memory in bytes allocated.
# Saving a condition over either is refused; one stored before is skipped on the requests
# where it would exceed them (docs/benchmarks.md, "Condition cost").
HITL_CONDITION_MAX_COST = env_int("HITL_CONDITION_MAX_COST", 100_000_000, minimum=1_000_000)
HITL_CONDITION_MAX_MEMORY = env_int(
    "HITL_CONDITION_MAX_MEMORY", 64 * 1024 * 1024, minimum=1024 * 1024
)
# The reviewer portal: a queue item is "due soon" inside this window; artifacts bigger than
# this are shown truncated (with a download).
HITL_DUE_SOON_SECONDS = env_int("HITL_DUE_SOON_SECONDS", 600, minimum=1)
# Not from the environment: how often an open queue page polls for changes (a page's cost,
# not a deployment's choice); a setting so that the browser test can shorten it.
HITL_QUEUE_POLL_SECONDS = 15
HITL_ARTIFACT_RENDER_LIMIT = env_int("HITL_ARTIFACT_RENDER_LIMIT", 256 * 1024, minimum=1024)
# A follow-up (resume, hosted execution, webhook) enqueued this long ago and still not done is
# enqueued again by the reconcile sweep (every minute, hitlportal/schedules.py). The cluster
# tests shorten it in their processes' environment.
HITL_RECONCILE_GRACE = env_int("HITL_RECONCILE_GRACE", 60, minimum=0)
# Not from the environment: a run whose resume or execution was enqueued this many times
# without completing is dead-lettered (a setting so that tests can lower it).
HITL_MAX_RESUME_ATTEMPTS = 5
# The deadline timer in `manage.py portald`: expiry and escalation within a second or two of the
# deadline (the sweep above is the safety net; its poll and lease are in approvals/deadlines.py).
HITL_DEADLINE_TIMER = env_bool("HITL_DEADLINE_TIMER", True)
# Step-up: deciding a request of this risk or above needs a second factor within this many
# seconds (for accounts with MFA; a token needs the "decide critical" scope for critical
# requests). Empty: no step-up.
HITL_STEP_UP_RISK = env_str("HITL_STEP_UP_RISK", "high")
if HITL_STEP_UP_RISK not in ("", "low", "medium", "high", "critical"):
    raise ImproperlyConfigured(
        f"HITL_STEP_UP_RISK={HITL_STEP_UP_RISK!r} must be low, medium, high, critical or empty"
    )
HITL_STEP_UP_SECONDS = env_int("HITL_STEP_UP_SECONDS", 900, minimum=30)
# Hosted runs: an executor's lease is renewed while it works; when it lapses (the worker died)
# the reconcile sweep re-enqueues the run (the cluster tests shorten it in their environment).
HITL_RUN_LEASE = env_int("HITL_RUN_LEASE", 30, minimum=2)
# Not from the environment: a hosted run gives its worker back after this many seconds and
# continues in a new task, so one run does not hold a worker (a setting so a test can set 0).
HITL_RUN_SLICE_SECONDS = 60
# Back-pressure (core.backlog): the managers' dashboard warns, and portald's backlog watch logs
# a warning, while the oldest queued task has waited longer than the first, or the oldest due
# outbox row (notification, webhook, witness head) longer than the second (retries come due
# between two minute sweeps, so it allows more).
HITL_TASK_QUEUE_WARN_SECONDS = env_int("HITL_TASK_QUEUE_WARN_SECONDS", 60, minimum=1)
HITL_OUTBOX_WARN_SECONDS = env_int("HITL_OUTBOX_WARN_SECONDS", 300, minimum=1)
# Where the manual (docs/, `make docs-build`) is served, if anywhere: pages link to its sections.
HITL_DOCS_URL = env_str("HITL_DOCS_URL", "").rstrip("/")
if HITL_DOCS_URL and urlparse(HITL_DOCS_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"HITL_DOCS_URL={HITL_DOCS_URL!r} must be an http(s) URL")
# Housekeeping: finished django-q2 task rows older than this are purged.
HITL_TASK_RETENTION_HOURS = env_int("HITL_TASK_RETENTION_HOURS", 72, minimum=1)
# The LLM planner (any OpenAI-compatible chat-completions endpoint); unset = scripted only.
HITL_LLM_BASE_URL = env_str("HITL_LLM_BASE_URL", "").rstrip("/")
HITL_LLM_MODEL = env_str("HITL_LLM_MODEL", "")
HITL_LLM_API_KEY = env_str("HITL_LLM_API_KEY", "")
HITL_LLM_TIMEOUT = env_float("HITL_LLM_TIMEOUT", 60.0)
if HITL_LLM_BASE_URL and urlparse(HITL_LLM_BASE_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"HITL_LLM_BASE_URL={HITL_LLM_BASE_URL!r} must be an http(s) URL")
# Oversight: the reviewer analytics' rubber-stamp flag (at least this many decisions in the
# period, approving at least this share, in a median time at most this fraction of the usual
# time for the same requests in the role).
HITL_RUBBER_STAMP_MIN_DECISIONS = env_int("HITL_RUBBER_STAMP_MIN_DECISIONS", 20, minimum=1)
HITL_RUBBER_STAMP_APPROVAL_RATE = env_float("HITL_RUBBER_STAMP_APPROVAL_RATE", 0.95)
HITL_RUBBER_STAMP_SPEED_RATIO = env_float("HITL_RUBBER_STAMP_SPEED_RATIO", 0.25)
# Prometheus /metrics: a bearer token, and/or networks allowed without one (CIDRs). Neither
# set: closed (404), except from this machine under DEBUG.
HITL_METRICS_TOKEN = env_str("HITL_METRICS_TOKEN", "")
HITL_METRICS_ALLOW = env_list("HITL_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"] if DEBUG else [])
HITL_SANDBOX_ROOTS = [
    str(Path(p).resolve())
    for p in env_list("HITL_SANDBOX_ROOTS", [str(VAR_DIR / "sandbox")], sep=":")
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
