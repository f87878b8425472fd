"""Certificates: the manual's Certificate type and its store types.

:class:`Certificate` loads PEM, PFX (PKCS#12), PKCS#7 and DER stores with
:mod:`cryptography`, selects one certificate by subject or thumbprint and
exposes the manual's read-only fields.  A store that cannot be used fails at
construction - 271 (cannot open: missing file, wrong password, bad data) or
272 (no matching certificate, or no private key in a key store) - never at
the first handshake.  No sockets, no OpenSSL contexts here.
"""

from __future__ import annotations

import base64
import datetime
import enum
import functools
import hashlib
import os
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from tcpserver import errors
from tcpserver.errors import TCPServerError

__all__ = [
    "CertStoreType",
    "Certificate",
    "format_name",
    "load_pem_certificates",
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


_FILE_TYPES = {
    CertStoreType.PFX_FILE,
    CertStoreType.PEM_KEY_FILE,
    CertStoreType.PUBLIC_KEY_FILE,
    CertStoreType.P7B_FILE,
}
_UNSUPPORTED = {
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

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)
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
_KEY_USAGE_FLAGS = (
    ("digital_signature", 0x80, "Digital Signature"),
    ("content_commitment", 0x40, "Non-Repudiation"),
    ("key_encipherment", 0x20, "Key Encipherment"),
    ("data_encipherment", 0x10, "Data Encipherment"),
    ("key_agreement", 0x08, "Key Agreement"),
    ("key_cert_sign", 0x04, "Certificate Signing"),
    ("crl_sign", 0x02, "CRL Signing"),
)

PrivateKey = Any  # any of cryptography's private key types


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


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def _same_key(key: PrivateKey, certificate: x509.Certificate) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)
    )


def _load_pem(
    data: bytes, password: bytes | None, where: str
) -> tuple[list[x509.Certificate], list[PrivateKey]]:
    certificates: list[x509.Certificate] = []
    keys: list[PrivateKey] = []
    for number, match in enumerate(_PEM_BLOCK.finditer(data), 1):
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
                raise _bad_block(where, number, label, block, exc) from None
        elif label.endswith(b"PRIVATE KEY"):
            keys.append(_load_pem_key(block, password, where))
        elif label == b"PKCS7":
            try:
                certificates.extend(pkcs7.load_pem_pkcs7_certificates(block))
            except ValueError as exc:
                raise _bad_block(where, number, label, block, exc) from None
    return certificates, keys


