"""Certificates: the manual's Certificate type.

:class:`Certificate` holds one certificate (and, for a server, its private
key) chosen from a store - PEM, PFX (PKCS#12), PKCS#7 or DER, read by
:mod:`tcpserver._certstores` - by subject, thumbprint or encoded form, and
exposes the manual's fields.  A store that cannot be used fails at
construction - 271 (cannot open: missing file, wrong password, bad data) or
272 (no matching certificate, or no private key in a key store) - never at
the first handshake.  No sockets, no OpenSSL contexts here.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from tcpserver import errors
from tcpserver._certstores import (
    KEY_STORE_TYPES,
    CertStoreType,
    PrivateKey,
    check_store_type,
    format_name,
    load_pem_certificates,
    normalize_dn,
    one_certificate,
    parse_store,
    read_store,
    same_key,
    subject_from_configuration,
)
from tcpserver.errors import TCPServerError

__all__ = [
    "CertStoreType",
    "Certificate",
    "format_name",
    "load_pem_certificates",
]

_KEY_USAGE_FLAGS = (
    ("digital_signature", 0x80, "Digital Signature"),
    ("content_commitment", 0x40, "Non-Repudiation"),
    ("key_encipherment", 0x20, "Key Encipherment"),
    ("data_encipherment", 0x10, "Data Encipherment"),
    ("key_agreement", 0x08, "Key Agreement"),
    ("key_cert_sign", 0x04, "Certificate Signing"),
    ("crl_sign", 0x02, "CRL Signing"),
)


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


class Certificate:
    """
    A certificate (and, for a server, its private key) from a store.

    The manual's constructors, in Python:

    - ``Certificate()``: the empty certificate (every field ``""``);
    - ``Certificate(certificateFile)``: :meth:`Certificate.from_file`
      (``key_file=`` adds its private key);
    - ``Certificate(encoded)``: :meth:`Certificate.from_encoded`;
    - ``Certificate(storeType, store, storePassword, subject[,
      configurationString])``: ``Certificate(store_type, store,
      store_password, subject, configuration=...)``;
    - ``Certificate(storeType, store, storePassword, encoded)``:
      ``Certificate(store_type, store, store_password, encoded=...)``.

    ``store`` is a file name or the data itself (bytes) as ``store_type``
    says, so the manual's ``String store`` and ``byte[] store`` forms are the
    same call.

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
    :param encoded: instead of ``subject``: this certificate (PEM text, DER
        or Base64), whose private key is looked for in the store.
    :param configuration: the manual's configuration string, newline-separated
        ``Name=Value`` pairs: ``Thumbprint`` selects like ``subject``
        ``"Thumbprint=..."``; ``PersistPFXKey`` and ``UseInternalSecurityAPI``
        are Windows CryptoAPI choices, accepted and without effect here (keys
        stay in this process's memory; the security API is always OpenSSL).
    :raises TCPServerError: 271 if the store cannot be read (missing file,
        wrong password, bad data); 272 if no certificate matches ``subject``
        (or ``encoded``), or a key store holds no private key for it; 10045
        for Windows, Java and other store types that do not exist here;
        10022 for arguments that make no constructor.
    """

    def __init__(
        self,
        store_type: CertStoreType | int | None = None,
        store: str | bytes | os.PathLike[str] | None = None,
        store_password: str = "",
        subject: str = "*",
        key_password: str | None = None,
        *,
        encoded: str | bytes | None = None,
        configuration: str = "",
    ) -> None:
        self.store_password = store_password
        self.key_password = store_password if key_password is None else key_password
        self._x509: x509.Certificate | None = None
        self._key: PrivateKey | None = None
        self._chain: list[x509.Certificate] = []
        self._certificates: list[x509.Certificate] = []
        self._keys: list[PrivateKey] = []
        self._subject = ""
        self.store: str | bytes | os.PathLike[str] = ""
        self.store_type = CertStoreType.USER  # (the manual's default, 0)
        if store_type is None and store is None and encoded is None and not configuration:
            return  # the empty certificate
        if not isinstance(store_type, int) or store is None:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"Certificate({store_type!r:.40}, {store!r:.40}): give a store type and a "
                "store; for a certificate file write Certificate.from_file(path), for "
                "encoded data Certificate.from_encoded(data)",
            )
        self.store_type = check_store_type(store_type)
        self.store = store
        subject = subject_from_configuration(configuration, subject)
        data, where = read_store(self.store_type, store)
        self._certificates, self._keys = parse_store(
            data, self.store_type, self.store_password, self.key_password, where
        )
        if not self._certificates:
            raise TCPServerError(errors.CANNOT_FIND_CERTIFICATE, f"no certificate in {where}")
        if encoded is not None:
            if subject != "*":
                raise TCPServerError(
                    errors.INVALID_ARGUMENT,
                    f"give subject ({subject!r}) or encoded, not both",
                )
            certificate = one_certificate(encoded)
            self._use(certificate, self._key_for(certificate))
        else:
            found = self._find(subject)
            if found is None:
                subjects = "; ".join(format_name(c.subject) for c in self._certificates)
                raise TCPServerError(
                    errors.CANNOT_FIND_CERTIFICATE,
                    f"no certificate matching subject {subject!r} in {where} "
                    f"(it holds: {subjects})",
                )
            self._use(*found)
        if self.store_type in KEY_STORE_TYPES and self._key is None:
            raise TCPServerError(
                errors.CANNOT_FIND_CERTIFICATE,
                f"{where} holds no private key for {self._subject!r}",
            )

    # -- the manual's other constructors --------------------------------------------

    @classmethod
    def from_encoded(cls, encoded: str | bytes) -> Certificate:
        """
        The manual's ``Certificate(encoded)``: a certificate from its PEM
        text, DER bytes or Base64 text (a public certificate; a private key
        in the same PEM text is kept too).

        :raises TCPServerError: 271 for data that is no certificate.
        """
        return cls(CertStoreType.PUBLIC_KEY_BLOB, encoded)

    @classmethod
    def from_file(
        cls,
        certificate_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str] | None = None,
        password: str = "",
    ) -> Certificate:
        """
        The manual's ``Certificate(certificateFile)``: the certificate in a
        PEM or DER file, with the private key in ``key_file`` (PEM; the key
        may also be in the certificate file itself) - the usual
        ``cert.pem`` + ``key.pem`` pair of a server.

        :param password: the private key's password, if it is encrypted.
        :raises TCPServerError: 271 if a file cannot be read; 272 if
            ``key_file`` holds no key for the certificate.
        """
        certificate = cls(CertStoreType.PUBLIC_KEY_FILE, certificate_file, password)
        if key_file is not None:
            certificate.load_key_file(key_file, password)
        return certificate

    def load_key_file(self, key_file: str | os.PathLike[str], password: str = "") -> None:
        """
        Take this certificate's private key from a PEM file (what
        ``from_file(..., key_file=...)`` does); the store type becomes
        ``PEM_KEY_FILE``.

        :raises TCPServerError: 271 if the file cannot be read or decrypted;
            272 if it holds no key for this certificate.
        """
        data, where = read_store(CertStoreType.PEM_KEY_FILE, key_file)
        _, keys = parse_store(data, CertStoreType.PEM_KEY_FILE, password, password, where)
        self._keys += keys
        key = None if self._x509 is None else self._key_for(self._x509)
        if key is None:
            raise TCPServerError(
                errors.CANNOT_FIND_CERTIFICATE,
                f"{where} holds no private key for {self._subject!r}",
            )
        self._use(self._x509, key)
        self.store_type = CertStoreType.PEM_KEY_FILE

    # -- selecting ----------------------------------------------------------------------

    def _use(self, certificate: x509.Certificate | None, key: PrivateKey | None) -> None:
        self._x509, self._key = certificate, key
        self._chain = self._build_chain() if certificate is not None else []
        self._subject = format_name(certificate.subject) if certificate is not None else ""
        self.__dict__.pop("content_key", None)

    def _key_for(self, certificate: x509.Certificate) -> PrivateKey | None:
        return next((k for k in self._keys if same_key(k, certificate)), None)

    def _find(self, subject: str) -> tuple[x509.Certificate, PrivateKey | None] | None:
        """The manual's search: ``*``, exact subject, then a part of one, or a thumbprint."""
        certificates = self._certificates
        wanted = subject.strip()
        if wanted in ("", "*"):
            for certificate in certificates:
                key = self._key_for(certificate)
                if key is not None:
                    return certificate, key
            return (certificates[0], None) if certificates else None
        if wanted.lower().startswith("thumbprint="):
            digest = wanted.split("=", 1)[1].replace(":", "").replace(" ", "").lower()
            for certificate in certificates:
                der = certificate.public_bytes(serialization.Encoding.DER)
                if digest in (
                    hashlib.sha1(der).hexdigest(),  # noqa: S324 - a thumbprint, not security
                    hashlib.sha256(der).hexdigest(),
                    hashlib.md5(der).hexdigest(),  # noqa: S324 - a thumbprint
                ):
                    return certificate, self._key_for(certificate)
            return None
        normalized = normalize_dn(wanted)
        names = [(c, normalize_dn(format_name(c.subject))) for c in certificates]
        for certificate, name in names:
            if name == normalized:
                return certificate, self._key_for(certificate)
        for certificate, name in names:
            if normalized in name:
                return certificate, self._key_for(certificate)
        return None

    def _build_chain(self) -> list[x509.Certificate]:
        """The store's other certificates that certify this one, leaf-side first."""
        chain: list[x509.Certificate] = []
        current = self._x509
        others = [c for c in self._certificates if c is not self._x509]
        while current is not None and current.issuer != current.subject:
            issuer = next(
                (c for c in others if c.subject == current.issuer and c not in chain), None
            )
            if issuer is None:
                break
            chain.append(issuer)
            current = issuer
        return chain

    @property
    def subject(self) -> str:
        """
        The selected certificate's full subject (``""`` when none is).

        Setting it searches the store as the manual says: ``"*"`` takes the
        first certificate with a private key, then an exact subject, then a
        part of one, or ``"Thumbprint=<hex>"``; with no match the subject
        becomes ``""`` and no certificate is selected (every field ``""``).
        """
        return self._subject

    @subject.setter
    def subject(self, value: str) -> None:
        self._use(*(self._find(value) or (None, None)))

    @property
    def encoded(self) -> str:
        """
        The certificate, PEM (``""`` when none is selected).

        Setting it (PEM, DER or Base64) selects that certificate and looks
        for its private key in the store, as the manual says: with the key
        found, ``subject`` is the certificate's full subject, without it
        ``""`` (the certificate's own fields are still there).
        """
        if self._x509 is None:
            return ""
        return self._x509.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @encoded.setter
    def encoded(self, value: str | bytes) -> None:
        certificate = one_certificate(value)
        self._use(certificate, self._key_for(certificate))
        if self._key is None:
            self._subject = ""

    @property
    def encoded_b(self) -> bytes:
        """The certificate, DER (``b""`` when none is selected); settable like ``encoded``."""
        if self._x509 is None:
            return b""
        return self._x509.public_bytes(serialization.Encoding.DER)

    @encoded_b.setter
    def encoded_b(self, value: bytes) -> None:
        self.encoded = value

    def credentials(self) -> tuple[PrivateKey, x509.Certificate, list[x509.Certificate]]:
        """
        What a TLS server needs: the private key, the certificate and its
        chain from the store (:mod:`cryptography` objects).

        :raises TCPServerError: 273 when there is no certificate or no key.
        """
        if self._x509 is None or self._key is None:
            raise TCPServerError(
                errors.CANNOT_ACQUIRE_CREDENTIALS,
                f"certificate {self._subject!r} has no private key: a server needs one",
            )
        return self._key, self._x509, list(self._chain)

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
        for certificate in (*([self._x509] if self._x509 else []), *self._chain):
            der = certificate.public_bytes(serialization.Encoding.DER)
            digest.update(len(der).to_bytes(4, "big") + der)
        return digest.digest()

    # -- the manual's read-only fields -------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer's distinguished name."""
        if self._x509 is None:
            return ""
        return format_name(self._x509.issuer)

    @property
    def serial_number(self) -> str:
        """The serial number, hexadecimal, two digits per byte."""
        if self._x509 is None:
            return ""
        text = f"{self._x509.serial_number:X}"
        return text if len(text) % 2 == 0 else "0" + text

    @property
    def effective_date(self) -> str:
        """Start of validity, local time (``23-Jan-2000 15:00:00``)."""
        if self._x509 is None:
            return ""
        return self._x509.not_valid_before_utc.astimezone().strftime("%d-%b-%Y %H:%M:%S")

    @property
    def expiration_date(self) -> str:
        """End of validity, local time (``23-Jan-2001 15:00:00``)."""
        if self._x509 is None:
            return ""
        return self._x509.not_valid_after_utc.astimezone().strftime("%d-%b-%Y %H:%M:%S")

    @property
    def fingerprint(self) -> str:
        """MD5 of the certificate, colon-separated hex."""
        if self._x509 is None:
            return ""
        return _colon_hex(hashlib.md5(self.encoded_b).digest())  # noqa: S324 - identification

    @property
    def fingerprint_sha1(self) -> str:
        """SHA-1 of the certificate, colon-separated hex."""
        if self._x509 is None:
            return ""
        return _colon_hex(hashlib.sha1(self.encoded_b).digest())  # noqa: S324 - identification

    @property
    def fingerprint_sha256(self) -> str:
        """SHA-256 of the certificate, colon-separated hex."""
        if self._x509 is None:
            return ""
        return _colon_hex(hashlib.sha256(self.encoded_b).digest())

    @property
    def thumbprint_md5(self) -> str:
        """MD5 of the certificate, hex."""
        if self._x509 is None:
            return ""
        return hashlib.md5(self.encoded_b).hexdigest().upper()  # noqa: S324 - identification

    @property
    def thumbprint_sha1(self) -> str:
        """SHA-1 of the certificate, hex."""
        if self._x509 is None:
            return ""
        return hashlib.sha1(self.encoded_b).hexdigest().upper()  # noqa: S324 - identification

    @property
    def thumbprint_sha256(self) -> str:
        """SHA-256 of the certificate, hex."""
        if self._x509 is None:
            return ""
        return hashlib.sha256(self.encoded_b).hexdigest().upper()

    @property
    def public_key(self) -> str:
        """The public key, PEM (SubjectPublicKeyInfo)."""
        if self._x509 is None:
            return ""
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
        if self._x509 is None:
            return ""
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
        if self._x509 is None:
            return 0
        key = self._x509.public_key()
        if isinstance(key, ed25519.Ed25519PublicKey):
            return 256
        if isinstance(key, ed448.Ed448PublicKey):
            return 456
        return int(getattr(key, "key_size", 0))

    @property
    def signature_algorithm(self) -> str:
        """The signature algorithm's name (``sha256WithRSAEncryption``)."""
        if self._x509 is None:
            return ""
        oid = self._x509.signature_algorithm_oid
        return getattr(oid, "_name", None) or oid.dotted_string

    @property
    def subject_alt_names(self) -> str:
        """Comma-separated subject alternative names."""
        if self._x509 is None:
            return ""
        try:
            names = self._x509.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ""
        return ", ".join(str(getattr(name, "value", name)) for name in names.value)

    @property
    def extended_key_usage(self) -> str:
        """Comma-separated extended key usage OIDs."""
        if self._x509 is None:
            return ""
        try:
            usages = self._x509.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            return ""
        return ",".join(oid.dotted_string for oid in usages.value)

    @property
    def usage_flags(self) -> int:
        """The manual's key-usage bit flags (0x80 Digital Signature ...)."""
        if self._x509 is None:
            return 0
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
        if self._x509 is None:
            return ""
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
        if self._x509 is None:
            raise _empty()
        return self._x509.not_valid_after_utc

    def to_cryptography(self) -> x509.Certificate:
        """The certificate as a :mod:`cryptography` object."""
        if self._x509 is None:
            raise _empty()
        return self._x509


def _wrap(certificate: x509.Certificate) -> Certificate:
    """A Certificate around an already-loaded cryptography certificate."""
    return Certificate.from_encoded(certificate.public_bytes(serialization.Encoding.PEM))


def _empty() -> TCPServerError:
    return TCPServerError(errors.INVALID_ARGUMENT, "the certificate is empty (none is selected)")
