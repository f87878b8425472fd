"""TLS names: the SSL settings' spellings mapped to OpenSSL's, and checked.

It owns the tables and pure functions that translate between the manual's
names and OpenSSL's: the ``SSLEnabledProtocols`` bitmask into a range of TLS
versions, IANA cipher-suite names into OpenSSL names (and back, for the
read-outs), signature-algorithm and group names into OpenSSL lists, a cipher
or group name into its strength in bits, and TLS alert numbers into names;
and the TLS 1.2 cipher suites a DEFAULT ``OpenSSLCipherList`` stands for.
The ``check_*`` functions are the validators :mod:`tcpserver.registry`
attaches to the SSL settings.

It sits below :mod:`tcpserver.settings` and :mod:`tcpserver.tls` (which
re-exports it) and imports nothing of tcpserver.  It holds no state, never
builds a context for serving and never touches a socket;
:func:`check_cipher_list` only asks a throwaway OpenSSL context whether a
cipher string selects anything.
"""

from __future__ import annotations

import re
from typing import Any

from OpenSSL import SSL
from twisted.internet.ssl import TLSVersion

__all__ = [
    "ALERTS",
    "DEFAULT_TLS12_CIPHERS",
    "alert_name",
    "check_cipher_list",
    "check_cipher_suites",
    "check_groups",
    "check_protocols",
    "check_sigalgs",
    "cipher_bits",
    "group_bits",
    "iana_cipher_suite",
    "openssl_groups",
    "openssl_sigalgs",
    "protocol_range",
    "signature_algorithms",
    "split_cipher_suites",
]

_PROTOCOL_BITS = (
    (12288, TLSVersion.TLSv1_3, "TLS 1.3"),
    (3072, TLSVersion.TLSv1_2, "TLS 1.2"),
    (768, TLSVersion.TLSv1_1, "TLS 1.1"),
    (192, TLSVersion.TLSv1_0, "TLS 1.0"),
)
_ORDER = [TLSVersion.TLSv1_0, TLSVersion.TLSv1_1, TLSVersion.TLSv1_2, TLSVersion.TLSv1_3]

#: The TLS 1.2 cipher suites of an ``OpenSSLCipherList`` left at DEFAULT (with
#: TLS 1.0/1.1 enabled it stays OpenSSL's DEFAULT): Mozilla's "intermediate"
#: profile - forward-secret key exchange (ECDHE, DHE) and AEAD ciphers only,
#: no static RSA, no CBC.  The DHE suites need DH parameters, which tcpserver
#: does not set, so OpenSSL leaves them out.  TLS 1.3 suites are all AEAD.
DEFAULT_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)


def protocol_range(mask: int) -> tuple[Any, Any]:
    """
    ``(lowest, highest)`` TLS versions for an SSLEnabledProtocols bitmask.

    :raises ValueError: for SSL 2/3 (OpenSSL has neither), no TLS version at
        all, or a gap (OpenSSL takes a range).
    """
    if mask & (48 | 12):
        raise ValueError("SSL 2.0 and 3.0 are not available in OpenSSL")
    enabled = [version for bits, version, _ in _PROTOCOL_BITS if mask & bits]
    if not enabled:
        raise ValueError("no TLS version enabled")
    indexes = sorted(_ORDER.index(v) for v in enabled)
    if indexes != list(range(indexes[0], indexes[-1] + 1)):
        raise ValueError("the enabled TLS versions must be contiguous (OpenSSL takes a range)")
    return _ORDER[indexes[0]], _ORDER[indexes[-1]]


def check_protocols(mask: int) -> None:
    """Validator for SSLEnabledProtocols."""
    protocol_range(mask)


# IANA TLS 1.2 suite names -> OpenSSL names, for SSLEnabledCipherSuites.
_OPENSSL_CIPHER_NAMES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "DHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256": "DHE-RSA-AES128-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256": "DHE-RSA-AES256-SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": "DHE-RSA-AES128-SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": "DHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
}
_IANA_BY_OPENSSL = {v: k for k, v in _OPENSSL_CIPHER_NAMES.items()}
_TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
}


