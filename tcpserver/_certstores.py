"""
Certificate stores: the manual's store types and how each is read.

Reads PEM, PFX (PKCS#12), PKCS#7 and DER data with :mod:`cryptography` into
certificates and private keys; :class:`~tcpserver.certificates.Certificate`
selects from what these return.  Errors are the manual's: 271 when a store
cannot be opened or read, 10045 for store types that do not exist here.
No sockets, no OpenSSL contexts.
"""

from __future__ import annotations

import base64
import enum
import os
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from tcpserver import errors
from tcpserver.errors import TCPServerError

__all__ = [
    "FILE_TYPES",
    "KEY_STORE_TYPES",
    "UNSUPPORTED",
    "CertStoreType",
    "PrivateKey",
    "check_store_type",
    "format_name",
    "load_pem_certificates",
    "looks_like_a_path",
    "normalize_dn",
    "one_certificate",
    "parse_store",
    "read_store",
    "same_key",
    "store_path",
    "subject_from_configuration",
]


class CertStoreType(enum.IntEnum):
    """Where a certificate comes from; the numbers are the manual's."""

    USER = 0
    MACHINE = 1
    PFX_FILE = 2
    PFX_BLOB = 3
    JKS_FILE = 4
    JKS_BLOB = 5
    PEM_KEY_FILE = 6
    PEM_KEY_BLOB = 7
    PUBLIC_KEY_FILE = 8
    PUBLIC_KEY_BLOB = 9
    SSH_PUBLIC_KEY_BLOB = 10
    P7B_FILE = 11
    P7B_BLOB = 12
    SSH_PUBLIC_KEY_FILE = 13
    PPK_FILE = 14
    PPK_BLOB = 15
    XML_FILE = 16
    XML_BLOB = 17
    JWK_FILE = 18
    JWK_BLOB = 19
    BCFKS_FILE = 21
    BCFKS_BLOB = 22
    PKCS11 = 23
    AUTO = 99


FILE_TYPES = {
    CertStoreType.PFX_FILE,
    CertStoreType.PEM_KEY_FILE,
    CertStoreType.PUBLIC_KEY_FILE,
    CertStoreType.P7B_FILE,
}
UNSUPPORTED = {
    CertStoreType.USER: "Windows certificate stores exist only on Windows",
    CertStoreType.MACHINE: "Windows certificate stores exist only on Windows",
    CertStoreType.JKS_FILE: "Java key stores exist only in the Java edition",
    CertStoreType.JKS_BLOB: "Java key stores exist only in the Java edition",
    CertStoreType.BCFKS_FILE: "Bouncy Castle key stores exist only in Java and .NET",
    CertStoreType.BCFKS_BLOB: "Bouncy Castle key stores exist only in Java and .NET",
    CertStoreType.PKCS11: "PKCS#11 security keys are not supported",
    CertStoreType.SSH_PUBLIC_KEY_BLOB: "SSH keys are not X.509 certificates",
    CertStoreType.SSH_PUBLIC_KEY_FILE: "SSH keys are not X.509 certificates",
    CertStoreType.PPK_FILE: "PuTTY keys are not X.509 certificates",
    CertStoreType.PPK_BLOB: "PuTTY keys are not X.509 certificates",
    CertStoreType.XML_FILE: "XML certificate stores are not supported",
    CertStoreType.XML_BLOB: "XML certificate stores are not supported",
    CertStoreType.JWK_FILE: "JSON Web Keys are not X.509 certificates",
    CertStoreType.JWK_BLOB: "JSON Web Keys are not X.509 certificates",
}

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)
PrivateKey = Any  # any of cryptography's private key types


def same_key(key: PrivateKey, certificate: x509.Certificate) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)
    )


def load_pem(
    data: bytes, password: bytes | None, where: str
) -> tuple[list[x509.Certificate], list[PrivateKey]]:
    certificates: list[x509.Certificate] = []
    keys: list[PrivateKey] = []
    for number, match in enumerate(PEM_BLOCK.finditer(data), 1):
        label = match.group(1)
        block = match.group(0)
        if label == b"TRUSTED CERTIFICATE":
            # OpenSSL's certificate + trust settings: dropping the settings
            # silently would change what the certificate means.
            raise TCPServerError(
                errors.CANNOT_OPEN_CERT_STORE,
                f"cannot read {where}: PEM block {number} is a TRUSTED CERTIFICATE "
                "(OpenSSL's certificate with trust settings), not a plain certificate; "
                "convert it with 'openssl x509 -in FILE -out plain.pem'",
            )
        if label in (b"CERTIFICATE", b"X509 CERTIFICATE"):
            try:
                certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                raise bad_block(where, number, label, block, exc) from None
        elif label.endswith(b"PRIVATE KEY"):
            keys.append(load_pem_key(block, password, where))
        elif label == b"PKCS7":
            try:
                certificates.extend(pkcs7.load_pem_pkcs7_certificates(block))
            except ValueError as exc:
                raise bad_block(where, number, label, block, exc) from None
    return certificates, keys


