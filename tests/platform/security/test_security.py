"""Secrets at rest, Standard Webhooks signatures and outbound target checks."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from backoffice.platform.security import secrets as secret_store
from backoffice.platform.security import standard_webhooks as sw
from backoffice.platform.security.outbound import TargetRefused, check_target, check_url_shape
from backoffice.platform.settings import Settings


def _settings(tmp_path, keys: list[bytes] | None = None, **extra) -> Settings:
    joined = ",".join(k.decode() for k in keys) if keys else ""
    return Settings(data_dir=tmp_path, secrets_keys=joined, **extra)


def test_secrets_round_trip_and_rotate_with_two_live_keys(tmp_path):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = secret_store.encrypt("asaas-api-key-123", _settings(tmp_path, [old]))
    assert "asaas-api-key-123" not in token
    both = _settings(tmp_path, [new, old])  # the new key goes first; the old one still decrypts
    assert secret_store.decrypt(token, both) == "asaas-api-key-123"
    rotated = secret_store.rotate(token, both)
    assert secret_store.decrypt(rotated, _settings(tmp_path, [new])) == "asaas-api-key-123"
    with pytest.raises(secret_store.SecretUnreadable):
        secret_store.decrypt(token, _settings(tmp_path, [new]))  # the old key is gone


def test_embedded_mode_generates_one_key_and_keeps_it(tmp_path):
    token = secret_store.encrypt("x", _settings(tmp_path))
    assert (tmp_path / "secrets_key").stat().st_mode & 0o777 == 0o600
    assert secret_store.decrypt(token, _settings(tmp_path)) == "x"


def test_redact_never_shows_the_secret():
    assert secret_store.redact("sk_live_abcdefghijklmnop") == "••••••••mnop"
    assert "abc" not in secret_store.redact("abc")


def test_standard_webhooks_reference_vector():
    # The example in the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sw.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_and_verify_with_rotation_and_replay_protection():
    old, new = sw.new_secret(), sw.new_secret()
    body = b'{"type":"payment.cleared"}'
    headers = sw.sign([new, old], "msg_1", body, timestamp=1_700_000_000)
    assert len(headers["webhook-signature"].split()) == 2
    sw.verify([old], headers, body, now=1_700_000_100)  # a receiver still on the old secret accepts
    sw.verify([new], headers, body, now=1_700_000_100)
    with pytest.raises(sw.SignatureError, match="no signature"):
        sw.verify([new], headers, body + b" ", now=1_700_000_100)
    with pytest.raises(sw.SignatureError, match="tolerance"):
        sw.verify([new], headers, body, now=1_700_000_000 + 301)
    with pytest.raises(sw.SignatureError, match="missing"):
        sw.verify([new], {"webhook-id": "msg_1"}, body)


async def test_private_targets_are_refused_unless_allowed(tmp_path):
    strict = _settings(tmp_path)
    for url in ("http://127.0.0.1:8080/hook", "http://10.0.0.5/x", "http://[::1]/x", "http://localhost/x",
                "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(TargetRefused):
            await check_target(url, strict)
    await check_target("http://127.0.0.1:8080/hook", _settings(tmp_path, allow_private_targets=True))
    with pytest.raises(TargetRefused):
        check_url_shape("ftp://example.com/x")
    with pytest.raises(TargetRefused):
        check_url_shape("https://user:pass@example.com/x")
