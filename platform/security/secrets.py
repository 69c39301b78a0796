"""Secrets at rest (connector credentials, webhook signing secrets, OIDC client secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a rotatable key list: the first key of
``BACKOFFICE_SECRETS_KEYS`` encrypts, every listed key decrypts, so a new key goes first, ``rotate_all``
re-encrypts, and the old key is dropped afterwards. In embedded mode a key is generated once in the
data dir. Decrypted values are never logged; ``redact`` is what screens show.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from backoffice.platform.settings import Settings, get_settings


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


def redact(value: str | None, keep: int = 4) -> str:
    if not value:
        return ""
    return "•" * 8 + (value[-keep:] if len(value) > 3 * keep else "")