def bad_block(
    where: str, number: int, label: bytes, block: bytes, exc: Exception
) -> TCPServerError:
    """271 for a PEM block that does not decode: which block, how it starts, and why."""
    body = block.split(b"-----")[2].strip()[:24]  # after "-----BEGIN <label>-----"
    reason = str(exc)
    reason = reason if len(reason) <= 80 else reason[:77] + "..."
    return TCPServerError(
        errors.CANNOT_OPEN_CERT_STORE,
        f"cannot read {where}: PEM block {number} ({label.decode('ascii')}, "
        f"starting {body.decode('ascii', 'replace')!r}) is corrupt: {reason}",
    )


def load_pem_key(block: bytes, password: bytes | None, where: str) -> PrivateKey:
    encrypted = block.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block
    try:
        try:
            return serialization.load_pem_private_key(block, password)
        except TypeError:
            if password is None:
                raise TCPServerError(
                    errors.CANNOT_OPEN_CERT_STORE,
                    f"the private key in {where} is encrypted: give its password as store_password",
                ) from None
            # the key is not encrypted: the password is simply not needed
            return serialization.load_pem_private_key(block, None)
    except ValueError as exc:
        reason = "wrong password" if password and encrypted else f"unreadable ({exc})"
        raise TCPServerError(
            errors.CANNOT_OPEN_CERT_STORE,
            f"cannot load the private key in {where}: {reason}",
        ) from None


def load_der(
    data: bytes, password: bytes | None, store_type: CertStoreType, where: str
) -> tuple[list[x509.Certificate], list[PrivateKey]]:
    """PKCS#12, PKCS#7 or a single DER certificate (AUTO tries each)."""
    if store_type in (CertStoreType.PFX_FILE, CertStoreType.PFX_BLOB, CertStoreType.AUTO):
        try:
            key, certificate, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            if store_type is not CertStoreType.AUTO:
                raise TCPServerError(
                    errors.CANNOT_OPEN_CERT_STORE,
                    f"cannot open PFX store {where}: wrong password or not PKCS#12 data",
                ) from None
        else:
            certificates = ([certificate] if certificate else []) + list(extra)
            return certificates, [key] if key is not None else []
    if store_type in (CertStoreType.P7B_FILE, CertStoreType.P7B_BLOB, CertStoreType.AUTO):
        try:
            return list(pkcs7.load_der_pkcs7_certificates(data)), []
        except ValueError:
            if store_type is not CertStoreType.AUTO:
                raise TCPServerError(
                    errors.CANNOT_OPEN_CERT_STORE, f"cannot read PKCS#7 store {where}"
                ) from None
    try:
        return [x509.load_der_x509_certificate(data)], []
    except ValueError:
        raise TCPServerError(
            errors.CANNOT_OPEN_CERT_STORE,
            f"cannot read {where}: not PEM, PKCS#12, PKCS#7 or a DER certificate",
        ) from None


BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]*")


def looks_like_a_path(text: str) -> bool:
    """
    Whether AUTO's text store is a file name (one that does not exist) rather
    than data: one line, neither PEM nor Base64 nor binary.
    """
    return (
        bool(text.strip())
        and "\n" not in text
        and "\0" not in text
        and "-----BEGIN" not in text
        and not BASE64_TEXT.fullmatch(text)
    )


def load_pem_certificates(text: str | bytes, what: str) -> list[x509.Certificate]:
    """Certificates from a PEM text (the SSL*CACerts settings)."""
    data = text.encode("latin-1") if isinstance(text, str) else text
    try:
        found = [
            x509.load_pem_x509_certificate(m.group(0))
            for m in PEM_BLOCK.finditer(data)
            if m.group(1) == b"CERTIFICATE"
        ]
    except ValueError as exc:
        raise TCPServerError(errors.INVALID_ARGUMENT, f"{what}: bad certificate ({exc})") from None
    if data.strip() and not found:
        raise TCPServerError(
            errors.INVALID_ARGUMENT, f"{what}: no PEM certificate in {data[:40]!r}"
        )
    return found


KEY_STORE_TYPES = frozenset(
    {
        CertStoreType.PEM_KEY_FILE,
        CertStoreType.PEM_KEY_BLOB,
        CertStoreType.PFX_FILE,
        CertStoreType.PFX_BLOB,
    }
)
"""Store types that must hold the selected certificate's private key (272 otherwise)."""


def check_store_type(store_type: CertStoreType | int) -> CertStoreType:
    """
    ``store_type`` as a :class:`CertStoreType`.

    :raises TCPServerError: 10022 for a number that is no store type; 10045
        for Windows, Java and other store types that do not exist here.
    """
    try:
        checked = CertStoreType(store_type)
    except ValueError:
        raise TCPServerError(
            errors.INVALID_ARGUMENT, f"unknown certificate store type {store_type!r}"
        ) from None
    if checked in UNSUPPORTED:
        raise TCPServerError(
            errors.NOT_SUPPORTED,
            f"certificate store type {checked.name} ({int(checked)}) is "
            f"not supported on this platform: {UNSUPPORTED[checked]}",
        )
    return checked


