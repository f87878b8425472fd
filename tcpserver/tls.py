"""TLS: certificates and store types (the manual's Certificate type).

This release carries the certificate description and the store-type numbers;
building OpenSSL contexts, STARTTLS, client certificates and SNI arrive with
the TLS work (see the docs' status page).  Nothing here touches a socket.
"""

from __future__ import annotations

import enum
from typing import Any

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.settings import SSLStartMode

__all__ = ["CertStoreType", "Certificate", "SSLStartMode", "negotiated"]


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


class Certificate:
    """
    A certificate (and usually its private key) from a store.

    :param store_type: a :class:`CertStoreType` (or its number).
    :param store: a file name for ``*_FILE`` types, the bytes for ``*_BLOB``.
    :param store_password: the store's password (never logged).
    :param subject: ``"*"`` for the first certificate, or a distinguished
        name to match when the store holds several.
    """

    def __init__(
        self,
        store_type: CertStoreType | int,
        store: str | bytes,
        store_password: str = "",
        subject: str = "*",
    ) -> None:
        try:
            self.store_type = CertStoreType(store_type)
        except ValueError:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"unknown certificate store type {store_type!r}"
            ) from None
        self.store = store
        self.store_password = store_password
        self.subject = subject

    def __repr__(self) -> str:
        return f"<Certificate {self.store_type.name} subject={self.subject!r}>"


def negotiated(transport: Any, name: str) -> str:
    """A per-connection TLS read-out; ``""`` on a plaintext connection."""
    return ""
