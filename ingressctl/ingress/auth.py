"""Secrets -> files for authentication: htpasswd users (basic auth), client-certificate CAs,
and the client certificate and CAs of TLS towards backends (proxy-ssl-secret).

The files travel in the Model as `AuthFile(name, content)` and are written by the process
layer next to the certificates; templates only see their names. Content is checked line by
line, so a Secret cannot smuggle anything but users and hashes (or PEM certificates).

Design choice: names are derived from the validated namespace and Secret name plus the
kind of file, so two Ingresses using the same Secret share one file.
"""

from __future__ import annotations

import re
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..objects import Secret
from .annotations import IngressConfig
from .model import AuthFile
from .tls import TLSError, certificate_from_secret

_USER_RE = re.compile(r"^[A-Za-z0-9._@+-]{1,256}\Z")
_HASH_RE = re.compile(r"^[\x21-\x7e]{1,512}\Z")  # printable, no spaces


class AuthError(ValueError):
    pass


def _user_line(user: str, hashed: str, where: str) -> str:
    if not _USER_RE.match(user):
        raise AuthError(f"{where}: the user name may only contain letters, digits and ._@+- (not quoted: it "
                        "may be a password hash written first)")
    if not _HASH_RE.match(hashed) or ":" in hashed:
        raise AuthError(f"{where}: the password hash of {user!r} is not a printable token")
    return f"{user}:{hashed}"


def htpasswd_file(secret: Secret, cfg: IngressConfig) -> AuthFile:
    """auth-file: htpasswd lines in key 'auth'; auth-map: one key per user, value = hash."""
    lines: list[str] = []
    if cfg.auth_secret_type == "auth-map":
        if not secret.data:
            raise AuthError("has no users")
        for user in sorted(secret.data):
            lines.append(_user_line(user, _decode(secret.data[user], user).strip(), f"key {user}"))
    else:
        raw = secret.data.get("auth")
        if raw is None:
            raise AuthError("has no key 'auth'")
        for i, line in enumerate(_decode(raw, "auth").splitlines(), 1):
            if line.strip():
                user, sep, hashed = line.strip().partition(":")
                if not sep:
                    raise AuthError(f"line {i} is not user:hash")
                lines.append(_user_line(user, hashed, f"line {i}"))
        if not lines:
            raise AuthError("key 'auth' has no users")
    kind = "htpasswd-map" if cfg.auth_secret_type == "auth-map" else "htpasswd"
    return AuthFile(f"{kind}-{secret.meta.namespace}-{secret.meta.name}", ("\n".join(lines) + "\n").encode())


MAX_CA_CERTIFICATES = 200  # a public CA bundle holds about 150
MAX_CA_BUNDLE = 512 << 10


def client_ca_file(secret: Secret, cfg: IngressConfig) -> AuthFile:
    """auth-tls-secret: the PEM CA bundle in key 'ca.crt', re-encoded from parsed certificates."""
    raw = secret.data.get("ca.crt")
    if not raw:
        raise AuthError("has no key 'ca.crt'")
    if len(raw) > MAX_CA_BUNDLE or raw.count(b"-----BEGIN CERTIFICATE-----") > MAX_CA_CERTIFICATES:
        raise AuthError(f"ca.crt holds at most {MAX_CA_CERTIFICATES} certificates in {MAX_CA_BUNDLE >> 10} KiB")
    try:
        certs = x509.load_pem_x509_certificates(raw)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    except Exception as e:
        raise AuthError(f"ca.crt is not PEM certificates we can read ({type(e).__name__}: {e})") from None
    return AuthFile(f"ca-{secret.meta.namespace}-{secret.meta.name}", pem)


def _decode(raw: bytes, key: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(f"key {key!r} is not UTF-8 text") from None


def proxy_ssl_files(secret: Secret, cfg: IngressConfig, now: datetime) -> tuple[AuthFile | None, AuthFile | None]:
    """proxy-ssl-secret: the client certificate (tls.crt + tls.key, one PEM file) and the CA
    bundle (ca.crt), either may be absent but not both; proxy-ssl-verify on needs the CA."""
    client = None
    if secret.data.get("tls.crt") or secret.data.get("tls.key"):
        try:
            cert = certificate_from_secret(secret, now)
        except TLSError as e:
            raise AuthError(f"client certificate: {e}") from None
        client = AuthFile(f"proxy-client-{secret.meta.namespace}-{secret.meta.name}", cert.cert_pem + cert.key_pem)
    ca = client_ca_file(secret, cfg) if secret.data.get("ca.crt") else None
    if ca is None and cfg.proxy_ssl_verify == "on":
        raise AuthError("has no key 'ca.crt', which proxy-ssl-verify needs")
    if client is None and ca is None:
        raise AuthError("has neither tls.crt/tls.key nor ca.crt")
    return client, ca