def store_path(store_type: CertStoreType, store: object) -> str | None:
    """The file to read for ``store``, or None when ``store`` is the data itself."""
    if store_type in FILE_TYPES:
        if isinstance(store, str | bytes | os.PathLike):
            return os.fsdecode(store)
        return None  # refused by read_store
    if store_type is not CertStoreType.AUTO:
        return None
    if isinstance(store, os.PathLike):
        return os.fsdecode(store)
    if isinstance(store, str) and (os.path.exists(store) or looks_like_a_path(store)):
        return store
    return None


def read_store(store_type: CertStoreType, store: object) -> tuple[bytes, str]:
    """
    The store's bytes and how to name it in a message.

    :raises TCPServerError: 271 when a file cannot be read; 10022 for a
        store that is neither a file name nor data.
    """
    path = store_path(store_type, store)
    if path is not None:
        try:
            with open(path, "rb") as handle:
                return handle.read(), repr(path)
        except OSError as exc:
            raise TCPServerError(
                errors.CANNOT_OPEN_CERT_STORE,
                f"cannot open certificate store {path!r}: {exc.strerror or exc}",
            ) from None
    if isinstance(store, str):
        return store.encode("latin-1", "replace"), "the certificate blob"
    if isinstance(store, bytes | bytearray | memoryview):
        return bytes(store), "the certificate blob"
    raise TCPServerError(
        errors.INVALID_ARGUMENT, f"store must be a file name or bytes, not {store!r:.40}"
    )


def parse_store(
    data: bytes,
    store_type: CertStoreType,
    store_password: str,
    key_password: str,
    where: str,
) -> tuple[list[x509.Certificate], list[PrivateKey]]:
    """
    The certificates and private keys in ``data``: PEM, else PKCS#12,
    PKCS#7 or DER (as ``store_type`` allows), also as Base64 text.

    :raises TCPServerError: 271 for data none of these can read, or a
        wrong password.
    """
    password = key_password.encode() if key_password else None
    store_secret = store_password.encode() if store_password else None
    if b"-----BEGIN" in data:
        return load_pem(data, password, where)
    try:
        return load_der(data, store_secret, store_type, where)
    except TCPServerError as original:
        # Blobs may be Base64 text of the binary form.
        try:
            decoded = base64.b64decode(data, validate=True)
        except ValueError:
            raise original from None
        if not decoded:
            raise
        return load_der(decoded, store_secret, store_type, where)


_NAME_LABELS = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.DOMAIN_COMPONENT: "DC",
}


def format_name(name: x509.Name) -> str:
    """A distinguished name the way the manual writes it: ``CN=host, O=Org, C=US``."""
    parts = []
    for rdn in reversed(name.rdns):
        for attribute in rdn:
            label = _NAME_LABELS.get(attribute.oid, attribute.oid.dotted_string)
            value = attribute.value if isinstance(attribute.value, str) else repr(attribute.value)
            if any(c in value for c in ',+"=<>#;'):
                value = '"' + value.replace('"', '\\"') + '"'
            parts.append(f"{label}={value}")
    return ", ".join(parts)


def one_certificate(value: str | bytes) -> x509.Certificate:
    """The one certificate in ``value`` (PEM, DER or Base64), for ``encoded``."""
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    certificates, _ = parse_store(
        bytes(value), CertStoreType.PUBLIC_KEY_BLOB, "", "", "the encoded certificate"
    )
    if len(certificates) != 1:
        raise TCPServerError(
            errors.CANNOT_OPEN_CERT_STORE,
            f"the encoded certificate must hold one certificate, not {len(certificates)}",
        )
    return certificates[0]


CONFIGURATION_NAMES = ("thumbprint", "persistpfxkey", "useinternalsecurityapi")


def subject_from_configuration(configuration: str, subject: str) -> str:
    """
    ``subject``, or the ``Thumbprint`` of the manual's configuration string
    (newline-separated ``Name=Value``; the Windows-only names are accepted).

    :raises TCPServerError: 10022 for a line that is no known ``Name=Value``.
    """
    for line in configuration.splitlines():
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals or name.strip().lower() not in CONFIGURATION_NAMES:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"certificate configuration line {line!r}: expected one of "
                "Thumbprint=, PersistPFXKey=, UseInternalSecurityAPI=",
            )
        if name.strip().lower() == "thumbprint":
            subject = f"Thumbprint={value.strip()}"
    return subject


def normalize_dn(text: str) -> str:
    return re.sub(r"\s*,\s*", ",", re.sub(r"\s*=\s*", "=", text.strip())).lower()
