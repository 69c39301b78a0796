"""Secrets at rest (connector credentials, webhook signing secrets, OIDC client secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a rotatable key list: the first key of
``BACKOFFICE_SECRETS_KEYS`` encrypts, every listed key decrypts, so a new key goes first, :func:`rotate_all`
(``backoffice secrets rotate``) re-encrypts, and the old key is dropped afterwards. Outside the embedded
mode the key list is required (settings refuse to load without it): every process must read what the
others wrote. Only the embedded mode generates a key, once, in the data dir; to rotate it, list a new key
first and the file's key after it. Decrypted values are never logged; ``redact`` is what screens show.

This module knows no table: each domain declares the columns where it keeps encrypted values as a
:class:`SecretColumn`, and the entry point that runs the rotation passes them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Table, bindparam, func, select, tuple_, update

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from backoffice.platform.db.session import Database


class SecretUnreadable(ValueError):
    """No live key decrypts this value (it was written with a key that has been removed)."""


def _keys(settings: Settings) -> list[bytes]:
    if settings.secrets_keys:
        return [key.strip().encode() for key in settings.secrets_keys.split(",") if key.strip()]
    path = settings.data_dir / "secrets_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return [path.read_bytes().strip()]


@lru_cache(maxsize=4)
def _cipher(settings: Settings) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in _keys(settings)])


@lru_cache(maxsize=4)
def _newest(settings: Settings) -> Fernet:
    return Fernet(_keys(settings)[0])


def new_key() -> str:
    """A fresh key for ``BACKOFFICE_SECRETS_KEYS``."""
    return Fernet.generate_key().decode()


def encrypt(plaintext: str, settings: Settings | None = None) -> str:
    return _cipher(settings or get_settings()).encrypt(plaintext.encode()).decode()


def decrypt(token: str, settings: Settings | None = None) -> str:
    try:
        return _cipher(settings or get_settings()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("no live key decrypts this secret") from None


def rotate(token: str, settings: Settings | None = None) -> str:
    """Re-encrypt under the first (newest) key."""
    return _cipher(settings or get_settings()).rotate(token.encode()).decode()


def reseal(token: str, settings: Settings | None = None) -> str:
    """The token under the newest key: itself when it already is (so a second run rewrites nothing)."""
    settings = settings or get_settings()
    try:
        _newest(settings).decrypt(token.encode())
        return token
    except InvalidToken:
        pass
    try:
        return rotate(token, settings)
    except InvalidToken:
        raise SecretUnreadable("no live key decrypts this secret") from None


# --- rotating every stored secret ----------------------------------------------------------------------

@dataclass(frozen=True)
class SecretColumn:
    """A tenant-owned table's column that holds encrypted values, declared by the domain that owns it.

    ``reseal(row, one)`` returns the column's new value for a row (its columns by name), calling
    ``one(token)`` for every encrypted value in it; it returns a value equal to the old one when no
    token changed. ``key`` names the primary key's columns: (tenant_id, id) for every tenant-owned table.
    """

    label: str
    table: Table
    column: str
    reseal: Callable[[Mapping[str, Any], Callable[[str], str]], Any]
    # The primary key's columns: every tenant-owned table's (tenant_id, id); a provider table names its own.
    key: tuple[str, ...] = ("tenant_id", "id")


@dataclass
class RotationReport:
    rows: dict[str, int] = field(default_factory=dict)  # rows read, per column label
    resealed: dict[str, int] = field(default_factory=dict)  # rows rewritten under the newest key
    unreadable: list[str] = field(default_factory=list)  # "label tenant_id/id" of values no key decrypts

    @property
    def done(self) -> bool:
        return not self.unreadable


async def count_secret_rows(database: Database, columns: Iterable[SecretColumn]) -> int:
    """How many rows :func:`rotate_all` will read (for a progress bar)."""
    total = 0
    async with database.system() as session:
        for column in columns:
            total += (await session.execute(select(func.count()).select_from(column.table))).scalar_one()
    return total


async def rotate_all(
    database: Database, columns: Iterable[SecretColumn], *, acting: Actor, settings: Settings | None = None,
    batch_size: int = 500, progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every stored secret under the newest key, so the older keys can be retired.

    Runs as the system role, across every tenant. Each batch is one transaction: the rows are read in
    primary-key order and locked (``FOR UPDATE`` on PostgreSQL, so a concurrent change of a secret is
    neither lost nor overwritten), and the changed ones are written back in one executemany UPDATE.
    Idempotent: a value already under the newest key is left alone, so an interrupted run is simply
    run again. A value no listed key decrypts is reported, never dropped or rewritten. The run is
    audited (provider-wide) with its counts.
    """
    settings = settings or database.settings
    report = RotationReport()
    for column in columns:
        table = column.table
        key = tuple(table.c[name] for name in column.key)
        write = (update(table)
                 .where(*(table.c[name] == bindparam(f"row_{name}") for name in column.key))
                 .values({column.column: bindparam("row_value")}))
        report.rows[column.label] = report.resealed[column.label] = 0
        after: tuple[Any, Any] | None = None
        while True:
            async with database.system() as session:
                query = select(table).order_by(*key).limit(batch_size).with_for_update()
                if after is not None:
                    query = query.where(tuple_(*key) > tuple_(*after))
                rows = (await session.execute(query)).mappings().all()
                if not rows:
                    break
                changed = []
                for row in rows:
                    where = f"{column.label} {'/'.join(str(row[name]) for name in column.key)}"
                    value = column.reseal(row, _resealer(settings, report, where))
                    if value != row[column.column]:
                        changed.append({**{f"row_{name}": row[name] for name in column.key}, "row_value": value})
                if changed:
                    await session.execute(write, changed)
                after = tuple(rows[-1][name] for name in column.key)
            report.rows[column.label] += len(rows)
            report.resealed[column.label] += len(changed)
            if progress is not None:
                progress(len(rows))
    async with database.system() as session:
        await record(session, actor=acting, action="secrets.rotated", target_type="secrets", target_id=None,
                     tenant_id=None, detail={"rows": report.rows, "resealed": report.resealed,
                                             "unreadable": len(report.unreadable)})
    return report


def _resealer(settings: Settings, report: RotationReport, where: str) -> Callable[[str], str]:
    def one(token: str) -> str:
        try:
            return reseal(token, settings)
        except SecretUnreadable:
            report.unreadable.append(where)
            return token

    return one


def redact(value: str | None, keep: int = 4) -> str:
    if not value:
        return ""
    return "•" * 8 + (value[-keep:] if len(value) > 3 * keep else "")