def split_cipher_suites(text: str) -> tuple[list[str], list[str]]:
    """
    SSLEnabledCipherSuites -> (OpenSSL TLS 1.2 names, TLS 1.3 suite names).

    :raises ValueError: for a name tcpserver cannot map.
    """
    if text.strip() in ("", "*"):
        return [], []
    tls12: list[str] = []
    tls13: list[str] = []
    for raw in re.split(r"[;,:]", text):
        name = raw.strip()
        if not name:
            continue
        if name.upper().startswith("CALG_"):
            raise ValueError(f"{name}: Windows CALG names exist only with the Windows provider")
        if name in _TLS13_SUITES:
            tls13.append(name)
        elif name in _OPENSSL_CIPHER_NAMES:
            tls12.append(_OPENSSL_CIPHER_NAMES[name])
        elif name in _IANA_BY_OPENSSL:
            tls12.append(name)
        else:
            raise ValueError(f"unknown cipher suite {name!r}")
    return tls12, tls13


def check_cipher_suites(text: str) -> None:
    """Validator for SSLEnabledCipherSuites."""
    split_cipher_suites(text)


def check_cipher_list(text: str) -> None:
    """Validator for OpenSSLCipherList: OpenSSL must select at least one cipher."""
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(text.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"OpenSSL selects no cipher ({exc})") from None


def cipher_bits(name: str) -> int:
    """Bulk-cipher strength from an OpenSSL or IANA cipher name."""
    upper = name.upper()
    if "CHACHA20" in upper or "AES256" in upper or "AES_256" in upper or "CAMELLIA256" in upper:
        return 256
    if "AES128" in upper or "AES_128" in upper or "CAMELLIA128" in upper or "SEED" in upper:
        return 128
    if "3DES" in upper or "DES-CBC3" in upper or "DES_EDE" in upper:
        return 112
    if "RC4" in upper or "IDEA" in upper:
        return 128
    if "DES" in upper:
        return 56
    return 0


_SIGALG_NAMES = {
    "rsa_pss_sha256": "rsa_pss_rsae_sha256",
    "rsa_pss_sha384": "rsa_pss_rsae_sha384",
    "rsa_pss_sha512": "rsa_pss_rsae_sha512",
    "rsa_pss_pss_sha256": "rsa_pss_pss_sha256",
    "rsa_pss_pss_sha384": "rsa_pss_pss_sha384",
    "rsa_pss_pss_sha512": "rsa_pss_pss_sha512",
    "rsa_pkcs1_sha256": "rsa_pkcs1_sha256",
    "rsa_pkcs1_sha384": "rsa_pkcs1_sha384",
    "rsa_pkcs1_sha512": "rsa_pkcs1_sha512",
    "ecdsa_secp256r1_sha256": "ecdsa_secp256r1_sha256",
    "ecdsa_secp384r1_sha384": "ecdsa_secp384r1_sha384",
    "ecdsa_secp521r1_sha512": "ecdsa_secp521r1_sha512",
    "ed25519": "ed25519",
    "ed448": "ed448",
}
_HASHES = {
    "sha1": "SHA1",
    "sha224": "SHA224",
    "sha256": "SHA256",
    "sha384": "SHA384",
    "sha512": "SHA512",
}
_SIGS = {"rsa": "RSA", "ecdsa": "ECDSA", "dsa": "DSA"}
_GROUP_NAMES = {
    "ecdhe_secp256r1": "P-256",
    "ecdhe_secp384r1": "P-384",
    "ecdhe_secp521r1": "P-521",
    "ecdhe_x25519": "X25519",
    "ecdhe_x448": "X448",
    "ffdhe_2048": "ffdhe2048",
    "ffdhe_3072": "ffdhe3072",
    "ffdhe_4096": "ffdhe4096",
    "ffdhe_6144": "ffdhe6144",
    "ffdhe_8192": "ffdhe8192",
}


