"""Read and validate the environment in one place.

Every setting the service reads is a field of `Settings`, which names its variable, default
and parser; `load_settings` reads them all, so a bad value stops start-up with one line that
names the variable and what it accepts. The answer is one frozen `Settings`: a misspelt name
is an AttributeError a type checker sees, not a missing key.
"""

import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from flask import Flask, current_app

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
# Where create_app keeps the app's Settings (Flask's place for per-app state of add-ons).
SETTINGS_EXTENSION = "settings"
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


class UnsetSetting(ConfigError):
    """A setting that must be given and was not (unset or empty)."""

    def __init__(self, name: str, needed: str):
        SystemExit.__init__(self, f"configuration error: {name} is unset; {needed}")
        self.name = name


# How to make a SECRET_KEY, said where one is missing.
SECRET_KEY_RECIPE = "python -c 'import secrets; print(secrets.token_hex(32))'"


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


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A parser like parse, where empty means unset (None)."""

    def parse_optional(value: Any) -> Any:
        if value is None or not str(value).strip():
            return None
        return parse(value)

    return parse_optional


def normalise_database_url(value: Any) -> str:
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


# What a browser sends as Origin: scheme://host[:port], nothing after it; a host name, an IPv4
# address or a bracketed IPv6 one.
ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:(?P<port>[0-9]{1,5}))?")


def origins(value: Any) -> tuple[str, ...]:
    """A comma-separated list of browser origins, each exactly as a browser sends it.

    An origin with a path, a trailing slash or no scheme would never equal a browser's
    Origin header and so silently allow nothing; "*" is refused rather than allowing
    every site: list each origin.
    """
    listed = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(origin(each) for each in listed if each.strip())


def origin(value: str) -> str:
    """One origin, in lower case as browsers send it, or ValueError."""
    lowered = value.strip().lower()
    match = ORIGIN.fullmatch(lowered)
    if match is None or int(match["port"] or 1) > 65535:
        raise ValueError
    return lowered


def replica_urls(value: Any) -> tuple[str, ...]:
    """Comma-separated postgresql:// URLs of replicas, normalised; empty: none."""
    if isinstance(value, list | tuple):
        value = ",".join(value)
    urls = [url.strip() for url in str(value).split(",") if url.strip()]
    normalised = tuple(normalise_database_url(url) for url in urls)
    if not all(is_postgresql(url) for url in normalised):
        raise ValueError
    return normalised


def text(value: Any) -> str:
    """Any non-empty string."""
    if not str(value).strip():
        raise ValueError
    return str(value)


def ip_address(value: Any) -> str:
    """An IPv4 or IPv6 address to listen on."""
    return str(ipaddress.ip_address(str(value).strip()))


def seconds(low: float, high: float) -> Callable[[Any], float]:
    """A parser for a number of seconds in [low, high], fractions allowed."""

    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError
        number = float(str(value).strip())
        if not low <= number <= high:  # False for nan as well
            raise ValueError
        return number

    return parse


MILLISECONDS = integer(0, 86_400_000)
PORT_NUMBER = integer(1, 65535)


def sqlite_default() -> str:
    """The embedded database used when DATABASE_URL is unset."""
    return f"sqlite:///{INSTANCE_DIR / 'app.sqlite'}"