def _bad_block(
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


def _load_pem_key(block: bytes, password: bytes | None, where: str) -> PrivateKey:
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


def _load_der(
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


class Certificate:
    """
    A certificate (and, for a server, its private key) from a store.

    :param store_type: a :class:`CertStoreType` (or its number); ``AUTO``
        detects PEM, PFX/PKCS#12, PKCS#7 and DER.
    :param store: a file name (``str`` or path object) for the ``*_FILE``
        types, the data (bytes, or Base64 text) for the ``*_BLOB`` types;
        with ``AUTO`` a path object or an existing file name is read, bytes,
        PEM and Base64 text are taken as data, and any other one-line text
        is a file name that does not exist (271).
    :param store_password: the store's password (PFX) or the private key's
        (PEM); never logged or shown.
    :param subject: ``"*"`` for the first certificate that has its private
        key (or the first certificate), a distinguished name or part of one
        (``"CN=www.example.com"``), or ``"Thumbprint=<SHA-1/SHA-256/MD5 hex>"``.
    :param key_password: the private key's password when it differs from
        ``store_password`` (the manual's KeyPassword).
    :raises TCPServerError: 271 if the store cannot be read (missing file,
        wrong password, bad data); 272 if no certificate matches ``subject``,
        or a key store holds no private key for it; 10045 for Windows, Java
        and other store types that do not exist here.
    """

    def __init__(
        self,
        store_type: CertStoreType | int,
        store: str | bytes | os.PathLike[str],
        store_password: str = "",
        subject: str = "*",
        key_password: str | None = None,
    ) -> None:
        try:
            self.store_type = CertStoreType(store_type)
        except ValueError:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"unknown certificate store type {store_type!r}"
            ) from None
        if self.store_type in _UNSUPPORTED:
            raise TCPServerError(
                errors.NOT_SUPPORTED,
                f"certificate store type {self.store_type.name} ({int(self.store_type)}) is "
                f"not supported on this platform: {_UNSUPPORTED[self.store_type]}",
            )
        self.store = store
        self.store_password = store_password
        self.key_password = store_password if key_password is None else key_password
        data, where = self._read_store()
        certificates, keys = self._parse(data, where)
        if not certificates:
            raise TCPServerError(errors.CANNOT_FIND_CERTIFICATE, f"no certificate in {where}")
        self._x509, self._key = self._select(certificates, keys, subject, where)
        wants_key = self.store_type in (
            CertStoreType.PEM_KEY_FILE,
            CertStoreType.PEM_KEY_BLOB,
            CertStoreType.PFX_FILE,
            CertStoreType.PFX_BLOB,
        )
        if wants_key and self._key is None:
            raise TCPServerError(
                errors.CANNOT_FIND_CERTIFICATE,
                f"{where} holds no private key for {format_name(self._x509.subject)!r}",
            )
        self._chain = self._build_chain(certificates)
        self.subject = format_name(self._x509.subject)

    # -- loading --------------------------------------------------------------------

    def _read_store(self) -> tuple[bytes, str]:
        store = self.store
        path = self._store_path()
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

    def _store_path(self) -> str | None:
        """The file to read, or None when ``store`` is the data itself."""
        store = self.store
        if self.store_type in _FILE_TYPES:
            if isinstance(store, str | bytes | os.PathLike):
                return os.fsdecode(store)
            return None  # refused by _read_store
        if self.store_type is not CertStoreType.AUTO:
            return None
        if isinstance(store, os.PathLike):
            return os.fsdecode(store)
        if isinstance(store, str) and (os.path.exists(store) or _looks_like_a_path(store)):
            return store
        return None

    def _parse(self, data: bytes, where: str) -> tuple[list[x509.Certificate], list[PrivateKey]]:
        password = self.key_password.encode() if self.key_password else None
        store_password = self.store_password.encode() if self.store_password else None
        if b"-----BEGIN" in data:
            return _load_pem(data, password, where)
        try:
            return _load_der(data, store_password, self.store_type, where)
        except TCPServerError as original:
            # Blobs may be Base64 text of the binary form.
            try:
                decoded = base64.b64decode(data, validate=True)
            except ValueError:
                raise original from None
            if not decoded:
                raise
            return _load_der(decoded, store_password, self.store_type, where)

    def _select(
        self,
        certificates: list[x509.Certificate],
        keys: list[PrivateKey],
        subject: str,
        where: str,
    ) -> tuple[x509.Certificate, PrivateKey | None]:
        def key_for(certificate: x509.Certificate) -> PrivateKey | None:
            return next((k for k in keys if _same_key(k, certificate)), None)

        if subject.strip() in ("", "*"):
            for certificate in certificates:
                key = key_for(certificate)
                if key is not None:
                    return certificate, key
            return certificates[0], None
        wanted = subject.strip()
        if wanted.lower().startswith("thumbprint="):
            digest = wanted.split("=", 1)[1].replace(":", "").replace(" ", "").lower()
            for certificate in certificates:
                der = certificate.public_bytes(serialization.Encoding.DER)
                if digest in (
                    hashlib.sha1(der).hexdigest(),  # noqa: S324 - a thumbprint, not security
                    hashlib.sha256(der).hexdigest(),
                    hashlib.md5(der).hexdigest(),  # noqa: S324 - a thumbprint
                ):
                    return certificate, key_for(certificate)
        else:
            normalized = _normalize_dn(wanted)
            names = [(c, _normalize_dn(format_name(c.subject))) for c in certificates]
            for certificate, name in names:
                if name == normalized:
                    return certificate, key_for(certificate)
            for certificate, name in names:
                if normalized in name:
                    return certificate, key_for(certificate)
        subjects = "; ".join(format_name(c.subject) for c in certificates)
        raise TCPServerError(
            errors.CANNOT_FIND_CERTIFICATE,
            f"no certificate matching subject {subject!r} in {where} (it holds: {subjects})",
        )

    def _build_chain(self, certificates: list[x509.Certificate]) -> list[x509.Certificate]:
        """The store's other certificates that certify this one, leaf-side first."""
        chain: list[x509.Certificate] = []
        current = self._x509
        others = [c for c in certificates if c is not self._x509]
        while True:
            if current.issuer == current.subject:
                break
            issuer = next(
                (c for c in others if c.subject == current.issuer and c not in chain), None
            )
            if issuer is None:
                break
            chain.append(issuer)
            current = issuer
        return chain

    def __repr__(self) -> str:
        return f"<Certificate {self.store_type.name} subject={self.subject!r}>"

    @functools.cached_property
    def content_key(self) -> bytes:
        """
        What an OpenSSL context built for this certificate depends on - the
        certificate, its chain and its private key - as a SHA-256 digest:
        equal for two Certificates loaded from the same store (TLS contexts
        are cached by it; a SIGHUP reload compares certificates by it).
        """
        digest = hashlib.sha256()
        if self._key is None:
            digest.update(b"\0")
        else:
            key = self._key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            digest.update(b"\1" + hashlib.sha256(key).digest())
        for certificate in (self._x509, *self._chain):
            der = certificate.public_bytes(serialization.Encoding.DER)
            digest.update(len(der).to_bytes(4, "big") + der)
        return digest.digest()

    # -- the manual's read-only fields -------------------------------------------------

    @property
    def encoded_b(self) -> bytes:
        """The certificate, DER."""
        return self._x509.public_bytes(serialization.Encoding.DER)

    @property
    def encoded(self) -> str:
        """The certificate, PEM."""
        return self._x509.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def issuer(self) -> str:
        """The issuer's distinguished name."""
        return format_name(self._x509.issuer)

    @property
    def serial_number(self) -> str:
        """The serial number, hexadecimal, two digits per byte."""
        text = f"{self._x509.serial_number:X}"
        return text if len(text) % 2 == 0 else "0" + text

    @property
    def effective_date(self) -> str:
        """Start of validity, local time (``23-Jan-2000 15:00:00``)."""
        return self._x509.not_valid_before_utc.astimezone().strftime("%d-%b-%Y %H:%M:%S")

    @property
    def expiration_date(self) -> str:
        """End of validity, local time (``23-Jan-2001 15:00:00``)."""
        return self._x509.not_valid_after_utc.astimezone().strftime("%d-%b-%Y %H:%M:%S")

    @property
    def fingerprint(self) -> str:
        """MD5 of the certificate, colon-separated hex."""
        return _colon_hex(hashlib.md5(self.encoded_b).digest())  # noqa: S324 - identification

    @property
    def fingerprint_sha1(self) -> str:
        """SHA-1 of the certificate, colon-separated hex."""
        return _colon_hex(hashlib.sha1(self.encoded_b).digest())  # noqa: S324 - identification

    @property
    def fingerprint_sha256(self) -> str:
        """SHA-256 of the certificate, colon-separated hex."""
        return _colon_hex(hashlib.sha256(self.encoded_b).digest())

    @property
    def thumbprint_md5(self) -> str:
        """MD5 of the certificate, hex."""
        return hashlib.md5(self.encoded_b).hexdigest().upper()  # noqa: S324 - identification

    @property
    def thumbprint_sha1(self) -> str:
        """SHA-1 of the certificate, hex."""
        return hashlib.sha1(self.encoded_b).hexdigest().upper()  # noqa: S324 - identification

    @property
    def thumbprint_sha256(self) -> str:
        """SHA-256 of the certificate, hex."""
        return hashlib.sha256(self.encoded_b).hexdigest().upper()

    @property
    def public_key(self) -> str:
        """The public key, PEM (SubjectPublicKeyInfo)."""
        return (
            self._x509.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    @property
    def public_key_algorithm(self) -> str:
        """``RSA``, ``EC``, ``DSA``, ``Ed25519`` or ``Ed448``."""
        key = self._x509.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return "RSA"
        if isinstance(key, ec.EllipticCurvePublicKey):
            return "EC"
        if isinstance(key, dsa.DSAPublicKey):
            return "DSA"
        if isinstance(key, ed25519.Ed25519PublicKey):
            return "Ed25519"
        if isinstance(key, ed448.Ed448PublicKey):
            return "Ed448"
        return type(key).__name__

    @property
    def public_key_length(self) -> int:
        """The public key's size in bits."""
        key = self._x509.public_key()
        if isinstance(key, ed25519.Ed25519PublicKey):
            return 256
        if isinstance(key, ed448.Ed448PublicKey):
            return 456
        return int(getattr(key, "key_size", 0))

    @property
    def signature_algorithm(self) -> str:
        """The signature algorithm's name (``sha256WithRSAEncryption``)."""
        oid = self._x509.signature_algorithm_oid
        return getattr(oid, "_name", None) or oid.dotted_string

    @property
    def subject_alt_names(self) -> str:
        """Comma-separated subject alternative names."""
        try:
            names = self._x509.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ""
        return ", ".join(str(getattr(name, "value", name)) for name in names.value)

    @property
    def extended_key_usage(self) -> str:
        """Comma-separated extended key usage OIDs."""
        try:
            usages = self._x509.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            return ""
        return ",".join(oid.dotted_string for oid in usages.value)

    @property
    def usage_flags(self) -> int:
        """The manual's key-usage bit flags (0x80 Digital Signature ...)."""
        try:
            usage = self._x509.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return 0
        flags = sum(bit for attr, bit, _ in _KEY_USAGE_FLAGS if getattr(usage, attr))
        if usage.key_agreement and usage.encipher_only:
            flags |= 0x01
        return flags

    @property
    def usage(self) -> str:
        """Key usage as text (``Digital Signature, Key Encipherment``)."""
        flags = self.usage_flags
        names = [text for _, bit, text in _KEY_USAGE_FLAGS if flags & bit]
        if flags & 0x01:
            names.append("Encipher Only")
        return ", ".join(names)

    @property
    def version(self) -> str:
        """``V1``, ``V2`` or ``V3``."""
        return f"V{self._x509.version.value + 1}"

    @property
    def private_key_available(self) -> bool:
        """Whether the store holds this certificate's private key."""
        return self._key is not None

    @property
    def private_key(self) -> str:
        """The private key, unencrypted PKCS#8 PEM (``""`` if not available)."""
        if self._key is None:
            return ""
        return self._key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def chain(self) -> list[Certificate]:
        """The intermediate certificates from the same store (leaf side first)."""
        return [_wrap(c) for c in self._chain]

    @property
    def not_valid_after(self) -> datetime.datetime:
        """End of validity, an aware UTC datetime."""
        return self._x509.not_valid_after_utc

    def to_cryptography(self) -> x509.Certificate:
        """The certificate as a :mod:`cryptography` object."""
        return self._x509


def _wrap(certificate: x509.Certificate) -> Certificate:
    """A Certificate around an already-loaded cryptography certificate."""
    return Certificate(
        CertStoreType.PUBLIC_KEY_BLOB, certificate.public_bytes(serialization.Encoding.PEM)
    )


_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]*")


def _looks_like_a_path(text: str) -> bool:
    """
    Whether AUTO's text store is a file name (one that does not exist) rather
    than data: one line, neither PEM nor Base64 nor binary.
    """
    return (
        bool(text.strip())
        and "\n" not in text
        and "\0" not in text
        and "-----BEGIN" not in text
        and not _BASE64_TEXT.fullmatch(text)
    )


def _normalize_dn(text: str) -> str:
    return re.sub(r"\s*,\s*", ",", re.sub(r"\s*=\s*", "=", text.strip())).lower()


def load_pem_certificates(text: str | bytes, what: str) -> list[x509.Certificate]:
    """Certificates from a PEM text (the SSL*CACerts settings)."""
    data = text.encode("latin-1") if isinstance(text, str) else text
    try:
        found = [
            x509.load_pem_x509_certificate(m.group(0))
            for m in _PEM_BLOCK.finditer(data)
            if m.group(1) == b"CERTIFICATE"
        ]
    except ValueError as exc:
        raise TCPServerError(errors.INVALID_ARGUMENT, f"{what}: bad certificate ({exc})") from None
    if data.strip() and not found:
        raise TCPServerError(
            errors.INVALID_ARGUMENT, f"{what}: no PEM certificate in {data[:40]!r}"
        )
    return found
