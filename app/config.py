"""Read and validate the environment in one place.

Every setting the service reads comes through `load_settings`, so a bad value stops
start-up with one line that names the variable and what it accepts.
"""

import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


class ConfigError(SystemExit):
    """A setting that cannot be used.

    A SystemExit, so the flask command and gunicorn's master stop with this one line
    instead of a traceback or a worker boot loop.
    """

    def __init__(self, name: str, accepts: str, value: Any):
        super().__init__(f"configuration error: {name}={value!r} is invalid; it accepts {accepts}")
        self.name = name


@dataclass(frozen=True)
class Variable:
    """One environment variable: its default and how to parse it."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    accepts: str


def integer(low: int, high: int) -> Callable[[Any], int]:
    """A parser for a whole number in [low, high]."""

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip())
        if not low <= number <= high:
            raise ValueError
        return number

    return parse


def boolean(value: Any) -> bool:
    """Parse true/false, 1/0, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError


def optional_integer(low: int, high: int) -> Callable[[Any], int | None]:
    """A parser for an optional whole number: empty means unset."""
    parse_integer = integer(low, high)

    def parse(value: Any) -> int | None:
        if value is None or str(value).strip() == "":
            return None
        return parse_integer(value)

    return parse


def database_url(value: Any) -> str:
    """Normalise a database URL to the driver this service ships with (psycopg2).

    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, and Heroku-style hosts
    still hand out postgres://.
    """
    url = str(value).strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg2://", "sqlite://")):
        return url
    raise ValueError


def optional_database_url(value: Any) -> str | None:
    """An optional database URL: empty means unset."""
    if value is None or not str(value).strip():
        return None
    return database_url(value)


def choice(*words: str) -> Callable[[Any], str]:
    """A parser for one of words, case-insensitively."""

    def parse(value: Any) -> str:
        word = str(value).strip().lower()
        if word not in words:
            raise ValueError
        return word

    return parse


def application_name(value: Any) -> str:
    """A PostgreSQL application_name: printable ASCII, at most 48 characters."""
    name = str(value).strip()
    if not name or len(name) > 48 or not name.isascii() or not name.isprintable():
        raise ValueError
    return name


def origins(value: Any) -> list[str]:
    """Split a comma-separated list of origins."""
    if isinstance(value, list | tuple):
        return list(value)
    return [origin.strip() for origin in str(value).split(",") if origin.strip()]


def text(value: Any) -> str:
    """Any non-empty string."""
    if not str(value).strip():
        raise ValueError
    return str(value)


def ip_address(value: Any) -> str:
    """An IPv4 or IPv6 address to listen on."""
    return str(ipaddress.ip_address(str(value).strip()))


def sqlite_default() -> str:
    """The embedded database used when DATABASE_URL is unset."""
    return f"sqlite:///{INSTANCE_DIR / 'app.sqlite'}"


