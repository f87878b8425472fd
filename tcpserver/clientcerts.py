"""Client certificates: does a presented chain verify, and may it authenticate a client.

:func:`verify_client` checks a TLS client's chain against the trusted
certificates (SSLClientCACerts, OpenSSLCAFile, OpenSSLCADir) with the
SSLSecurityFlags bits tcpserver acts on (:data:`IGNORE_TIME_VALIDITY`,
:data:`ALLOW_UNKNOWN_CA`), then OpenSSL's ``sslclient`` purpose
(:func:`purpose_problem`), and says why it fails in OpenSSL's words.
The per-connection TLS session (:mod:`tcpserver._tlssession`) calls it
once a client has shown its certificate; nothing here touches a socket.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import crypto

from tcpserver.certificates import format_name

__all__ = ["ALLOW_UNKNOWN_CA", "IGNORE_TIME_VALIDITY", "purpose_problem", "verify_client"]

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
