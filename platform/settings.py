"""Typed settings, read once from the environment (prefix ``BACKOFFICE_``).

The defaults run the embedded mode: a SQLite file, an in-process broker, everything in one process.
Production sets the PostgreSQL and Redis URLs. Per-tenant options never live here: they are rows.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BACKOFFICE_"
SECRETS_KEY_HOWTO = "make one with `backoffice secrets new-key`"


class SettingsError(Exception):
    """A setting is invalid; the message names the variable and what it expects."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Where the embedded mode keeps its SQLite file and generated secret.
    data_dir: Path = Field(default=Path(".backoffice"), description="Directory for the embedded mode's files.")
    # The application's connection: on PostgreSQL a role that owns nothing and cannot bypass RLS.
    database_url: str = Field(repr=False, default="", description="SQLAlchemy async URL the web and workers use.")
    # Relay, scheduler and provider-wide staff views read across tenants: a role with BYPASSRLS.
    system_database_url: str = Field(repr=False, default="", description="URL of the cross-tenant (BYPASSRLS) role.")
    # Alembic runs as the owner of the schema.
    migration_database_url: str = Field(repr=False, default="", description="URL of the schema owner, for migrations.")
    db_pool_size: int = Field(default=10, ge=1, le=200, description="Connections per engine and process.")
    broker_url: str = Field(repr=False, default="memory://", description="memory:// (in-process) or redis://host:port/db.")
    redis_url: str = Field(repr=False, default="", description="Redis for rate limits and caches; defaults to broker_url.")
    secret_key: str = Field(repr=False, default="", description="Signs sessions and CSRF tokens; 32+ characters.")
    host: str = Field(default="127.0.0.1", description="Address the web server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web server binds.")
    base_url: str = Field(default="", description="Public URL of the platform (links in e-mails).")
    worker_threads: int = Field(default=4, ge=1, le=64, description="dramatiq worker threads per process.")
    secrets_keys: str = Field(default="", repr=False, description=(
        "Comma-separated Fernet keys for secrets at rest; the first encrypts, all decrypt. The same in every "
        "process; required outside the embedded mode (make one with `backoffice secrets new-key`)."))
    allow_private_targets: bool = Field(default=False,
                                        description="Allow outbound requests to private/loopback addresses.")
    # The provider's own identity provider for the staff console (empty: staff sign in with password and TOTP).
    staff_oidc_issuer: str = Field(default="", description=(
        "The provider's own OIDC issuer for staff sign-in, https outside tests; empty: no single sign-on."))
    staff_oidc_client_id: str = Field(default="", description="The staff console's client id at that issuer.")
    staff_oidc_client_secret: str = Field(repr=False, default="", description="Its client secret.")
    dns_nameserver: str = Field(default="", description=(
        "The DNS server (address, or address:port) custom-host verification asks for the client's TXT "
        "record; empty: the system's resolvers."))
    trusted_proxies: str = Field(default="", description=(
        "Comma-separated addresses or CIDR networks of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: none (the connecting address is the client)."))
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description=(
        "Port a worker or scheduler process serves Prometheus metrics on (the web app answers /metrics on "
        "its own port); empty: not served."))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["json", "text"] | None = Field(default=None, description=(
        "json (one object a line) or text (readable); empty: json in production and staging, text otherwise."))
    tenant_purge_grace_days: int = Field(default=30, ge=0, le=3650, description=(
        "Days a tenant must have been suspended before `backoffice tenants purge` deletes its data."))
    environment: Literal["production", "staging", "demo", "test"] | None = Field(default=None, description=(
        "What this deployment is: production refuses demo-only tools (moving a tenant's clock forward); "
        "empty: demo in the embedded mode, production otherwise."))

    @field_validator("database_url", "system_database_url", "migration_database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("expected a postgresql+asyncpg:// or sqlite+aiosqlite:// URL")
        return value

    @field_validator("broker_url", "redis_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        if value and not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("expected memory:// or a redis:// URL")
        return value

    @field_validator("secrets_keys")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        keys = [key.strip() for key in value.split(",") if key.strip()]
        for key in keys:
            try:
                valid = len(base64.urlsafe_b64decode(key.encode())) == 32
            except ValueError:
                valid = False
            if not valid:
                raise ValueError(f"expected comma-separated Fernet keys (44 characters each); {SECRETS_KEY_HOWTO}")
        return ",".join(keys)

    @field_validator("dns_nameserver")
    @classmethod
    def _nameserver(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        address, port = value, "53"
        if value.startswith("[") and "]:" in value:
            address, _, port = value[1:].partition("]:")
        elif value.count(":") == 1:
            address, _, port = value.partition(":")
        try:
            ipaddress.ip_address(address)
            valid = port.isdigit() and 1 <= int(port) <= 65535
        except ValueError:
            valid = False
        if not valid:
            raise ValueError("expected an IP address, or address:port, like 10.0.0.2 or 127.0.0.1:5353")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        try:
            return ",".join(str(ipaddress.ip_network(item)) for item in items)
        except ValueError:
            raise ValueError("expected comma-separated IP addresses or CIDR networks, like 10.0.0.0/8,::1") from None

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        # frozen model: defaults that depend on other fields are filled through object.__setattr__.
        if not self.database_url:
            path = (self.data_dir / "backoffice.sqlite3").resolve()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        if not self.system_database_url:
            object.__setattr__(self, "system_database_url", self.database_url)
        if not self.migration_database_url:
            object.__setattr__(self, "migration_database_url", self.system_database_url)
        if not self.redis_url and self.broker_url.startswith("redis"):
            object.__setattr__(self, "redis_url", self.broker_url)
        if self.environment is None:  # unset is production unless it is the embedded demo: fail safe
            object.__setattr__(self, "environment", "demo" if self.embedded else "production")
        if self.secret_key and len(self.secret_key) < 32:
            raise ValueError("secret_key: expected at least 32 characters")
        if not self.secret_key and not self.embedded:
            raise ValueError("secret_key: required outside the embedded mode (32+ random characters)")
        if not self.secrets_keys and not self.embedded:
            # A key made per process would leave each container unable to read the others' secrets.
            raise ValueError(f"secrets_keys: required outside the embedded mode, the same in every process; "
                             f"{SECRETS_KEY_HOWTO}")
        return self

    @model_validator(mode="after")
    def _staff_oidc(self) -> Settings:
        values = (self.staff_oidc_issuer, self.staff_oidc_client_id, self.staff_oidc_client_secret)
        if any(values) and not all(values):
            raise ValueError("staff_oidc_issuer: set the issuer, the client id and the client secret together")
        if self.staff_oidc_issuer and not self.staff_oidc_issuer.startswith("https://") \
                and not self.allow_private_targets:
            # Discovery, keys and the token exchange (with the client secret) all start from the issuer.
            raise ValueError("staff_oidc_issuer: expected an https URL")
        return self

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def trusted_proxy_networks(self) -> list[str]:
        return [item for item in self.trusted_proxies.split(",") if item]

    def effective_secret_key(self) -> str:
        """The configured key, or in embedded mode one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


# Never echoed back in an error: keys, and URLs (which may carry a password: redis://:pw@host).
SECRET_FIELDS = frozenset(
    {"secret_key", "secrets_keys", "staff_oidc_client_secret", "database_url", "system_database_url", "migration_database_url", "broker_url", "redis_url"}
)


def describe_error(error: ValidationError) -> str:
    """One line per problem: the environment variable, what it expects, and (unless secret) what it got."""
    lines = ["Invalid configuration:"]
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        if not field and ":" in message:  # model-level checks name their field first
            field, message = (part.strip() for part in message.split(":", 1))
        line = f"  {ENV_PREFIX}{field.upper()}: {message}"
        if field and field not in SECRET_FIELDS and isinstance(item.get("input"), str | int):
            line += f" (got {item['input']!r})"
        lines.append(line)
    return "\n".join(lines)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
