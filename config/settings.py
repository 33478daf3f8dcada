"""The one settings file. Every value comes from the environment; docker/.env.example lists them all.

The defaults are the embedded single-machine set-up that ``scripts/run.sh`` starts: SQLite in WAL
mode, a filesystem Celery broker and DICOM files under ``var/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import dj_database_url
import django_stubs_ext
from corsheaders.defaults import default_headers as cors_default_headers

from config.env import env_bool, env_float, env_int, env_list, env_secret, env_str

# Lets classes such as ModelAdmin[Study] be subscripted at run time, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MEDLABEL_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me", required=not DEBUG)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: /api/docs/ works offline
    "corsheaders",
    "imaging",
    "annotation",
    "review",
    "inference",
    "datasets",
    "jobs",
    "accounts",
]

MIDDLEWARE = [
    # Before anything that can answer: a CORS preflight never carries credentials, so it must be answered
    # here rather than reach the views, which would refuse it as unauthenticated.
    "config.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
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

# --- Database -----------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'medlabel.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server read while the worker writes; IMMEDIATE makes writers queue on the
    # lock at BEGIN instead of failing mid-transaction with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=wal; PRAGMA synchronous=normal;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# The reading loop's hot queries are prepared once per PostgreSQL connection (config/prepared.py); off for a pooler in
# transaction mode, which cannot keep a session's prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# --- Internationalisation --------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The app's own sign-in pages (accounts/urls.py); after signing in without a `next`, the app, never
# Django's default /accounts/profile/; after signing out, the sign-in page, never the admin's "Logged out".
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and storage ------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
FRONTEND_DIST_DIR = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [FRONTEND_DIST_DIR] if FRONTEND_DIST_DIR.exists() else []
# The OHIF Viewer beside the reader (optional, off by default): with MEDLABEL_OHIF_ENABLED the platform serves
# the published OHIF build (scripts/ohif.sh installs it) under /ohif/, with the user's session, and the worklist
# links each project to /ohif/projects/<slug>/ (that project's studies only).
OHIF_VERSION = "3.13.2"
OHIF_ENABLED = env_bool("MEDLABEL_OHIF_ENABLED", False)
OHIF_DIST_DIR = Path(env_str("MEDLABEL_OHIF_DIST", "") or BASE_DIR / "var" / "ohif" / OHIF_VERSION / "dist")
MEDIA_ROOT = Path(env_str("MEDLABEL_STORAGE_DIR", str(DATA_DIR / "storage")))
STORAGES = {
    "default": {
        "BACKEND": env_str("MEDLABEL_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- REST API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: DRF asks the first class for the WWW-Authenticate header, so unauthenticated and bad-token
        # requests get 401 (with Session first they were 403). Before TokenAuthentication, which would
        # refuse "Token mlq_..." as an unknown legacy token.
        "accounts.authentication.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        # DRF's TokenAuthentication with its query compiled once (a third of a WADO frame's CPU otherwise).
        "accounts.authentication.LegacyTokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "config.ordering.StableOrderingFilter",
    ],
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MedLabel QA API",
    "DESCRIPTION": "Medical-image annotation with multi-level label QA.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our static files (drf-spectacular-sidecar), not a CDN: the docs work without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge: Swagger UI would send the schema's URL to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "ProjectRoleEnum": ["annotator", "reviewer", "expert", "manager"],
        "ReadingRoleEnum": ["first_reader", "second_reader", "panel_member"],
        "JobStatusEnum": "jobs.models.JobStatus",
        "JobKindEnum": "jobs.models.JobKind",
        "ModelStatusEnum": "inference.models.ModelStatus",
        "ImportModeEnum": ["copy", "index"],
        "ReviewModeEnum": "review.models.ReviewPolicy.Mode",
    },
}

# --- Caches ----------------------------------------------------------------------------------------
# "dashboards": the managers' computed quality figures (review.dashboards), shared by every web worker and
# keyed by the project's latest change, so a stale entry is never read. Files under the data folder by
# default (nothing to run); MEDLABEL_DASHBOARD_CACHE_URL=redis://host:6379/1 to use Redis instead.
_dashboard_cache_url = env_str("MEDLABEL_DASHBOARD_CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "dashboards": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _dashboard_cache_url}
        if _dashboard_cache_url
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache" / "dashboards"),
            "OPTIONS": {"MAX_ENTRIES": 2000},
        }
    ),
}

# --- Celery -----------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "celery-broker"
    # kombu's filesystem transport does not create its folders; the worker fails at start without them.
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
# The soft limit raises inside the task, so the job is recorded as failed before the hard kill.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", CELERY_TASK_TIME_LIMIT - 60)
# A message is acknowledged only once its task has finished, so a worker killed mid-task gets it back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# How long a reader's prompt waits for an ``interactive`` worker before the model-free engine answers in the web
# process instead (issue 17): the reader is waiting, so this is seconds, not minutes.
INTERACTIVE_TIMEOUT_SECONDS = env_float("MEDLABEL_INTERACTIVE_TIMEOUT_SECONDS", 2.0)
# A running job whose worker has not reported for this long is taken over by the next claim.
JOB_HEARTBEAT_TIMEOUT = env_int("JOB_HEARTBEAT_TIMEOUT", 300)

# --- Imaging ----------------------------------------------------------------------------------------
IMAGING_MAX_UPLOAD_BYTES = env_int("IMAGING_MAX_UPLOAD_BYTES", 2 * 1024**3)
IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES = env_int("IMAGING_MAX_ZIP_UNCOMPRESSED_BYTES", 8 * 1024**3)
IMAGING_MAX_ZIP_FILES = env_int("IMAGING_MAX_ZIP_FILES", 50_000)
# A zip member over 16 MiB that expands more than this many times is refused as a zip bomb.
IMAGING_MAX_ZIP_RATIO = env_int("IMAGING_MAX_ZIP_RATIO", 200)
# An upload's report lists at most this many files (refused ones first) and counts the rest.
IMAGING_MAX_REPORTED_FILES = env_int("IMAGING_MAX_REPORTED_FILES", 1000)
IMAGING_UPSTREAM_TIMEOUT_SECONDS = env_float("IMAGING_UPSTREAM_TIMEOUT_SECONDS", 30.0)
# Who may see which study over DICOMweb: a dotted path to an object with the
# imaging.access.StudyAccessPolicy interface. The annotation app scopes studies by project.
IMAGING_ACCESS_POLICY = env_str("IMAGING_ACCESS_POLICY", "annotation.access.ProjectStudyAccessPolicy")
# Single native frames from the local store (WADO-RS .../frames/<n>, what viewers ask for once per slice) are
# served ahead of the middleware chain by imaging.dicomweb.fastpath, with the same authentication and access
# rule; every other request and every refusal goes through Django. false: every request goes through Django.
DICOMWEB_FRAME_FAST_PATH = env_bool("MEDLABEL_DICOMWEB_FAST_PATH", True)
# Studies kept on an upstream PACS: when a reader claims a case, its study's instances are fetched once into
# a local cache (imaging.services.framecache) so that the reader's frames are served from disk, not proxied
# one by one. Bounded in MiB: past it, whole studies are evicted, least recently prefetched first. 0: no cache,
# an upstream study's pixels are never kept here.
PROXY_CACHE_MB = env_int("MEDLABEL_PROXY_CACHE_MB", 2048)
# Uploads are streamed to disk above this size rather than held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024**2
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 32 * 1024**2)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DJANGO_DATA_UPLOAD_MAX_NUMBER_FILES", 5000)

# --- Security (production) ---------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a reverse proxy that terminates TLS: take the public host from X-Forwarded-Host and the scheme from
# X-Forwarded-Proto, so that absolute URLs (DICOMweb RetrieveURL, BulkDataURI) and the CSRF origin check see
# what the client sees. Off by default: without a proxy that overwrites both headers, any client could set
# them. The host must still be in DJANGO_ALLOWED_HOSTS.
_trust_proxy_headers = env_bool("DJANGO_TRUST_PROXY_HEADERS", False)
USE_X_FORWARDED_HOST = _trust_proxy_headers
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _trust_proxy_headers else None

# --- Cross-origin requests (web viewers such as OHIF on another origin) --------------------------------
# Off unless origins are listed (scheme://host[:port], comma-separated). Only the listed origins may read
# responses, send credentials (cookies, Authorization) and see the headers below; only DICOMweb and the API
# answer cross-origin requests.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/(dicomweb|api)/"
CORS_ALLOW_CREDENTIALS = True
# The library's defaults (Authorization, Accept, Content-Type...) and the caller's own request id.
CORS_ALLOW_HEADERS = (*cors_default_headers, "x-request-id")
# QIDO-RS says "more results" in a Warning header; the request id helps when reporting a failure.
CORS_EXPOSE_HEADERS = ["Warning", "X-Request-ID"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
ANNOTATION_VISIBILITY_EXTENSION = env_str(
    "ANNOTATION_VISIBILITY_EXTENSION", "review.selectors.extra_visible_annotations"
)

# --- Deployment: object storage, request ids and JSON logs, readiness ---------------------------------
# MEDLABEL_STORAGE_BACKEND=storages.backends.s3.S3Storage keeps DICOM files and masks in an S3 bucket
# (AWS, MinIO, Ceph...) instead of MEDLABEL_STORAGE_DIR; the filesystem stays the default.
_default_storage = cast(dict[str, Any], STORAGES["default"])
if _default_storage["BACKEND"] == "storages.backends.s3.S3Storage":
    _default_storage["OPTIONS"] = {
        "bucket_name": env_str("MEDLABEL_S3_BUCKET", "medlabel"),
        "endpoint_url": env_str("MEDLABEL_S3_ENDPOINT_URL", "") or None,
        "access_key": env_str("MEDLABEL_S3_ACCESS_KEY_ID", "") or None,
        "secret_key": env_secret("MEDLABEL_S3_SECRET_ACCESS_KEY", default="", required=False) or None,
        "region_name": env_str("MEDLABEL_S3_REGION", "") or None,
        "location": env_str("MEDLABEL_S3_PREFIX", ""),
        # MinIO and most self-hosted stores want path-style URLs (http://host:9000/bucket/key).
        "addressing_style": env_str("MEDLABEL_S3_ADDRESSING_STYLE", "path"),
        "signature_version": "s3v4",
        "default_acl": None,
        # Never replace a stored file: a second upload under the same name gets a new name.
        "file_overwrite": False,
        "querystring_auth": True,
    }

# The request id (X-Request-ID) of each request, returned in the response and carried into Celery tasks.
MIDDLEWARE.insert(0, "config.middleware.RequestIdMiddleware")
# LOG_FORMAT=json: one JSON object per line for log collectors; anything else keeps the plain format.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
_log_formatters = cast(dict[str, Any], LOGGING["formatters"])
_log_formatters["json"] = {"()": "config.logging.JsonFormatter"}
_log_formatters["plain_request"] = {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
LOGGING["filters"] = {"request_id": {"()": "config.logging.RequestIdFilter"}}
_console_handler = cast(dict[str, Any], LOGGING["handlers"])["console"]
_console_handler["filters"] = ["request_id"]
_console_handler["formatter"] = "json" if LOG_FORMAT == "json" else "plain_request"

# /readyz: the local PACS (Orthanc) to probe besides the upstream DICOM sources, and whether a PACS
# that does not answer makes the web app "not ready" (off: local studies still work without it).
ORTHANC_URL = env_str("ORTHANC_URL", "")
READINESS_PACS_REQUIRED = env_bool("READINESS_PACS_REQUIRED", False)
READINESS_TIMEOUT_SECONDS = env_float("READINESS_TIMEOUT_SECONDS", 3.0)
# Workers log through LOGGING above (JSON with the request id), not through Celery's own root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Called at the end of annotation.services.cases_create: pre-labels new cases of projects with an active model.
ANNOTATION_CASES_CREATED_HANDLER = env_str("ANNOTATION_CASES_CREATED_HANDLER", "inference.hooks.on_cases_created")
# Called by review.workflow.case_transition when a case becomes agreed or adjudicated: queues the automatic
# training check after the commit.
REVIEW_CASE_LABELLED_HANDLER = env_str("REVIEW_CASE_LABELLED_HANDLER", "inference.hooks.on_case_labelled")
# A case whose last reading came in is decided once the reader has their answer (review.agreement_checks); one
# left waiting longer than this (its process died, or the check failed) is checked again by the sweep.
REVIEW_AGREEMENT_SWEEP_S = env_int("REVIEW_AGREEMENT_SWEEP_S", 30)
# A persistent connection is checked before its first use in each request: after a PostgreSQL restart or
# failover the request reconnects instead of failing with "server closed the connection" (a 500).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A request caught by a database restart mid-way gets a 503 with Retry-After rather than a 500.
MIDDLEWARE.append("config.middleware.DatabaseUnavailableMiddleware")
# Load tests (scripts/load.sh): each response says how many database queries it took (X-Query-Count).
if env_bool("MEDLABEL_QUERY_COUNT_HEADER", False):
    MIDDLEWARE.insert(1, "config.middleware.QueryCountMiddleware")