VARIABLES = (
    Variable("DATABASE_URL", None, database_url, "a postgres://, postgresql:// or sqlite:// URL"),
    Variable("DB_POOL_SIZE", 5, integer(1, 1000), "a whole number from 1 to 1000"),
    Variable("DB_MAX_OVERFLOW", 5, integer(0, 1000), "a whole number from 0 to 1000"),
    # Whole seconds: Flask-SQLAlchemy builds the engine with engine_from_config, which turns
    # pool_timeout into an int, so 0.5 would silently mean "never wait".
    Variable("DB_POOL_TIMEOUT", 10, integer(1, 600), "whole seconds from 1 to 600"),
    Variable("DB_POOL_RECYCLE", 1800, integer(-1, 86400), "seconds from -1 (never) to 86400"),
    Variable("DB_POOL_PRE_PING", True, boolean, "true or false"),
    Variable("DB_CONNECT_TIMEOUT", 5, integer(1, 300), "whole seconds from 1 to 300"),
    Variable(
        "DB_STATEMENT_TIMEOUT", 15000, integer(0, 86_400_000), "milliseconds, 0 (off) or more"
    ),
    Variable(
        "DB_IDLE_IN_TRANSACTION_TIMEOUT",
        30000,
        integer(0, 86_400_000),
        "milliseconds, 0 (off) or more",
    ),
    Variable("DB_APPLICATION_NAME", "app", application_name, "up to 48 printable ASCII characters"),
    Variable(
        "DB_CONNECTION_BUDGET", None, optional_integer(1, 1_000_000), "a whole number of 1 or more"
    ),
    Variable("DB_POOLER", "none", choice("none", "pgbouncer"), "none or pgbouncer"),
    Variable(
        "DATABASE_DIRECT_URL",
        "",
        optional_database_url,
        "empty, or a postgres://, postgresql:// or sqlite:// URL",
    ),
    Variable(
        "PGBOUNCER_ADMIN_URL",
        "",
        optional_database_url,
        "empty, or a postgresql:// URL of PgBouncer's admin console (database pgbouncer)",
    ),
    Variable("WEB_CONCURRENCY", 2, integer(1, 256), "a whole number from 1 to 256"),
    Variable("GUNICORN_THREADS", 1, integer(1, 1000), "a whole number from 1 to 1000"),
    Variable("PORT", 8000, integer(1, 65535), "a port number from 1 to 65535"),
    Variable("SECRET_KEY", None, text, "a non-empty string"),
    Variable("CORS_ORIGINS", "", origins, "comma-separated origins"),
    Variable("TOKEN_TTL", 7 * 86400, integer(60, 366 * 86400), "seconds from 60 to 31622400"),
    Variable("RATELIMIT_STORAGE_URI", "memory://", text, "a storage URI such as redis://host:6379"),
    Variable("TRUSTED_PROXY_HOPS", 0, integer(0, 10), "a whole number from 0 to 10"),
    Variable("PROXY_PORT", 8080, integer(1, 65535), "a port number from 1 to 65535"),
    Variable("RATELIMIT_KEY_PREFIX", "app", text, "a non-empty string"),
    # Observability (issue 10). LOG_FORMAT's default depends on the server: see complete().
    Variable("LOG_FORMAT", None, choice("text", "json"), "text or json"),
    Variable("SLOW_REQUEST_MS", 1000, integer(0, 86_400_000), "milliseconds, 0 (off) or more"),
    Variable("METRICS_PORT", 9100, integer(1, 65535), "a port number from 1 to 65535"),
    Variable("METRICS_BIND", "127.0.0.1", ip_address, "an IPv4 or IPv6 address"),
    # Longer than DB_STATEMENT_TIMEOUT, so one slow statement the server cancels is no leak;
    # half of gunicorn's 60 s worker timeout, so the stack is logged before a kill.
    Variable(
        "DB_LEAK_DETECTION_THRESHOLD",
        30000,
        integer(0, 86_400_000),
        "milliseconds, 0 (off) or more",
    ),
)


def load_settings(environ: Mapping[str, Any] = os.environ) -> dict[str, Any]:
    """Parse every variable in VARIABLES from environ, or raise ConfigError."""
    settings = {}
    for variable in VARIABLES:
        raw = environ.get(variable.name)
        blank = isinstance(raw, str) and not raw.strip()
        if raw is None or (blank and variable.default is not None):
            raw = variable.default
        # An empty DATABASE_URL or SECRET_KEY is a mistake to report, not a reason to default.
        settings[variable.name] = None if raw is None else parse(variable, raw)
    return complete(settings, environ)


def parse(variable: Variable, raw: Any) -> Any:
    """One variable's value, or the ConfigError that names it."""
    try:
        return variable.parse(raw)
    except (TypeError, ValueError):
        raise ConfigError(variable.name, variable.accepts, raw) from None


def complete(settings: dict[str, Any], environ: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the defaults that depend on other settings."""
    debug = str(environ.get("FLASK_DEBUG", "")).strip().lower() in TRUE_WORDS
    development = settings["DATABASE_URL"] is None or debug
    if settings["DATABASE_URL"] is None:
        settings["DATABASE_URL"] = sqlite_default()
    if settings["SECRET_KEY"] is None:
        if not development:
            raise ConfigError(
                "SECRET_KEY", "a non-empty string (required outside development)", None
            )
        settings["SECRET_KEY"] = secrets.token_hex(32)
    if settings["DB_POOLER"] == "pgbouncer" and not is_postgresql(settings["DATABASE_URL"]):
        raise ConfigError(
            "DATABASE_URL",
            "a postgresql:// URL of PgBouncer when DB_POOLER is pgbouncer",
            settings["DATABASE_URL"],
        )
    if settings["LOG_FORMAT"] is None:
        settings["LOG_FORMAT"] = "text"  # gunicorn.conf.py makes json its own default.
    return settings


def is_postgresql(url: str) -> bool:
    """Whether a normalised database URL points at PostgreSQL."""
    return url.startswith("postgresql")
