"""Every setting parses, or stops start-up with one line naming it and what it accepts."""

import dataclasses

import pytest

from app import create_app
from app.config import INSTANCE_DIR, ConfigError, Settings, app_settings, load_settings

BASE = {"SECRET_KEY": "s"}

INVALID = [
    ("DATABASE_URL", "mysql://x/y", "a postgres://, postgresql:// or sqlite:// URL"),
    ("DB_POOL_SIZE", "0", "a whole number from 1 to 1000"),
    ("DB_POOL_SIZE", "five", "a whole number from 1 to 1000"),
    ("DB_MAX_OVERFLOW", "-1", "a whole number from 0 to 1000"),
    ("DB_MAX_OVERFLOW", "2.5", "a whole number from 0 to 1000"),
    ("DB_POOL_TIMEOUT", "0", "whole seconds from 1 to 600"),
    ("DB_POOL_TIMEOUT", "0.5", "whole seconds from 1 to 600"),
    ("DB_POOL_TIMEOUT", "soon", "whole seconds from 1 to 600"),
    ("DB_POOL_RECYCLE", "-2", "seconds from -1 (never) to 86400"),
    ("DB_POOL_PRE_PING", "maybe", "true or false"),
    ("DB_CONNECT_TIMEOUT", "0", "whole seconds from 1 to 300"),
    ("DB_STATEMENT_TIMEOUT", "-5", "milliseconds, 0 (off) or more"),
    ("DB_IDLE_IN_TRANSACTION_TIMEOUT", "1e3", "milliseconds, 0 (off) or more"),
    ("DB_APPLICATION_NAME", "x" * 49, "up to 48 printable ASCII characters"),
    ("DB_APPLICATION_NAME", "naïve", "up to 48 printable ASCII characters"),
    ("DB_CONNECTION_BUDGET", "0", "a whole number of 1 or more"),
    ("WEB_CONCURRENCY", "0", "a whole number from 1 to 256"),
    ("GUNICORN_THREADS", "many", "a whole number from 1 to 1000"),
    ("PORT", "70000", "a port number from 1 to 65535"),
    ("TOKEN_TTL", "10", "seconds from 60 to 31622400"),
    ("REQUEST_TIMEOUT", "0.5", "seconds from 1 to 600"),
    ("REQUEST_TIMEOUT", "soon", "seconds from 1 to 600"),
    ("REQUEST_TIMEOUT", "nan", "seconds from 1 to 600"),
    ("REQUEST_TIMEOUT", "601", "seconds from 1 to 600"),
]
ORIGINS_ACCEPTED = (
    "comma-separated origins such as https://app.example or http://localhost:3000"
    " (scheme://host[:port], no path or trailing slash; not *)"
)
# Each would silently match no browser's Origin header, or (*) every site's.
INVALID += [
    ("CORS_ORIGINS", origins, ORIGINS_ACCEPTED)
    for origins in (
        "http://localhost:3000/",
        "localhost:3000",
        "https://app.example/path",
        "*",
        "https://a.example, *",
        "https://a.example,localhost:3000",
        "http://localhost:70000",
        'https://a.example"; evil',
    )
]


@pytest.mark.parametrize(("name", "value", "accepts"), INVALID)
def test_an_invalid_value_names_the_variable_and_what_it_accepts(name, value, accepts):
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, name: value})
    message = str(raised.value)
    assert message == f"configuration error: {name}={value!r} is invalid; it accepts {accepts}"
    assert "\n" not in message


def test_config_error_is_a_clean_exit_with_no_traceback():
    with pytest.raises(SystemExit):
        create_app({"DB_POOL_SIZE": "nope"})


def test_defaults_match_the_contract():
    settings = load_settings({})
    assert settings.db_pool_size == 5
    assert settings.db_max_overflow == 5
    assert settings.db_pool_timeout == 10
    assert settings.db_pool_recycle == 1800
    assert settings.db_pool_pre_ping is True
    assert settings.db_connect_timeout == 5
    assert settings.db_statement_timeout == 15000
    assert settings.db_idle_in_transaction_timeout == 30000
    assert settings.db_application_name == "app"
    assert settings.request_timeout == 25
    assert settings.db_connection_budget is None
    assert settings.web_concurrency == 2
    assert settings.gunicorn_threads == 1
    assert settings.port == 8000
    assert settings.cors_origins == ()


def test_unset_database_url_means_sqlite_in_the_instance_folder():
    assert load_settings({}).database_url == f"sqlite:///{INSTANCE_DIR / 'app.sqlite'}"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db:5432/orders",
        "postgresql://u:p@db:5432/orders",
        "postgresql+psycopg2://u:p@db:5432/orders",
    ],
)
def test_postgres_urls_use_the_psycopg2_driver(url):
    settings = load_settings({**BASE, "DATABASE_URL": url})
    assert settings.database_url == "postgresql+psycopg2://u:p@db:5432/orders"


def test_secret_key_is_required_outside_development():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({"DATABASE_URL": "postgresql://db/orders"})


def test_secret_key_is_random_in_development():
    first, second = load_settings({}), load_settings({"FLASK_DEBUG": "1"})
    assert len(first.secret_key) >= 32
    assert first.secret_key != second.secret_key


def test_values_are_trimmed_and_words_accepted():
    settings = load_settings(
        {" DB_POOL_SIZE": "x", "DB_POOL_SIZE": " 7 ", "DB_POOL_PRE_PING": "off"}
    )
    assert settings.db_pool_size == 7
    assert settings.db_pool_pre_ping is False


def test_cors_origins_split_on_commas():
    settings = load_settings({"CORS_ORIGINS": "https://a.example, https://b.example,"})
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_cors_origins_are_kept_as_browsers_send_them():
    listed = "HTTPS://App.Example:8443,http://localhost:3000,http://127.0.0.1:5173,http://[::1]:80"
    settings = load_settings({"CORS_ORIGINS": listed})
    assert settings.cors_origins == (
        "https://app.example:8443",
        "http://localhost:3000",
        "http://127.0.0.1:5173",
        "http://[::1]:80",
    )


def test_every_setting_names_its_default_parser_and_what_it_accepts():
    for setting in dataclasses.fields(Settings):
        assert set(setting.metadata) == {"default", "parse", "accepts"}, setting.name
        assert setting.metadata["accepts"], setting.name


def test_settings_are_frozen():
    settings = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.db_pool_size = 50


def test_create_app_reads_its_overrides_as_the_environment_and_keeps_them_out_of_flask():
    app = create_app({**BASE, "DATABASE_URL": "sqlite://", "DB_POOL_SIZE": "2", "TESTING": True})
    assert app_settings(app).db_pool_size == 2
    assert "DB_POOL_SIZE" not in app.config
    assert app.config["TESTING"] is False, "an override is a variable, never a Flask key"
