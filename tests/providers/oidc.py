"""A small OpenID Connect provider for tests, over real loopback HTTP: discovery, authorize (which signs
the configured person in at once), token (checks the client secret, the redirect URI and the PKCE
verifier, and answers an RS256 ID token signed with a key made for the test) and JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey


@dataclass
class Provider:
    client_id: str = "portal-client"
    client_secret: str = "s3cret-of-the-client"
    person: dict[str, Any] = field(default_factory=lambda: {"sub": "user-1", "email": "sso.user@alfa.example",
                                                            "email_verified": True, "name": "Sso User"})
    issuer_override: str | None = None  # answer with another issuer inside the token
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "test-key"}))
    codes: dict[str, dict] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Provider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    base = provider.issuer
                    self._json(200, {"issuer": base, "authorization_endpoint": f"{base}/authorize",
                                     "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks",
                                     "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["RS256"],
                                     "code_challenge_methods_supported": ["S256"]})
                elif url.path == "/jwks":
                    self._json(200, {"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    if query.get("client_id") != provider.client_id or query.get("code_challenge_method") != "S256":
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = query
                    self.send_response(302)
                    self.send_header("location", f"{query['redirect_uri']}?" + urlencode({"code": code, "state": query["state"]}))
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                asked = provider.codes.pop(form.get("code", ""), None)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if (asked is None or form.get("client_secret") != provider.client_secret
                        or form.get("client_id") != provider.client_id
                        or form.get("redirect_uri") != asked["redirect_uri"] or challenge != asked["code_challenge"]):
                    self._json(400, {"error": "invalid_grant"})
                    return
                now = int(time.time())
                claims = {**provider.person, "iss": provider.issuer_override or provider.issuer,
                          "aud": provider.client_id, "iat": now, "exp": now + 300, "nonce": asked["nonce"]}
                id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, provider.key)
                self._json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                 "expires_in": 300, "id_token": id_token})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
