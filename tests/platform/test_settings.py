"""Settings from the environment: embedded defaults, and refusals that name the variable and keep secrets."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backoffice.platform.settings import SettingsError, load_settings

BACKOFFICE_CLI = Path(sys.executable).with_name("backoffice")
GOOD_KEY = "k" * 40
FERNET_KEY = "YmFja29mZmljZS10ZXN0cy1zZWNyZXRzLWtleS0zMmI="  # 32 bytes, url-safe base64


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment (no BACKOFFICE_ variables) and a fresh working directory."""
    for name in list(os.environ):
        if name.startswith("BACKOFFICE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def set_vars(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"BACKOFFICE_{name}", value)

    return set_vars


def test_defaults_run_the_embedded_mode_in_the_working_directory(env, tmp_path):
    settings = load_settings()
    sqlite = tmp_path.resolve() / ".backoffice" / "backoffice.sqlite3"
    assert settings.embedded and not settings.is_postgres
    assert settings.database_url == f"sqlite+aiosqlite:///{sqlite}"
    assert settings.system_database_url == settings.migration_database_url == settings.database_url
    assert settings.broker_url == "memory://"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_data_dir_moves_the_sqlite_file(env, tmp_path):
    env(DATA_DIR=str(tmp_path / "elsewhere"))
    sqlite = tmp_path.resolve() / "elsewhere" / "backoffice.sqlite3"
    assert load_settings().database_url == f"sqlite+aiosqlite:///{sqlite}"


def test_embedded_secret_key_is_generated_once_and_kept_private(env, tmp_path):
    first = load_settings().effective_secret_key()
    again = load_settings().effective_secret_key()
    key_file = tmp_path / ".backoffice" / "secret_key"
    assert first == again and len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("variable", "value", "expects"),
    [
        ("PORT", "abc", "integer"),
        ("PORT", "70000", "65535"),
        ("DATABASE_URL", "mysql://root:hunter2@db/bo", "postgresql+asyncpg://"),
        ("SYSTEM_DATABASE_URL", "postgres://root:hunter2@db/bo", "postgresql+asyncpg://"),
        ("BROKER_URL", "amqp://guest:hunter2@mq:5672", "redis://"),
        ("REDIS_URL", "http://:hunter2@cache", "redis://"),
        ("SECRET_KEY", "hunter2-is-short", "32"),
        ("LOG_LEVEL", "verbose", "INFO"),
        ("WORKER_THREADS", "0", "greater than or equal to 1"),
    ],
)
def test_invalid_value_names_the_variable_and_what_it_expects_without_echoing_secrets(env, variable, value, expects):
    env(**{variable: value})
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert f"BACKOFFICE_{variable}:" in message
    assert expects in message
    assert "hunter2" not in message


def test_every_invalid_variable_is_reported_at_once(env):
    env(PORT="abc", BROKER_URL="amqp://mq", LOG_LEVEL="loud")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert all(f"BACKOFFICE_{name}:" in message for name in ("PORT", "BROKER_URL", "LOG_LEVEL"))


def test_postgresql_without_a_secret_key_is_refused(env):
    env(DATABASE_URL="postgresql+asyncpg://app:hunter2@db/bo")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "BACKOFFICE_SECRET_KEY:" in str(raised.value)
    assert "required" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_production_settings_fill_their_dependent_defaults(env):
    env(DATABASE_URL="postgresql+asyncpg://app@db/bo", SECRET_KEY=GOOD_KEY, BROKER_URL="redis://cache:6379/0",
        SECRETS_KEYS=FERNET_KEY)
    settings = load_settings()
    assert settings.is_postgres and not settings.embedded
    assert settings.system_database_url == settings.migration_database_url == settings.database_url
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.effective_secret_key() == GOOD_KEY


def test_postgresql_without_a_secrets_key_is_refused(env, tmp_path):
    # Each process would make its own key in its own data dir: two containers could not read each
    # other's connector secrets.
    env(DATABASE_URL="postgresql+asyncpg://app:hunter2@db/bo", SECRET_KEY=GOOD_KEY)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "BACKOFFICE_SECRETS_KEYS:" in message and "required outside the embedded mode" in message
    assert "backoffice secrets new-key" in message and "hunter2" not in message
    assert not (tmp_path / ".backoffice").exists()


@pytest.mark.parametrize("keys", ["not-a-key", f"{FERNET_KEY},short", "k" * 44])
def test_secrets_keys_must_be_fernet_keys_and_are_never_echoed(env, keys):
    env(SECRETS_KEYS=keys)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "BACKOFFICE_SECRETS_KEYS:" in str(raised.value) and "Fernet" in str(raised.value)
    assert keys not in str(raised.value)


def test_processes_refuse_to_start_on_postgresql_without_a_secrets_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
    env.update({"BACKOFFICE_DATABASE_URL": "postgresql+asyncpg://app@127.0.0.1:1/bo",
                "BACKOFFICE_SECRET_KEY": GOOD_KEY})
    result = subprocess.run([str(BACKOFFICE_CLI), "worker"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "BACKOFFICE_SECRETS_KEYS" in result.stderr and "backoffice secrets new-key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".backoffice").exists()


def test_cli_with_an_invalid_setting_exits_2_naming_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
    env["BACKOFFICE_PORT"] = "abc"
    result = subprocess.run([str(BACKOFFICE_CLI), "tenants", "list"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "BACKOFFICE_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".backoffice").exists()  # refused before touching anything
