"""Tenant branding as validated data: hex colours and a small raster logo, never CSS or HTML."""

from __future__ import annotations

import re
from typing import Any

HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
COLOUR_KEYS = ("primary", "secondary", "background", "text")
DEFAULT_BRANDING = {"primary": "#1f4e79", "secondary": "#f2a900", "background": "#ffffff", "text": "#1a1a1a"}
LOGO_MAX_BYTES = 256 * 1024
_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


def validate_colours(branding: dict[str, Any] | None) -> dict[str, str]:
    """Known keys only, each ``#rrggbb``; unknown keys are refused rather than silently kept."""
    branding = dict(branding or {})
    unknown = sorted(set(branding) - set(COLOUR_KEYS))
    if unknown:
        raise ValueError(f"unknown colour keys {unknown}; expected some of {list(COLOUR_KEYS)}")
    result = dict(DEFAULT_BRANDING)
    for key, value in branding.items():
        if not isinstance(value, str) or not HEX.match(value):
            raise ValueError(f"{key}: expected a hex colour like #1f4e79")
        result[key] = value.lower()
    return result


def sniff_logo(data: bytes) -> str:
    """The logo's content type from its bytes (PNG, JPEG or WebP), within the size limit."""
    if len(data) > LOGO_MAX_BYTES:
        raise ValueError(f"expected at most {LOGO_MAX_BYTES // 1024} KiB, got {len(data) // 1024} KiB")
    for content_type, signatures in _SIGNATURES.items():
        if data.startswith(signatures):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("expected a PNG, JPEG or WebP image")