def setting(default: Any, parse: Callable[[Any], Any], accepts: str) -> Any:
    """A Settings field, read from the environment variable of its name in upper case.

    default is the raw value used when the variable is unset (None: complete() decides),
    parse turns a raw value into the field's, and accepts says in words what parse takes.
    """
    return field(metadata={"default": default, "parse": parse, "accepts": accepts})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every environment variable the service reads, parsed: one field each, in lower case.

    Each field names its variable, default and parser (setting()), so this class is the
    one table of settings. database_url, secret_key and log_format are None only inside
    load_settings, until complete() fills them.
    """

    database_url: str = setting(
        None, normalise_database_url, "a postgres://, postgresql:// or sqlite:// URL"
    )
    db_pool_size: int = setting(5, integer(1, 1000), "a whole number from 1 to 1000")
    db_max_overflow: int = setting(5, integer(0, 1000), "a whole number from 0 to 1000")
    # Whole seconds: Flask-SQLAlchemy builds the engine with engine_from_config, which turns
    # pool_timeout into an int, so 0.5 would silently mean "never wait".
    db_pool_timeout: int = setting(10, integer(1, 600), "whole seconds from 1 to 600")
    db_pool_recycle: int = setting(1800, integer(-1, 86400), "seconds from -1 (never) to 86400")
    db_pool_pre_ping: bool = setting(True, boolean, "true or false")
    db_connect_timeout: int = setting(5, integer(1, 300), "whole seconds from 1 to 300")
    db_statement_timeout: int = setting(15000, MILLISECONDS, "milliseconds, 0 (off) or more")
    db_idle_in_transaction_timeout: int = setting(
        30000, MILLISECONDS, "milliseconds, 0 (off) or more"
    )
    db_application_name: str = setting(
        "app", application_name, "up to 48 printable ASCII characters"
    )
    db_connection_budget: int | None = setting(
        None, optional(integer(1, 1_000_000)), "a whole number of 1 or more"
    )
    db_pooler: str = setting("none", choice("none", "pgbouncer"), "none or pgbouncer")
    database_direct_url: str | None = setting(
        "",
        optional(normalise_database_url),
        "empty, or a postgres://, postgresql:// or sqlite:// URL",
    )
    pgbouncer_admin_url: str | None = setting(
        "",
        optional(normalise_database_url),
        "empty, or a postgresql:// URL of PgBouncer's admin console (database pgbouncer)",
    )
    # Read replicas (issue 20): app/database/replicas.py routes the reads that may be old.
    database_replica_urls: tuple[str, ...] = setting(
        "", replica_urls, "empty, or comma-separated postgres:// or postgresql:// URLs"
    )
    db_replica_max_lag_ms: int = setting(
        1000, integer(1, 86_400_000), "milliseconds from 1 to 86400000"
    )
    web_concurrency: int = setting(2, integer(1, 256), "a whole number from 1 to 256")
    gunicorn_threads: int = setting(1, integer(1, 1000), "a whole number from 1 to 1000")
    port: int = setting(8000, PORT_NUMBER, "a port number from 1 to 65535")
    secret_key: str = setting(None, text, f"a non-empty string (make one with {SECRET_KEY_RECIPE})")
    cors_origins: tuple[str, ...] = setting(
        "",
        origins,
        "comma-separated origins such as https://app.example or http://localhost:3000"
        " (scheme://host[:port], no path or trailing slash; not *)",
    )
    token_ttl: int = setting(7 * 86400, integer(60, 366 * 86400), "seconds from 60 to 31622400")
    ratelimit_storage_uri: str = setting(
        "memory://", text, "a storage URI such as redis://host:6379"
    )
    trusted_proxy_hops: int = setting(0, integer(0, 10), "a whole number from 0 to 10")
    proxy_port: int = setting(8080, PORT_NUMBER, "a port number from 1 to 65535")
    ratelimit_key_prefix: str = setting("app", text, "a non-empty string")
    # Observability (issue 10). LOG_FORMAT's default depends on the server: see complete().
    log_format: str = setting(None, choice("text", "json"), "text or json")
    slow_request_ms: int = setting(1000, MILLISECONDS, "milliseconds, 0 (off) or more")
    metrics_port: int = setting(9100, PORT_NUMBER, "a port number from 1 to 65535")
    metrics_bind: str = setting("127.0.0.1", ip_address, "an IPv4 or IPv6 address")
    # Longer than DB_STATEMENT_TIMEOUT, so one slow statement the server cancels is no leak;
    # half of gunicorn's 60 s worker timeout, so the stack is logged before a kill.
    db_leak_detection_threshold: int = setting(30000, MILLISECONDS, "milliseconds, 0 (off) or more")
    # One deadline per request for its pool wait, connecting and statements (issue 17).
    request_timeout: float = setting(25, seconds(1, 600), "seconds from 1 to 600")

    def variable(self, name: str) -> Any:
        """The value of the environment variable called name, for output keyed by those names."""
        return getattr(self, name.lower())

    @property
    def behind_pgbouncer(self) -> bool:
        """Whether DATABASE_URL points at PgBouncer in transaction mode (DB_POOLER=pgbouncer)."""
        return self.db_pooler == "pgbouncer"


def load_settings(environ: Mapping[str, Any] = os.environ) -> Settings:
    """Parse every field of Settings from its variable in environ, or raise ConfigError."""
    values = {each.name: read(each, environ.get(each.name.upper())) for each in fields(Settings)}
    return complete(Settings(**values), environ)


def read(spec: Field, raw: Any) -> Any:
    """One setting's value from its raw variable, or the ConfigError that names it."""
    default = spec.metadata["default"]
    blank = isinstance(raw, str) and not raw.strip()
    if raw is None or (blank and default is not None):
        raw = default
    if raw is None:
        # An empty DATABASE_URL or SECRET_KEY is a mistake to report, not a reason to default.
        return None
    try:
        return spec.metadata["parse"](raw)
    except (TypeError, ValueError):
        raise ConfigError(spec.name.upper(), spec.metadata["accepts"], raw) from None


def complete(settings: Settings, environ: Mapping[str, Any]) -> Settings:
    """Fill the defaults that depend on other settings (unset until here: None)."""
    development = in_development(environ)
    if settings.database_url is None:
        settings = replace(settings, database_url=sqlite_default())
    if settings.secret_key is None:
        if not development:
            raise UnsetSetting(
                "SECRET_KEY",
                "outside development (DATABASE_URL set, FLASK_DEBUG not 1) every process"
                f" needs the same key: make one with {SECRET_KEY_RECIPE} and export it",
            )
        settings = replace(settings, secret_key=secrets.token_hex(32))
    if settings.behind_pgbouncer and not is_postgresql(settings.database_url):
        raise ConfigError(
            "DATABASE_URL",
            "a postgresql:// URL of PgBouncer when DB_POOLER is pgbouncer",
            settings.database_url,
        )
    if settings.database_replica_urls and not is_postgresql(settings.database_url):
        raise ConfigError(
            "DATABASE_REPLICA_URLS",
            "replicas only with a postgresql:// DATABASE_URL",
            ",".join(settings.database_replica_urls),
        )
    if settings.log_format is None:
        # gunicorn.conf.py makes json its own default.
        settings = replace(settings, log_format="text")
    return settings


def in_development(environ: Mapping[str, Any] = os.environ) -> bool:
    """Development: DATABASE_URL unset (SQLite in instance/), or FLASK_DEBUG=1."""
    debug = str(environ.get("FLASK_DEBUG", "")).strip().lower() in TRUE_WORDS
    return environ.get("DATABASE_URL") is None or debug


def is_postgresql(url: str) -> bool:
    """Whether a normalised database URL points at PostgreSQL."""
    return url.startswith("postgresql")


def app_settings(app: Flask | None = None) -> Settings:
    """The Settings create_app loaded for app, or for the current app."""
    return (app or current_app).extensions[SETTINGS_EXTENSION]
