"""TLS: certificates, OpenSSL contexts, read-outs.

* :class:`Certificate` - the manual's Certificate type: loads PEM, PFX
  (PKCS#12), PKCS#7 and DER stores with :mod:`cryptography`, selects one by
  subject or thumbprint and exposes the manual's read-only fields.  A store
  that cannot be used fails at construction with 271/272.
* :class:`TLSContexts` - builds one OpenSSL context per certificate from the
  SSL settings through Twisted's ``CertificateOptions`` (TLS 1.2 limited to
  :data:`DEFAULT_TLS12_CIPHERS` unless a setting says otherwise), caches it
  (by content, the 64 most recently used), and rebuilds after a setting
  changes.
* :func:`negotiated` - the per-connection ``SSLNegotiated*`` read-outs.

The SSL settings' names and validators (protocol ranges, cipher-suite,
signature-algorithm and group names) live in :mod:`tcpserver._tlsnames`,
below the settings, and the client-certificate checks
(:func:`~tcpserver.clientcerts.verify_client`) in
:mod:`tcpserver.clientcerts`; both are re-exported here.  The
per-connection TLS session lives in :mod:`tcpserver._tlssession`; nothing
here touches a socket.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography import x509
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
    load_pem_certificates,
)
from tcpserver.clientcerts import verify_client
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
