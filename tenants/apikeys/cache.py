"""Successful key authentications, remembered in this process for a few seconds.

An API request would otherwise look its key up (and often its tenant) before doing anything. The entry
is keyed by the key's hash (never the secret) and carries the tenant, so a cached key can only ever act
for its own tenant. Revocation or rolling in this process forgets the entry at once; a change made by
another process (revocation, suspension of the tenant) is seen within ``TTL_SECONDS``. Expiry is checked
on every use against the entry's ``expires_at``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class CachedKey:
    key_hash: str
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    scopes: tuple[str, ...]
    display_prefix: str
    rate_limit: int
    expires_at: datetime | None
    cached_at: float

    def usable(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class KeyCache:
    def __init__(self, ttl: float = TTL_SECONDS, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.monotonic = monotonic
        self._entries: dict[str, CachedKey] = {}
        self._touched: dict[uuid.UUID, float] = {}

    def get(self, key_hash: str) -> CachedKey | None:
        entry = self._entries.get(key_hash)
        if entry is not None and self.monotonic() - entry.cached_at >= self.ttl:
            del self._entries[key_hash]
            return None
        return entry

    def put(self, *, key_hash: str, tenant_id: uuid.UUID, key_id: uuid.UUID, scopes: tuple[str, ...],
            display_prefix: str, rate_limit: int, expires_at: datetime | None) -> CachedKey:
        now = self.monotonic()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {h: e for h, e in self._entries.items() if now - e.cached_at < self.ttl}
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
        entry = CachedKey(key_hash, tenant_id, key_id, scopes, display_prefix, rate_limit, expires_at, now)
        self._entries[key_hash] = entry
        return entry

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()
        self._touched.clear()

    def mark_touched(self, key_id: uuid.UUID) -> None:
        self._touched[key_id] = self.monotonic()

    def due_for_touch(self, key_id: uuid.UUID, every: float) -> bool:
        """True at most once per ``every`` seconds per key: the caller then records the key's last use."""
        now = self.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < every:
            return False
        if len(self._touched) >= MAX_ENTRIES:
            self._touched = {k: t for k, t in self._touched.items() if now - t < every}
        self._touched[key_id] = now
        return True


authenticated = KeyCache()


def forget_on_commit(session: AsyncSession, key_hash: str) -> None:
    """Forget a key now and again when the change commits (a request between the two re-reads the old row)."""
    authenticated.forget(key_hash)
    event.listen(session.sync_session, "after_commit", lambda _session: authenticated.forget(key_hash), once=True)
