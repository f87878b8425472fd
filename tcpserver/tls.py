"""TLS: certificates, OpenSSL contexts, client-certificate checks, read-outs.

* :class:`Certificate` - the manual's Certificate type: loads PEM, PFX
  (PKCS#12), PKCS#7 and DER stores with :mod:`cryptography`, selects one by
  subject or thumbprint and exposes the manual's read-only fields.  A store
  that cannot be used fails at construction with 271/272.
* :class:`TLSContexts` - builds one OpenSSL context per certificate from the
  SSL settings through Twisted's ``CertificateOptions`` (TLS 1.2 limited to
  :data:`DEFAULT_TLS12_CIPHERS` unless a setting says otherwise), caches it
  (by content, the 64 most recently used), and rebuilds after a setting
  changes.
* :func:`verify_client` - checks a client's chain against SSLClientCACerts /
  OpenSSLCAFile / OpenSSLCADir, and its purpose, and says why it fails.
* :func:`negotiated` - the per-connection ``SSLNegotiated*`` read-outs.

The SSL settings' names and validators (protocol ranges, cipher-suite,
signature-algorithm and group names) live in :mod:`tcpserver._tlsnames`,
below the settings; they are re-exported here.  The per-connection TLS
engine lives in :mod:`tcpserver.protocol`; nothing here touches a socket.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from tcpserver import errors
from tcpserver._tlsnames import (
    ALERTS,
    DEFAULT_TLS12_CIPHERS,
    alert_name,
    check_cipher_list,
    check_cipher_suites,
    check_groups,
    check_protocols,
    check_sigalgs,
    cipher_bits,
    group_bits,
    iana_cipher_suite,
    openssl_groups,
    openssl_sigalgs,
    protocol_range,
    signature_algorithms,
    split_cipher_suites,
)
from tcpserver._twisted import default_minimum_tls_version
from tcpserver.certificates import (
    Certificate,
    CertStoreType,
    format_name,
    load_pem_certificates,
)
from tcpserver.errors import TCPServerError
from tcpserver.settings import SSLStartMode, lookup

if TYPE_CHECKING:
    from twisted.internet.protocol import Factory

    from tcpserver.settings import Settings

__all__ = [
    "ALERTS",
    "DEFAULT_TLS12_CIPHERS",
    "CertStoreType",
    "Certificate",
    "SSLStartMode",
    "TLSContexts",
    "check_cipher_list",
    "check_cipher_suites",
    "check_groups",
    "check_protocols",
    "check_sigalgs",
    "cipher_bits",
    "load_pem_certificates",
    "negotiated",
    "openssl_groups",
    "openssl_sigalgs",
    "protocol_range",
    "split_cipher_suites",
    "verify_client",
]

_log = Logger()


# -- signature algorithms and groups: OpenSSL calls pyOpenSSL does not wrap ----------------


def _private_binding(name: str) -> Callable[..., int] | None:
    """A function from the OpenSSL bindings pyOpenSSL uses, if this build has it."""
    try:
        from OpenSSL._util import lib  # optional and private: feature-detected
    except ImportError:  # pragma: no cover - depends on the pyOpenSSL build
        return None
    found: Callable[..., int] | None = getattr(lib, name, None)
    return found


def can_set_sigalgs() -> bool:
    """Whether this pyOpenSSL build lets tcpserver restrict signature algorithms."""
    return _private_binding("SSL_CTX_set1_sigalgs_list") is not None


def can_set_groups() -> bool:
    """Whether this pyOpenSSL build lets tcpserver restrict key-exchange groups."""
    return _private_binding("SSL_CTX_set1_curves_list") is not None


def _apply_list(context: SSL.Context, function: str, value: str, setting: str) -> None:
    bound = _private_binding(function)
    raw = getattr(context, "_context", None)
    if bound is None or raw is None:
        raise TCPServerError(
            errors.NOT_SUPPORTED,
            f"{setting}: this pyOpenSSL build offers no way to set it; leave the default",
        )
    if bound(raw, value.encode("ascii")) != 1:
        raise TCPServerError(errors.INVALID_ARGUMENT, f"{setting}: OpenSSL refused {value!r}")


# -- client certificate verification ------------------------------------------------

#: SSLSecurityFlags bits tcpserver acts on.
IGNORE_TIME_VALIDITY = 0x00000001
ALLOW_UNKNOWN_CA = 0x00000010
_UNKNOWN_CA_ERRORS = {2, 18, 19, 20, 21}  # unable to get issuer / self-signed / no local issuer
#: X509_V_FLAG_NO_CHECK_TIME (OpenSSL 1.1.0+); pyOpenSSL's X509StoreFlags has no name for it.
_NO_CHECK_TIME = 0x200000
#: OpenSSL's text for X509_V_ERR_INVALID_PURPOSE (26).
_INVALID_PURPOSE = "unsuitable certificate purpose"
_CLIENT_USAGES = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
_NETSCAPE_CERT_TYPE = x509.ObjectIdentifier("2.16.840.1.113730.1.1")
_NS_SSL_CLIENT = 0x80


def verify_client(
    leaf: x509.Certificate,
    chain: Iterable[x509.Certificate],
    trusted: list[x509.Certificate],
    ca_file: str,
    ca_dir: str,
    flags: int,
) -> tuple[bool, str]:
    """
    Verify a client certificate chain, and that it may authenticate a TLS client.

    ``ALLOW_UNKNOWN_CA`` forgives only the missing trust anchor: OpenSSL stops
    at its first error, so the chain is verified again up to the top of what
    the client presented - signatures and (unless ``IGNORE_TIME_VALIDITY``)
    validity periods still count.  The purpose check follows OpenSSL's
    ``sslclient`` purpose (see :func:`purpose_problem`).

    :returns: ``(accepted, status)`` - ``status`` is ``"OK"`` or OpenSSL's
        reason, e.g. ``"unable to get local issuer certificate"``.
    """
    time_flags = _NO_CHECK_TIME if flags & IGNORE_TIME_VALIDITY else 0
    store = crypto.X509Store()
    for certificate in trusted:
        store.add_cert(crypto.X509.from_cryptography(certificate))
    if ca_file or ca_dir:
        try:
            store.load_locations(ca_file or None, ca_dir or None)
        except crypto.Error as exc:
            return False, f"cannot load OpenSSLCAFile/OpenSSLCADir: {exc}"
    if time_flags:
        store.set_flags(time_flags)
    presented = [c for c in chain if c != leaf]
    openssl_leaf = crypto.X509.from_cryptography(leaf)
    intermediates = [crypto.X509.from_cryptography(c) for c in presented]
    allowed = ""
    try:
        verified = crypto.X509StoreContext(store, openssl_leaf, intermediates).get_verified_chain()
    except crypto.X509StoreContextError as exc:
        code = exc.errors[0] if exc.errors else -1
        if not (flags & ALLOW_UNKNOWN_CA and code in _UNKNOWN_CA_ERRORS):
            return False, str(exc)
        # Trust the top of the presented chain and verify again: everything
        # below it (signatures, validity) is checked as for a known CA.
        anchors = crypto.X509Store()
        anchors.add_cert(crypto.X509.from_cryptography(_presented_top(leaf, presented)))
        anchors.set_flags(
            crypto.X509StoreFlags.PARTIAL_CHAIN
            | crypto.X509StoreFlags.CHECK_SS_SIGNATURE
            | time_flags
        )
        context = crypto.X509StoreContext(anchors, openssl_leaf, intermediates)
        try:
            verified = context.get_verified_chain()
        except crypto.X509StoreContextError as again:
            return False, str(again)
        allowed = " (unknown CA allowed by SSLSecurityFlags)"
    problem = purpose_problem([c.to_cryptography() for c in verified])
    if problem:
        return False, problem
    return True, "OK" + allowed


def _presented_top(leaf: x509.Certificate, presented: list[x509.Certificate]) -> x509.Certificate:
    """The last certificate reached from ``leaf`` through its presented issuers."""
    top = leaf
    path = [leaf]
    while top.issuer != top.subject:
        issuer = next((c for c in presented if c.subject == top.issuer and c not in path), None)
        if issuer is None:
            break
        path.append(issuer)
        top = issuer
    return top


def purpose_problem(verified: list[x509.Certificate]) -> str:
    """
    Why a verified chain (leaf first) may not authenticate a TLS client, or ``""``.

    OpenSSL's ``sslclient`` purpose check: an extendedKeyUsage, where present,
    must allow clientAuth (or any purpose) - on the leaf and on every
    issuer; the leaf's keyUsage, where present, must allow digitalSignature
    or keyAgreement, and its Netscape certificate type, where present, an
    SSL client.
    """
    for depth, certificate in enumerate(verified):
        whose = "the certificate" if depth == 0 else f"issuer {format_name(certificate.subject)!r}"
        try:
            extensions = certificate.extensions
        except ValueError as exc:  # duplicate or malformed extensions
            return f"{_INVALID_PURPOSE} ({whose} has unreadable extensions: {exc})"
        usage = extensions.get_extension_for_class
        try:
            purposes = list(usage(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            purposes = []
        else:
            if not _CLIENT_USAGES.intersection(purposes):
                names = ", ".join(_oid_name(p) for p in purposes)
                return (
                    f"{_INVALID_PURPOSE} ({whose} has extended key usage "
                    f"{names or 'none'}, not clientAuth)"
                )
        if depth:
            continue
        try:
            key_usage = usage(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            pass
        else:
            if not (key_usage.digital_signature or key_usage.key_agreement):
                return (
                    f"{_INVALID_PURPOSE} ({whose} has key usage "
                    f"{_key_usage_names(key_usage) or 'none'}, "
                    "neither digitalSignature nor keyAgreement)"
                )
        try:
            netscape = extensions.get_extension_for_oid(_NETSCAPE_CERT_TYPE).value
        except x509.ExtensionNotFound:
            pass
        else:
            if not _netscape_bits(netscape) & _NS_SSL_CLIENT:
                return (
                    f"{_INVALID_PURPOSE} ({whose} has a Netscape certificate type "
                    "without SSL client)"
                )
    return ""


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", "Unknown OID")  # cryptography's short name, if it has one
    return oid.dotted_string if name == "Unknown OID" else str(name)


def _key_usage_names(usage: x509.KeyUsage) -> str:
    names = (
        ("digital_signature", "digitalSignature"),
        ("content_commitment", "nonRepudiation"),
        ("key_encipherment", "keyEncipherment"),
        ("data_encipherment", "dataEncipherment"),
        ("key_agreement", "keyAgreement"),
        ("key_cert_sign", "keyCertSign"),
        ("crl_sign", "cRLSign"),
    )
    return ", ".join(text for attribute, text in names if getattr(usage, attribute))


def _netscape_bits(extension: Any) -> int:
    """The first byte of a Netscape certificate type (a DER BIT STRING), as OpenSSL reads it."""
    data = getattr(extension, "value", b"")
    if len(data) >= 4 and data[0] == 0x03 and data[1] >= 2:
        return int(data[3])
    return 0


# -- contexts ----------------------------------------------------------------------------


@implementer(IOpenSSLServerConnectionCreator)
class _ConnectionCreator:
    """Makes the OpenSSL connection for one TLS engine, tagged with its protocol."""

    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:  # noqa: N803
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tlsProtocol)
        return connection

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:  # noqa: N803
        raise NotImplementedError("tcpserver is a server")


_CB_READ_ALERT = 0x4004
_CB_WRITE_ALERT = 0x4008


class TLSContexts:
    """
    One OpenSSL context (and Twisted TLS factory) per certificate, built from
    the current SSL settings and cached until one of them changes.

    :param settings: the factory's settings.
    :param on_alert: called as ``on_alert(connection, direction, level, name)``
        for every TLS alert sent or received - when ``wants_alerts()`` said
        yes as the context was built (OpenSSL's info callback runs many
        times per handshake: it is only installed when someone listens).
    :param on_keylog: called as ``on_keylog(line)`` for every NSS key-log line.
    """

    #: Contexts kept (least recently used dropped first); connections already
    #: using a dropped one are unaffected.
    CACHE_SIZE = 64

    def __init__(
        self,
        settings: Settings,
        wrapped_factory: Factory,
        on_alert: Callable[[SSL.Connection, str, str, str], None],
        wants_alerts: Callable[[], bool] = lambda: True,
    ) -> None:
        self._settings = settings
        self._wrapped_factory = wrapped_factory
        self._on_alert = on_alert
        self._wants_alerts = wants_alerts
        # content key -> factory, least recently used first
        self._cache: OrderedDict[bytes, TLSMemoryBIOFactory] = OrderedDict()
        self._trusted: list[x509.Certificate] | None = None

    def check_settings(self) -> None:
        """
        Refuse SSL settings that cannot hold before a port listens
        (``start_listening``): two signature-algorithm lists OpenSSL cannot
        keep apart, and group lists this pyOpenSSL build cannot set.

        :raises TCPServerError: 10045 naming the settings.
        """
        signature_algorithms_of(self._settings)
        groups = ("TLS12SupportedGroups", "TLS13SupportedGroups")
        if not can_set_groups() and any(self._settings[s] != _default(s) for s in groups):
            raise TCPServerError(
                errors.NOT_SUPPORTED,
                "TLS12/TLS13SupportedGroups: this pyOpenSSL/cryptography build offers no "
                "way to set key-exchange groups (SSL_CTX_set1_curves_list); leave the defaults",
            )

    def invalidate(self) -> None:
        """Forget built contexts (a TLS setting changed)."""
        self._cache.clear()
        self._trusted = None

    def factory_for(self, certificate: Certificate) -> TLSMemoryBIOFactory:
        """
        The TLS factory serving ``certificate`` (built on first use).

        Cached by content - the certificate, its chain and its key - so a
        listener that loads the same certificate again for every connection
        reuses one context; the :attr:`CACHE_SIZE` most recently used are kept.
        """
        key = certificate.content_key
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        context = self.build_context(certificate)
        tls_factory = TLSMemoryBIOFactory(_ConnectionCreator(context), False, self._wrapped_factory)
        tls_factory.noisy = False
        self._cache[key] = tls_factory
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return tls_factory

    def trusted(self) -> list[x509.Certificate]:
        """SSLClientCACerts, parsed once."""
        if self._trusted is None:
            self._trusted = load_pem_certificates(
                self._settings["SSLClientCACerts"], "SSLClientCACerts"
            )
        return self._trusted

    def build_context(self, certificate: Certificate) -> SSL.Context:
        """A new OpenSSL context for ``certificate`` and the current settings."""
        settings = self._settings
        key, leaf, chain = certificate.credentials()  # (273 without a private key)
        lowest, highest = protocol_range(settings["SSLEnabledProtocols"])
        version_options: dict[str, Any] = {}
        default_lowest = default_minimum_tls_version()
        if lowest < default_lowest:
            version_options["insecurelyLowerMinimumTo"] = lowest
        elif lowest > default_lowest:
            version_options["raiseMinimumTo"] = lowest
        if highest < TLSVersion.TLSv1_3:
            version_options["lowerMaximumSecurityTo"] = highest
        legacy = lowest < TLSVersion.TLSv1_2
        tls12, tls13 = split_cipher_suites(settings["SSLEnabledCipherSuites"])
        cipher_string = settings["OpenSSLCipherList"]
        if tls12:
            cipher_string = ":".join(tls12)
        elif cipher_string == "DEFAULT" and not legacy:
            cipher_string = DEFAULT_TLS12_CIPHERS
        if settings["SSLCipherStrength"]:
            cipher_string, tls13 = _strong_enough(
                cipher_string, tls13, settings["SSLCipherStrength"]
            )
        ciphers = None
        if cipher_string != "DEFAULT" and not legacy:
            ciphers = AcceptableCiphers.fromOpenSSLCipherString(cipher_string)
        reuse = bool(settings["ReuseSSLSession"])
        # cryptography objects go straight in (pyOpenSSL's own types are deprecated)
        chain += load_pem_certificates(settings["SSLCACerts"], "SSLCACerts")
        options = CertificateOptions(
            privateKey=key,
            certificate=leaf,  # type: ignore[arg-type]  # pyOpenSSL takes it
            extraCertChain=chain,  # type: ignore[arg-type]
            acceptableCiphers=ciphers,
            enableSessions=reuse,
            enableSessionTickets=reuse,
            **version_options,
        )
        context = options.getContext()
        # Twisted answers an ALPN offer it has no protocol for with an empty
        # choice, which OpenSSL turns into a fatal internal_error: tcpserver
        # speaks no ALPN protocol, so it ignores the offer (as OpenSSL would).
        context.set_alpn_select_callback(_no_alpn)
        if legacy:
            # OpenSSL 3 refuses TLS < 1.2 at its default security level.
            base = cipher_string if cipher_string != "DEFAULT" else "DEFAULT"
            context.set_cipher_list(f"{base}:@SECLEVEL=0".encode("ascii"))
        if tls13:
            context.set_tls13_ciphersuites(":".join(tls13).encode("ascii"))
        if settings["SSLEnableRenegotiation"]:
            # OpenSSL 3 refuses a client's renegotiation request unless asked
            # to allow it, whatever OP_NO_RENEGOTIATION says.
            context.set_options(OP_ALLOW_CLIENT_RENEGOTIATION)
        else:
            context.set_options(SSL.OP_NO_RENEGOTIATION)
        defaults = {s: _default(s) for s in _LIST_SETTINGS}
        sigalgs = signature_algorithms_of(settings)
        if sigalgs is not None:
            _apply_list(
                context,
                "SSL_CTX_set1_sigalgs_list",
                sigalgs,
                "TLS12/TLS13SignatureAlgorithms",
            )
        groups12, groups13 = settings["TLS12SupportedGroups"], settings["TLS13SupportedGroups"]
        if (
            groups12 != defaults["TLS12SupportedGroups"]
            or groups13 != defaults["TLS13SupportedGroups"]
        ):
            _apply_list(
                context,
                "SSL_CTX_set1_curves_list",
                openssl_groups(groups13, groups12),
                "TLS12/TLS13SupportedGroups",
            )
        if settings["SSLAuthenticateClients"]:
            # Ask for a certificate but let every handshake finish: the
            # verdict is reported through ssl_client_authentication.
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _accept_any)
            for authority in self.trusted():
                context.add_client_ca(authority)  # advertised CA names
        key_log = settings["SSLKeyLogFile"]
        if key_log:
            context.set_keylog_callback(_key_logger(key_log))
        if self._wants_alerts():
            context.set_info_callback(self._info)
        return context

    def _info(self, connection: SSL.Connection, where: int, ret: int) -> None:
        if where & _CB_READ_ALERT == _CB_READ_ALERT or where & _CB_WRITE_ALERT == _CB_WRITE_ALERT:
            direction = "received" if where & _CB_READ_ALERT == _CB_READ_ALERT else "sent"
            level = "fatal" if (ret >> 8) == 2 else "warning"
            name = alert_name(ret & 0xFF)
            self._on_alert(connection, direction, level, name)


def _strong_enough(cipher_string: str, tls13: list[str], minimum: int) -> tuple[str, list[str]]:
    """
    Keep the ciphers of at least ``minimum`` bits (SSLCipherStrength).

    Probed on a throwaway context: OpenSSL reports the ciphers a cipher string
    selects only through a connection, and a context that made one can no
    longer change.
    """
    probe = SSL.Context(SSL.TLS_METHOD)
    probe.set_cipher_list(cipher_string.encode("ascii"))
    if tls13:
        probe.set_tls13_ciphersuites(":".join(tls13).encode("ascii"))
    names = [n for n in SSL.Connection(probe, None).get_cipher_list() if cipher_bits(n) >= minimum]
    strong12 = [n for n in names if not n.startswith("TLS_")]
    strong13 = [n for n in names if n.startswith("TLS_")]
    if not strong12 and not strong13:
        raise TCPServerError(
            errors.INVALID_ARGUMENT,
            f"SSLCipherStrength={minimum}: no enabled cipher is that strong",
        )
    # an empty TLS 1.2 list would disable TLS 1.2; keep what OpenSSL calls eNULL-free HIGH
    return ":".join(strong12) if strong12 else "HIGH:!aNULL:!eNULL", strong13


_LIST_SETTINGS = (
    "TLS12SignatureAlgorithms",
    "TLS13SignatureAlgorithms",
    "TLS12SupportedGroups",
    "TLS13SupportedGroups",
)


#: SSL_OP_ALLOW_CLIENT_RENEGOTIATION (OpenSSL 3; pyOpenSSL has no name for it)
OP_ALLOW_CLIENT_RENEGOTIATION = getattr(SSL, "OP_ALLOW_CLIENT_RENEGOTIATION", 0x00000100)


def signature_algorithms_of(settings: Settings) -> str | None:
    """
    The sigalgs list of the current settings (see
    :func:`~tcpserver._tlsnames.signature_algorithms`).

    :raises TCPServerError: 10045 when it cannot honour both settings.
    """
    try:
        return signature_algorithms(
            settings["TLS12SignatureAlgorithms"],
            settings["TLS13SignatureAlgorithms"],
            settings["SSLEnabledProtocols"],
            (_default("TLS12SignatureAlgorithms"), _default("TLS13SignatureAlgorithms")),
        )
    except ValueError as exc:
        raise TCPServerError(errors.NOT_SUPPORTED, str(exc)) from None


def _default(name: str) -> Any:
    return lookup(name).default


def _no_alpn(connection: SSL.Connection, offered: list[bytes]) -> Any:
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _accept_any(
    connection: SSL.Connection, certificate: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    return True


def _key_logger(path: str) -> Callable[[SSL.Connection, bytes], None]:
    def write(connection: SSL.Connection, line: bytes) -> None:
        # NSS key log format, appended; a debugging aid (the write is small).
        # Created private: whoever reads it can decrypt the captured traffic.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(descriptor, "ab") as handle:
                handle.write(line + b"\n")
        except OSError as exc:
            _log.warn("cannot append to SSLKeyLogFile {path!r}: {error}", path=path, error=exc)

    return write


# -- per-connection read-outs --------------------------------------------------------------


def negotiated(connection: SSL.Connection | None, name: str) -> str:
    """
    A ``SSLNegotiated*`` read-out for one TLS connection (``""`` before the
    handshake or on a plaintext connection).
    """
    if connection is None:
        return ""
    cipher = connection.get_cipher_name()
    if cipher is None:
        return ""
    if name == "SSLNegotiatedCipher":
        return cipher
    if name == "SSLNegotiatedCipherStrength":
        return str(connection.get_cipher_bits() or 0)
    if name == "SSLNegotiatedCipherSuite":
        if cipher.startswith("TLS_"):
            return cipher
        return iana_cipher_suite(cipher)
    if name == "SSLNegotiatedVersion":
        return connection.get_protocol_version_name()
    group = (connection.get_group_name() or "").lower()
    if name == "SSLNegotiatedKeyExchange":
        if cipher.startswith("TLS_") or cipher.startswith(("ECDHE", "DHE")):
            kind = "DHE" if group.startswith("ffdhe") or cipher.startswith("DHE") else "ECDHE"
            return f"{kind} ({group})" if group else kind
        return "RSA"
    if name == "SSLNegotiatedKeyExchangeStrength":
        return str(group_bits(group))
    return ""
