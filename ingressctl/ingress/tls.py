"""Checks a `kubernetes.io/tls` Secret and turns it into a `Certificate` (pure: `now` is passed in).

A Secret is refused, with a reason, when a key is missing, the PEM does not parse, the key
does not belong to the certificate, the certificate is expired or not yet valid, or a
certificate of the chain is weaker than OpenSSL's default security level 2 lets nginx load
(RSA/DSA under 2048 bits, curves under 224 bits, MD5/SHA-1 signatures): nginx -t would fail
on it, and with it the configuration of every other Ingress.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from ..objects import Secret
from ..store import Snapshot
from .model import Certificate, Model


class TLSError(ValueError):
    pass


_WEAK_HASHES = frozenset({"md5", "sha1", "md5-sha1"})
_SIGNING_KEYS = (rsa.RSAPublicKey, dsa.DSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey,
                 ed448.Ed448PublicKey)


def _too_weak(cert: x509.Certificate) -> str:
    """What in `cert` OpenSSL's security level 2 refuses ("" when nothing)."""
    key = cert.public_key()
    if not isinstance(key, _SIGNING_KEYS):  # X25519, X448, DH: "unknown certificate type"
        return f"a {type(key).__name__.removesuffix('PublicKey') or 'non-signing'} key, which cannot sign"
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and key.key_size < 2048:
        return f"a {key.key_size}-bit key"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 224:
        return f"a {key.curve.key_size}-bit curve ({key.curve.name})"
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "a signature algorithm nobody supports"
    if algorithm is not None and algorithm.name in _WEAK_HASHES:
        return f"an {algorithm.name.upper()} signature"
    return ""


_Parsed = tuple[Certificate, datetime, datetime] | TLSError  # certificate, not before, not after; or why not
_parsed: dict[str, tuple[Secret, _Parsed]] = {}  # "ns/name" -> (the Secret object, what parsing it gave)
_PARSED_MAX = 20_000  # Secrets remembered (a deleted one until the next clear): tens of MB at most


def certificate_from_secret(secret: Secret, now: datetime) -> Certificate:
    """The Secret's certificate; TLSError (never another exception) when it cannot be served.

    Parsing and checking a Secret does not depend on `now`; its result is kept per Secret
    object (the store keeps unchanged objects), so each build pays only for changed Secrets.
    Only the validity window is checked against `now` every time."""
    key = secret.meta.key
    hit = _parsed.get(key)
    if hit is not None and hit[0] is secret:
        parsed = hit[1]
    else:
        parsed = _parse_once(secret)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[key] = (secret, parsed)
    if isinstance(parsed, TLSError):
        raise TLSError(*parsed.args)
    cert, not_before, not_after = parsed
    if now > not_after:
        raise TLSError(f"certificate expired at {not_after.isoformat()}")
    if now < not_before:
        raise TLSError(f"certificate is not valid before {not_before.isoformat()}")
    return cert


def _parse_once(secret: Secret) -> _Parsed:
    try:
        return _certificate(secret)
    except TLSError as e:
        return e
    except UnsupportedAlgorithm as e:
        return TLSError(f"uses an algorithm this controller cannot read ({e})")
    except Exception as e:
        return TLSError(f"cannot be read ({type(e).__name__}: {e})")


MAX_CHAIN = 10  # certificates in tls.crt (a real chain has 2-4)
MAX_PEM = 64 << 10


def _certificate(secret: Secret) -> tuple[Certificate, datetime, datetime]:
    crt, key = secret.data.get("tls.crt"), secret.data.get("tls.key")
    if not crt or not key:
        raise TLSError("Secret has no tls.crt or tls.key")
    if len(crt) > MAX_PEM or len(key) > MAX_PEM or crt.count(b"-----BEGIN CERTIFICATE-----") > MAX_CHAIN:
        raise TLSError(f"tls.crt holds at most {MAX_CHAIN} certificates and each key at most {MAX_PEM >> 10} KiB")
    try:
        chain = x509.load_pem_x509_certificates(crt)
    except ValueError as e:
        raise TLSError(f"tls.crt is not a PEM certificate ({e})") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as e:
        raise TLSError(f"tls.key is not an unencrypted PEM private key ({e})") from None
    leaf = chain[0]
    for i, c in enumerate(chain):
        weak = _too_weak(c)
        if weak:
            raise TLSError(f"{'certificate' if i == 0 else f'chain certificate {i}'} has {weak}, "
                           "which nginx's OpenSSL refuses (security level 2)")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(serialization.Encoding.PEM, pub) != leaf.public_key().public_bytes(
        serialization.Encoding.PEM, pub
    ):
        raise TLSError("tls.key does not match the certificate in tls.crt")
    m = secret.meta
    cert = Certificate(
        name=f"{m.namespace}-{m.name}",
        cert_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        key_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        not_after=leaf.not_valid_after_utc.isoformat(),
        namespace=m.namespace,
        secret=m.name,
    )
    return cert, leaf.not_valid_before_utc, leaf.not_valid_after_utc


def refresh_certificates(model: Model, snap: Snapshot, secrets: Collection[str], now: datetime) -> Model | None:
    """The model with the rotated certificates of `secrets` ("ns/name"), when a rotation is all
    that changes: the Lua table serves them (no server names them in nginx.conf), and each
    Secret was and stays a valid certificate used for nothing else.

    None when the change needs a full build: a Secret no certificate came from (unused, or
    newly referenced), one that is gone or no longer valid (a problem to report), one that a
    server with its own SSL context or the default certificate uses, or one an auth file was
    made from (htpasswd, client CA, backend client certificate)."""
    by_secret = {f"{c.namespace}/{c.secret}": c for c in model.certificates}
    replaced: dict[str, Certificate] = {}
    for key in secrets:
        ns, _, name = key.partition("/")
        old, secret = by_secret.get(key), snap.secret(ns, name)
        if old is None or secret is None or any(f.name.endswith(f"-{ns}-{name}") for f in model.auth_files):
            return None
        try:
            new = certificate_from_secret(secret, now)
        except TLSError:
            return None
        if new.file_name != old.file_name:
            replaced[old.file_name] = new
    if not replaced:
        return model
    if model.default_certificate in replaced:
        return None
    servers = []
    for s in model.servers:
        if s.certificate in replaced:
            if s.own_tls_context:
                return None
            s = dataclasses.replace(s, certificate=replaced[s.certificate].file_name)
        servers.append(s)
    certificates = tuple(replaced.get(c.file_name, c) for c in model.certificates)
    return dataclasses.replace(model, servers=tuple(servers), certificates=certificates)