def openssl_sigalgs(text: str) -> str:
    """Manual signature-algorithm names -> an OpenSSL sigalgs list."""
    out = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name in _SIGALG_NAMES:
            out.append(_SIGALG_NAMES[name])
            continue
        hash_name, _, sig = name.partition("-")
        if hash_name in _HASHES and sig in _SIGS:
            out.append(f"{_SIGS[sig]}+{_HASHES[hash_name]}")
            continue
        raise ValueError(f"unknown signature algorithm {raw.strip()!r}")
    return ":".join(out)


def openssl_groups(*texts: str) -> str:
    """Manual group names (possibly several lists) -> an OpenSSL groups list."""
    out: list[str] = []
    for text in texts:
        for raw in text.split(","):
            name = raw.strip().lower()
            if not name:
                continue
            if name not in _GROUP_NAMES:
                raise ValueError(f"unknown group {raw.strip()!r}")
            if _GROUP_NAMES[name] not in out:
                out.append(_GROUP_NAMES[name])
    return ":".join(out)


def signature_algorithms(
    tls12: str, tls13: str, protocols: int, defaults: tuple[str, str]
) -> str | None:
    """
    The one OpenSSL sigalgs list TLS12SignatureAlgorithms and
    TLS13SignatureAlgorithms make under SSLEnabledProtocols ``protocols``
    (``None``: both at their ``defaults``, OpenSSL's own list stays).

    OpenSSL has a single list for every TLS version, so each setting can be
    honoured only where it is the only one that applies: with TLS 1.3 alone
    the TLS 1.3 list, without TLS 1.3 the TLS 1.2 list, and with both
    versions only a list both settings name alike.

    :raises ValueError: (10045 for its callers) when both versions are
        enabled and the two lists differ.
    """
    default12, default13 = defaults
    if tls12 == default12 and tls13 == default13:
        return None
    lowest, highest = protocol_range(protocols)
    if highest != TLSVersion.TLSv1_3:
        return openssl_sigalgs(tls12) if tls12 != default12 else None
    if lowest == TLSVersion.TLSv1_3:
        return openssl_sigalgs(tls13) if tls13 != default13 else None
    list12, list13 = openssl_sigalgs(tls12), openssl_sigalgs(tls13)
    if set(list12.split(":")) != set(list13.split(":")):
        raise ValueError(
            "OpenSSL has one signature-algorithm list for TLS 1.2 and 1.3, so "
            f"TLS12SignatureAlgorithms={tls12!r} and TLS13SignatureAlgorithms="
            f"{tls13!r} cannot both hold while both versions are enabled: give "
            "both settings the same list, or enable one version only "
            "(SSLEnabledProtocols)"
        )
    return list13


def check_sigalgs(text: str) -> None:
    """Validator for TLS12/TLS13SignatureAlgorithms."""
    openssl_sigalgs(text)


def check_groups(text: str) -> None:
    """Validator for the group settings."""
    openssl_groups(text)


def iana_cipher_suite(openssl_name: str) -> str:
    """The IANA name of a TLS 1.2 suite OpenSSL calls ``openssl_name`` (or that name)."""
    return _IANA_BY_OPENSSL.get(openssl_name, openssl_name)


# -- read-out and alert names ---------------------------------------------------------

#: TLS alert descriptions by number (RFC 8446 section 6), as ssl_status shows them.
ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    116: "certificate_required",
    120: "no_application_protocol",
}


def alert_name(code: int) -> str:
    """The name of TLS alert ``code`` (``"alert N"`` for one without a name)."""
    return ALERTS.get(code, f"alert {code}")


_GROUP_BITS = {
    "x25519": 253,
    "x448": 448,
    "secp256r1": 256,
    "prime256v1": 256,
    "secp384r1": 384,
    "secp521r1": 521,
    "ffdhe2048": 2048,
    "ffdhe3072": 3072,
    "ffdhe4096": 4096,
    "ffdhe6144": 6144,
    "ffdhe8192": 8192,
    "x25519mlkem768": 768,
    "secp256r1mlkem768": 768,
    "secp384r1mlkem1024": 1024,
}


def group_bits(group: str) -> int:
    """Strength in bits of a key-exchange group by OpenSSL's lower-case name (0 if unknown)."""
    return _GROUP_BITS.get(group, 0)
