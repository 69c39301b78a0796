"""The key format: ``bo_live_`` + base62(32 random bytes) + base62(CRC32) checksum.

The checksum lets a secret scanner (or our own 401 path) recognise a key offline, without the database,
and tells a typo from an unknown key. Only the SHA-256 of the whole key is stored.

``bo_test_`` keys were issued once, with nothing behind the name: there is no test data, so they read and
wrote the company's live data. They are no longer issued, and one that was is recognised here so the 401
can say why it is refused (``retired_mode``) instead of calling it unknown.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIXES = {"live": "bo_live_"}
RETIRED_PREFIXES = {"test": "bo_test_"}
BODY_LEN = 43  # 62**43 > 2**256
CHECKSUM_LEN = 6  # 62**6 > 2**32
KEY_LEN = 8 + BODY_LEN + CHECKSUM_LEN
DISPLAY_LEN = 8 + 6


def base62(value: int, width: int) -> str:
    chars = []
    while value:
        value, digit = divmod(value, 62)
        chars.append(ALPHABET[digit])
    text = "".join(reversed(chars))
    if len(text) > width:
        raise ValueError("value too large for width")
    return text.rjust(width, "0")


def checksum(text: str) -> str:
    return base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LEN)


def generate(mode: str) -> str:
    body = base62(int.from_bytes(secrets.token_bytes(32), "big"), BODY_LEN)
    head = PREFIXES[mode] + body
    return head + checksum(head)


def looks_like_key(value: str) -> bool:
    """Prefix, length, alphabet and checksum: a real key (or a perfect forgery of its format)."""
    return _well_formed(value, PREFIXES)


def retired_mode(value: str) -> str | None:
    """The mode of a well-formed key of a mode no longer accepted (``test``), else None."""
    if not _well_formed(value, RETIRED_PREFIXES):
        return None
    return next(mode for mode, prefix in RETIRED_PREFIXES.items() if value.startswith(prefix))


def _well_formed(value: str, prefixes: dict[str, str]) -> bool:
    if not isinstance(value, str) or len(value) != KEY_LEN or not value.startswith(tuple(prefixes.values())):
        return False
    rest = value[8:]
    if any(c not in ALPHABET for c in rest):
        return False
    return secrets.compare_digest(checksum(value[:-CHECKSUM_LEN]), value[-CHECKSUM_LEN:])


def hash_key(value: str) -> str:
    return hashlib.sha256(value.encode("ascii")).hexdigest()


def display_prefix(value: str) -> str:
    return value[:DISPLAY_LEN]
