"""The settings registry: every property and config setting in one table.

Each :class:`~tcpserver.settingtypes.Setting` of :data:`REGISTRY` carries its
manual name, Python attribute (for properties), type, default, validation,
whether it may change while the server listens, a one-line meaning, what its
owner must refresh when it changes (``effect``) and the values coupled to it
(``couples``: SSLEnabled and SSLStartMode keep each other consistent).
``config()``, the property setters, the twistd flags and the reference docs
are all generated from :data:`REGISTRY`; there is no second list of names.
:data:`READOUTS` names the per-connection read-outs.

It is data plus the small validators and coupling rules its entries name.
It holds no values (:class:`tcpserver.settings.Settings` does) and never
imports the value store, :mod:`tcpserver.tls` or anything that serves
connections.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from tcpserver import errors
from tcpserver._tlsnames import (
    check_cipher_list,
    check_cipher_suites,
    check_groups,
    check_protocols,
    check_sigalgs,
    signature_algorithms,
)
from tcpserver.access import AddressMatcher
from tcpserver.certificates import Certificate, load_pem_certificates
from tcpserver.errors import TCPServerError
from tcpserver.settingtypes import (
    BoolType,
    BytesType,
    ChoiceType,
    CodePageType,
    EnumType,
    IntType,
    ObjectType,
    RateType,
    SecondsType,
    Setting,
    SettingType,
    SSLStartMode,
    StrType,
)

__all__ = ["READOUTS", "REGISTRY"]


# -- validators ---------------------------------------------------------------------------


def _check_certificate(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, Certificate):
        raise ValueError("expected a tcpserver.Certificate or None")
    if not value.private_key_available:
        raise TCPServerError(
            errors.CANNOT_ACQUIRE_CREDENTIALS,
            f"certificate {value.subject!r} has no private key: a server cannot use it",
        )


def _check_existing(kind: str) -> Callable[[str], None]:
    def check(path: str) -> None:
        if not path:
            return
        exists = os.path.isdir(path) if kind == "directory" else os.path.isfile(path)
        if not exists:
            raise ValueError(f"no such {kind}")

    return check


def _check_key_log(path: str) -> None:
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ValueError("its directory does not exist")


def _check_pem_list(setting: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        try:
            load_pem_certificates(text, setting)
        except TCPServerError as exc:
            raise ValueError(exc.description) from None

    return check


def _check_address_list(setting: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        AddressMatcher.parse(text, setting)

    return check


def _check_byte_order(text: str) -> None:
    if text not in ("big", "little"):
        raise ValueError("expected big or little")


# -- coupled values ------------------------------------------------------------------------


def _enabled_for_start_mode(mode: SSLStartMode, values: Mapping[str, Any]) -> dict[str, Any]:
    """SSLStartMode decides SSLEnabled: TLS is enabled in every mode but NONE."""
    return {"SSLEnabled": mode != SSLStartMode.NONE}


def _start_mode_for_enabled(enabled: bool, values: Mapping[str, Any]) -> dict[str, Any]:
    """SSLEnabled moves SSLStartMode: True without a mode means IMPLICIT, False means NONE."""
    if not enabled:
        return {"SSLStartMode": SSLStartMode.NONE}
    if values["SSLStartMode"] == SSLStartMode.NONE:
        return {"SSLStartMode": SSLStartMode.IMPLICIT}
    return {}


def _sigalgs_must_hold(name: str) -> Callable[[Any, Mapping[str, Any]], None]:
    """
    A change of ``name`` (TLS12/TLS13SignatureAlgorithms or
    SSLEnabledProtocols) must not make two lists the user chose impossible
    to honour together (OpenSSL has one list): else 10045 at once, never
    stored.  A list still at its default may be set next (so both can be
    given, one after the other); ``start_listening`` and every TLS context
    check the combination as a whole.
    """

    def check(value: Any, values: Mapping[str, Any]) -> None:
        current = {s: values[s] for s in _SIGALG_SETTINGS}
        current[name] = value
        if (
            current["TLS12SignatureAlgorithms"] == _RSA_TLS12_SIGALGS
            or current["TLS13SignatureAlgorithms"] == _TLS13_SIGALGS
        ):
            return  # (one list is not chosen yet)
        try:
            signature_algorithms(
                current["TLS12SignatureAlgorithms"],
                current["TLS13SignatureAlgorithms"],
                current["SSLEnabledProtocols"],
                (_RSA_TLS12_SIGALGS, _TLS13_SIGALGS),
            )
        except ValueError as exc:
            raise TCPServerError(errors.NOT_SUPPORTED, f"{name}={value!r}: {exc}") from None

    return check


_SIGALG_SETTINGS = ("TLS12SignatureAlgorithms", "TLS13SignatureAlgorithms", "SSLEnabledProtocols")

# -- the table -----------------------------------------------------------------------------

_NEW_CONNECTIONS = "to connections accepted afterwards"
_NEXT_LISTEN = "at the next start_listening()"
_NEXT_HANDSHAKE = "to TLS handshakes started afterwards"

_RSA_TLS12_SIGALGS = (
    "sha512-ecdsa,sha512-rsa,sha512-dsa,sha384-ecdsa,sha384-rsa,sha384-dsa,"
    "sha256-ecdsa,sha256-rsa,sha256-dsa,sha224-ecdsa,sha224-rsa,sha224-dsa,"
    "sha1-ecdsa,sha1-rsa,sha1-dsa"
)
_TLS13_SIGALGS = (
    "rsa_pss_sha256,rsa_pss_sha384,rsa_pss_sha512,rsa_pkcs1_sha256,"
    "rsa_pkcs1_sha384,rsa_pkcs1_sha512,ecdsa_secp256r1_sha256,"
    "ecdsa_secp384r1_sha384,ecdsa_secp521r1_sha512,ed25519,ed448"
)


def _prop(
    name: str, attr: str, type_: SettingType[Any], default: Any, doc: str, **kw: Any
) -> Setting:
    return Setting(name, "property", type_, default, doc, attr=attr, **kw)


def _cfg(name: str, type_: SettingType[Any], default: Any, doc: str, **kw: Any) -> Setting:
    return Setting(name, "config", type_, default, doc, **kw)


REGISTRY: tuple[Setting, ...] = (
    # ---- properties -------------------------------------------------------
    _prop(
        "ConnectionBacklog",
        "connection_backlog",
        IntType(1, 65535),
        5,
        "Pending connections the kernel queues for accept() (listen backlog).",
        applies=_NEXT_LISTEN,
        flag="backlog",
        port=True,
    ),
    _prop(
        "DefaultEOL",
        "default_eol",
        BytesType(),
        b"",
        "End-of-line bytes that split incoming data into lines; empty means "
        "data is delivered as it arrives.",
        applies=_NEW_CONNECTIONS,
        flag="eol",
        profile="eol",
    ),
    _prop(
        "DefaultIdleTimeout",
        "default_idle_timeout",
        SecondsType(),
        0,
        "Seconds without traffic after which a connection is closed (0: never).",
        applies=_NEW_CONNECTIONS,
        flag="idle-timeout",
        profile="idle_timeout",
    ),
    _prop(
        "DefaultMaxLineLength",
        "default_max_line_length",
        IntType(256),
        2048,
        "Bytes buffered while waiting for an end-of-line before they are "
        "delivered with eol=False (minimum 256).",
        applies=_NEW_CONNECTIONS,
        flag="max-line-length",
        profile="max_line_length",
    ),
    _prop(
        "DefaultSingleLineMode",
        "default_single_line_mode",
        BoolType(),
        False,
        "Split incoming data on CR, LF or CRLF (DefaultEOL is then ignored).",
        applies=_NEW_CONNECTIONS,
        flag="single-line-mode",
        profile="single_line_mode",
    ),
    _prop(
        "DefaultTimeout",
        "default_timeout",
        SecondsType(),
        0,
        "Send timeout of new connections: 0 = sends fail with 135 when the "
        "queue is full; > 0 = sends wait up to this many seconds.",
        applies=_NEW_CONNECTIONS,
        flag="timeout",
        profile="send_timeout",
    ),
    _prop(
        "KeepAlive",
        "keep_alive",
        BoolType(),
        False,
        "Enable TCP keep-alive probes (SO_KEEPALIVE) on accepted connections.",
        applies=_NEW_CONNECTIONS,
        flag="keep-alive",
        profile="keep_alive",
    ),
    _prop(
        "Linger",
        "linger",
        BoolType(),
        True,
        "True: close gracefully after queued data is sent; False: abortive "
        "close (RST, SO_LINGER 0), queued data may be lost.",
        applies=_NEW_CONNECTIONS,
        flag="linger",
        profile="linger",
    ),
    _prop(
        "LocalHost",
        "local_host",
        StrType(),
        "",
        "IP address (or host name) of the interface to listen on; empty means all interfaces.",
        listening_error=errors.LOCAL_HOST_WHILE_LISTENING,
        applies=_NEXT_LISTEN,
        flag="interface",
        port=True,
    ),
    _prop(
        "LocalPort",
        "local_port",
        IntType(0, 65535),
        0,
        "TCP port to listen on; 0 lets the system pick one (read it back after start_listening()).",
        listening_error=errors.LOCAL_PORT_WHILE_LISTENING,
        applies=_NEXT_LISTEN,
        flag="port",
        port=True,
    ),
    _prop(
        "SSLAuthenticateClients",
        "ssl_authenticate_clients",
        BoolType(),
        False,
        "Ask TLS clients for a certificate (see ssl_client_authentication).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _prop(
        "SSLCert",
        "ssl_cert",
        ObjectType("Certificate", _check_certificate),
        None,
        "The server certificate (a tcpserver.Certificate) used for TLS.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _prop(
        "SSLEnabled",
        "ssl_enabled",
        BoolType(),
        False,
        "Whether TLS is enabled; setting ssl_start_mode updates it.",
        applies=_NEW_CONNECTIONS,
        effect="tls",
        couples=_start_mode_for_enabled,
    ),
    _prop(
        "SSLProvider",
        "ssl_provider",
        ChoiceType({0: "Automatic", 1: "Platform"}),
        0,
        "TLS implementation: 0 automatic and 1 platform both mean OpenSSL "
        "(through pyOpenSSL); 2 (internal) does not exist here.",
        applies=_NEW_CONNECTIONS,
        effect="tls",
    ),
    _prop(
        "SSLStartMode",
        "ssl_start_mode",
        EnumType(SSLStartMode),
        SSLStartMode.NONE,
        "How TLS starts: 0 automatic (the manual's: implicit TLS on this "
        "server), 1 implicit, 2 explicit (start_ssl), 3 none; beyond the "
        "manual, 4 detect (TLS if the first byte starts a TLS record, else "
        "plaintext: both on one port).",
        applies=_NEW_CONNECTIONS,
        flag="ssl-start-mode",
        effect="tls",
        couples=_enabled_for_start_mode,
        profile="ssl_start_mode",
    ),
    # ---- TCPServer config settings ------------------------------------------
    _cfg(
        "AllowedClients",
        StrType(_check_address_list("AllowedClients")),
        "*",
        "Comma-separated addresses allowed to connect: '*' wildcards, CIDR "
        "blocks and IPv6 accepted. Others get accept=False in connection_request.",
        flag="allowed-clients",
        effect="access",
    ),
    _cfg(
        "BindExclusively",
        BoolType(),
        True,
        "True: the port is reserved for this server; False: other sockets "
        "may bind it too (SO_REUSEPORT).",
        applies=_NEXT_LISTEN,
    ),
    _cfg(
        "BlockedClients",
        StrType(_check_address_list("BlockedClients")),
        "",
        "Comma-separated addresses refused (accept=False in "
        "connection_request); same syntax as AllowedClients.",
        flag="blocked-clients",
        effect="access",
    ),
    _cfg(
        "ProxyProtocol",
        BoolType(),
        False,
        "Expect a PROXY protocol v1 or v2 header (HAProxy, load balancers) "
        "first on every connection, from a TrustedProxies address: the real "
        "client address is known before connection_request.",
        applies=_NEW_CONNECTIONS,
        flag="proxy-protocol",
        profile="proxy_protocol",
    ),
    _cfg(
        "TrustedProxies",
        StrType(_check_address_list("TrustedProxies")),
        "127.0.0.1,::1",
        "Comma-separated addresses (CIDR blocks allowed) PROXY headers are "
        "accepted from; with ProxyProtocol on, connections from elsewhere are closed.",
        applies=_NEW_CONNECTIONS,
        flag="trusted-proxies",
        effect="proxies",
    ),
    _cfg(
        "DefaultLengthPrefix",
        ChoiceType({0: "off", 1: "1 byte", 2: "2 bytes", 4: "4 bytes", 8: "8 bytes"}),
        0,
        "Length-prefixed framing for new connections: each frame starts with "
        "its length in this many bytes (like Netty's LengthFieldBasedFrameDecoder); "
        "per connection change_length_prefix().",
        applies=_NEW_CONNECTIONS,
        flag="length-prefix",
    ),
    _cfg(
        "LengthPrefixByteOrder",
        StrType(_check_byte_order),
        "big",
        "Byte order of the length prefix: big (network order) or little.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "LengthPrefixAdjustment",
        IntType(minimum=None),
        0,
        "Added to the length field to get the payload length (negative when "
        "the field counts the prefix itself, e.g. -4).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "LengthPrefixStrip",
        BoolType(),
        True,
        "Deliver the payload without its length prefix (False: the whole frame).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "MaxFrameLength",
        IntType(minimum=0),
        1048576,
        "Largest payload a length prefix may announce; a larger one fires "
        "error 907 and closes the connection (or is skipped, SkipTooLongFrames).",
        applies=_NEW_CONNECTIONS,
        flag="max-frame-length",
    ),
    _cfg(
        "SkipTooLongFrames",
        BoolType(),
        False,
        "A too-long length-prefixed frame is skipped (its bytes dropped, error "
        "907 fired, the connection kept) instead of closing the connection.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "ProxyProtocolDetect",
        BoolType(),
        False,
        "With ProxyProtocol on, a connection that does not start with a PROXY "
        "header (or sends nothing within ProxyHeaderTimeout) is served as a "
        "direct client instead of being closed; a header from an address not "
        "in TrustedProxies is still refused (like Netty's detectProtocol).",
        applies=_NEW_CONNECTIONS,
        flag="proxy-protocol-detect",
        profile="proxy_detect",
    ),
    _cfg(
        "ProxyHeaderTimeout",
        SecondsType(),
        10,
        "With ProxyProtocol on: seconds a connection may take to send its "
        "PROXY header before it is closed (error 906, counted as refused "
        "proxy; 0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="proxy-header-timeout",
        profile="proxy_timeout",
    ),
    _cfg(
        "ReadIdleTimeout",
        SecondsType(),
        0,
        "Seconds without a byte received after which a connection is closed "
        "with status 903 (like Netty's reader idle; 0: never).",
        applies=_NEW_CONNECTIONS,
        flag="read-idle-timeout",
        profile="read_idle",
    ),
    _cfg(
        "WriteIdleTimeout",
        SecondsType(),
        0,
        "Seconds without a byte sent (nothing to send, or output stuck "
        "behind a peer that does not read) after which a connection is "
        "closed with status 904 (like Netty's writer idle; 0: never).",
        applies=_NEW_CONNECTIONS,
        flag="write-idle-timeout",
        profile="write_idle",
    ),
    _cfg(
        "CloseGracePeriod",
        SecondsType(),
        30,
        "Seconds a graceful close may take (queued data going out, the "
        "peer's FIN) before it becomes an abort (RST) with status 905, so a "
        "client that never reads cannot keep a closing connection and its "
        "queued output for ever (like the 30 s graceful-shutdown limit of "
        "Netty's HTTP/2 handler; 0: no limit, except after a timeout, which "
        "always escalates).",
        applies=_NEW_CONNECTIONS,
        flag="close-grace-period",
        profile="close_grace",
    ),
    _cfg(
        "ListenerGracePeriod",
        SecondsType(),
        30,
        "Beyond the manual: once a connection's input is over (the peer sent "
        "its FIN or the connection is gone), seconds an async listener that "
        "has not finished may hold back the connection's later events; then "
        "it is given up on - its result is ignored, what it held back is "
        "dropped and logged, and the connection ends with its disconnected "
        "event - so a listener that never finishes cannot keep a connection, "
        "its socket and its table entry for ever (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="listener-grace-period",
        profile="listener_grace",
    ),
    _cfg(
        "MaxConnectionsPerAddress",
        IntType(minimum=0),
        0,
        "Most simultaneous connections from one client address (the real one "
        "behind a PROXY header); more are closed at once, before any TLS work, "
        "and counted as refused per_address (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="max-connections-per-address",
        effect="admission",
    ),
    _cfg(
        "MaxAcceptRate",
        RateType(),
        0,
        "Connections accepted per second from all clients together (a token "
        "bucket holding one second's worth); more are closed at once, before "
        "any TLS work, and counted as refused rate (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="max-accept-rate",
        effect="admission",
    ),
    _cfg(
        "MaxAcceptRatePerAddress",
        RateType(),
        0,
        "Connections accepted per second from one client address (a token "
        "bucket per address); more are closed at once and counted as refused "
        "rate (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="max-accept-rate-per-address",
        effect="admission",
    ),
    _cfg(
        "DefaultConnectionTimeout",
        SecondsType(),
        0,
        "Seconds of inactivity allowed during a TLS handshake, and while "
        "SSLStartMode DETECT waits for the first byte (0: no limit).",
        applies=_NEW_CONNECTIONS,
        profile="handshake_idle",
    ),
    _cfg(
        "HandshakeTimeout",
        SecondsType(),
        10,
        "Beyond the manual: with TLS at accept (SSLStartMode AUTOMATIC, IMPLICIT "
        "or DETECT), seconds "
        "from accept until the connection is open - a PROXY header, "
        "DETECT's first byte and the TLS handshake together - and, for "
        "STARTTLS, from start_ssl() until the handshake is done; then the "
        "connection is reset with error 10060 (like Netty's 10 s SslHandler "
        "handshake timeout; 0: no limit).  The time an async connection_request "
        "or ssl_* listener takes does not count.  DefaultConnectionTimeout "
        "keeps measuring inactivity; a PROXY header alone is bounded by "
        "ProxyHeaderTimeout.",
        applies=_NEW_CONNECTIONS,
        flag="handshake-timeout",
        profile="handshake_timeout",
    ),
    _cfg(
        "InBufferSize",
        IntType(0, 1 << 30),
        0,
        "Socket receive buffer (SO_RCVBUF) in bytes; 0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "KeepAliveInterval",
        IntType(0, 1 << 31),
        0,
        "Milliseconds between unanswered keep-alive probes (TCP_KEEPINTVL, "
        "which takes whole seconds: rounded up, at most 32767 s); 0 keeps the "
        "system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "KeepAliveTime",
        IntType(0, 1 << 31),
        0,
        "Milliseconds of inactivity before the first keep-alive probe "
        "(TCP_KEEPIDLE, which takes whole seconds: rounded up, at most 32767 s); "
        "0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "MaxConnections",
        IntType(1, 100000),
        1000,
        "Most simultaneous connections; more are closed at once and counted.",
        listening_error=errors.MAX_CONNECTIONS_WHILE_LISTENING,
        applies="before listening only",
        flag="max-connections",
        effect="max_connections",
    ),
    _cfg(
        "OutBufferSize",
        IntType(0, 1 << 30),
        0,
        "Socket send buffer (SO_SNDBUF) in bytes; 0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "TcpNoDelay",
        BoolType(),
        False,
        "Disable Nagle's algorithm (TCP_NODELAY) on accepted connections.",
        applies=_NEW_CONNECTIONS,
        flag="tcp-nodelay",
        profile="tcp_nodelay",
        effect="nodelay",
    ),
    _cfg(
        "UseIPv6",
        ChoiceType({0: "IPv4 only", 1: "IPv6 only", 2: "IPv6 and IPv4"}),
        0,
        "0: IPv4 only; 1: IPv6 only; 2: both on one dual-stack socket.",
        applies=_NEXT_LISTEN,
    ),
    # ---- flow control (tcpserver's own; the manual has no numbers) -----------
    _cfg(
        "SendQueueHighWater",
        IntType(1024, 1 << 30),
        256 * 1024,
        "Queued outgoing bytes at which a connection stops reading and ready_to_send turns False.",
        applies=_NEW_CONNECTIONS,
        profile="high_water",
    ),
    _cfg(
        "SendQueueLowWater",
        IntType(0, 1 << 30),
        64 * 1024,
        "Queued outgoing bytes below which reading resumes and ready_to_send fires again.",
        applies=_NEW_CONNECTIONS,
        profile="low_water",
    ),
    _cfg(
        "SendQueueLimit",
        IntType(1024, 1 << 31),
        1024 * 1024,
        "Hard limit of queued outgoing bytes: past it a send with timeout 0 "
        "fails with 135 (bytes_sent tells what was queued).",
        applies=_NEW_CONNECTIONS,
        profile="queue_limit",
    ),
    # ---- SSL config settings -------------------------------------------------
    _cfg(
        "LogSSLPackets",
        BoolType(),
        False,
        "Report every TLS record sent and received through ssl_status (debugging).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "OpenSSLCADir",
        StrType(_check_existing("directory")),
        "",
        "Directory of hashed CA certificates (c_rehash) trusted for client certificates.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "OpenSSLCAFile",
        StrType(_check_existing("file")),
        "",
        "PEM file of CA certificates trusted for client certificates.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "OpenSSLCipherList",
        StrType(check_cipher_list),
        "DEFAULT",
        "OpenSSL cipher list for TLS <= 1.2 (ciphers(1)); DEFAULT: forward-secret AEAD "
        "suites (Mozilla intermediate), OpenSSL's DEFAULT when TLS 1.0/1.1 is enabled.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "OpenSSLPrngSeedData",
        StrType(),
        "",
        "Data to seed the PRNG with.",
        unsupported="OpenSSL 1.1.1 and later seed themselves from the operating system; "
        "pyOpenSSL offers no way to add seed data",
        effect="tls",
    ),
    _cfg(
        "ReuseSSLSession",
        BoolType(),
        False,
        "Allow TLS session resumption (server session cache and session tickets).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLAcceptAnyServerCert",
        BoolType(),
        False,
        "Client components only: trust any server certificate.",
        unsupported="it applies to client components; a server has no server "
        "certificate to check (see SSLClientCACerts and ssl_client_authentication)",
        effect="tls",
    ),
    _cfg(
        "SSLCACerts",
        StrType(_check_pem_list("SSLCACerts")),
        "",
        "PEM CA certificates sent after the server certificate (its chain).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLCipherStrength",
        IntType(0, 1024),
        0,
        "Minimum bulk-cipher strength in bits (0: no minimum).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLClientCACerts",
        StrType(_check_pem_list("SSLClientCACerts")),
        "",
        "PEM CA certificates trusted when verifying client certificates.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLEnabledCipherSuites",
        StrType(check_cipher_suites),
        "*",
        "Cipher suites to enable, IANA names separated by semicolons; '*' = all "
        "enabled by OpenSSLCipherList.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLEnabledProtocols",
        IntType(0, 0xFFFF, check_protocols),
        15360,
        "Bitmask of TLS versions: 12288 TLS 1.3, 3072 TLS 1.2, 768 TLS 1.1, "
        "192 TLS 1.0 (default 15360 = TLS 1.2 + 1.3).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
        check_with=_sigalgs_must_hold("SSLEnabledProtocols"),
    ),
    _cfg(
        "SSLEnableRenegotiation",
        BoolType(),
        False,
        "Allow client-initiated TLS 1.2 renegotiation.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLIncludeCertChain",
        BoolType(),
        False,
        "ssl_client_authentication carries the client's whole chain, not only its "
        "leaf certificate.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLKeyLogFile",
        StrType(_check_key_log),
        "",
        "Append TLS secrets to this file in NSS key log format (debugging only).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLSecurityFlags",
        IntType(0, 0xFFFFFFFF),
        0,
        "Flags relaxing client certificate checks: 0x1 ignore time validity, "
        "0x10 allow an unknown CA; the others relax checks tcpserver does not make.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "SSLServerCACerts",
        StrType(),
        "",
        "Client components only: CA certificates for server verification.",
        unsupported="it applies to client components; servers verify clients with SSLClientCACerts",
        effect="tls",
    ),
    _cfg(
        "TLS12SignatureAlgorithms",
        StrType(check_sigalgs),
        _RSA_TLS12_SIGALGS,
        "Signature algorithms allowed in TLS 1.2 (hash-signature pairs).  "
        "OpenSSL has one list for TLS 1.2 and 1.3: with both enabled, "
        "TLS13SignatureAlgorithms must name the same algorithms (10045 "
        "otherwise).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
        check_with=_sigalgs_must_hold("TLS12SignatureAlgorithms"),
    ),
    _cfg(
        "TLS12SupportedGroups",
        StrType(check_groups),
        "ecdhe_secp256r1,ecdhe_secp384r1,ecdhe_secp521r1",
        "Key-exchange groups for TLS 1.2 (joined with TLS13SupportedGroups; OpenSSL has one list).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    _cfg(
        "TLS13KeyShareGroups",
        StrType(check_groups),
        "ecdhe_x25519,ecdhe_secp256r1,ecdhe_secp384r1,ffdhe_2048,ffdhe_3072",
        "Client components only: groups whose key shares are sent in advance.",
        unsupported="clients choose the key shares they send; a server answers one of "
        "them (restrict groups with TLS13SupportedGroups)",
        effect="tls",
    ),
    _cfg(
        "TLS13SignatureAlgorithms",
        StrType(check_sigalgs),
        _TLS13_SIGALGS,
        "Signature algorithms allowed in TLS 1.3 (see TLS12SignatureAlgorithms: "
        "one OpenSSL list for both versions).",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
        check_with=_sigalgs_must_hold("TLS13SignatureAlgorithms"),
    ),
    _cfg(
        "TLS13SupportedGroups",
        StrType(check_groups),
        "ecdhe_x25519,ecdhe_x448,ecdhe_secp256r1,ecdhe_secp384r1,ecdhe_secp521r1,"
        "ffdhe_2048,ffdhe_3072,ffdhe_4096,ffdhe_6144,ffdhe_8192",
        "Key-exchange groups for TLS 1.3, most preferred first.",
        applies=_NEXT_HANDSHAKE,
        effect="tls",
    ),
    # ---- base config settings ------------------------------------------------
    _cfg("BuildInfo", StrType(), "", "Versions of tcpserver and what it runs on.", read_only=True),
    _cfg(
        "CodePage",
        CodePageType(1, 65535),
        65001,
        "Code page send_text() encodes with (65001 = UTF-8, 1252, 28591...).",
        flag="code-page",
        effect="codec",
    ),
    _cfg(
        "LicenseInfo", StrType(), "", "The license tcpserver is distributed under.", read_only=True
    ),
    _cfg(
        "MaskSensitiveData",
        BoolType(),
        True,
        "Keep payload bytes (and passwords) out of log messages: events in logs "
        "show data as '<N bytes>'.",
    ),
    _cfg(
        "UseInternalSecurityAPI",
        BoolType(),
        False,
        "True would select an internal TLS implementation; only OpenSSL exists here.",
        unsupported="tcpserver always uses OpenSSL through pyOpenSSL",
    ),
)

#: Per-connection read-outs: ``config("SSLNegotiatedCipher[<connection_id>]")``.
READOUTS: tuple[str, ...] = (
    "SSLNegotiatedCipher",
    "SSLNegotiatedCipherStrength",
    "SSLNegotiatedCipherSuite",
    "SSLNegotiatedKeyExchange",
    "SSLNegotiatedKeyExchangeStrength",
    "SSLNegotiatedVersion",
)
