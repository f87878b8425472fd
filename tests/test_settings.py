"""The settings registry, config(), and property validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpserver import Certificate, CertStoreType, SSLStartMode, TCPServer, TCPServerError
from tcpserver.settings import (
    READOUTS,
    REGISTRY,
    decode_escapes,
    encode_escapes,
    lookup,
    parse_bool,
)
from tcpserver.testing import MemoryConnection, memory_server

MANUAL_SETTINGS = [
    "AllowedClients",
    "BindExclusively",
    "BlockedClients",
    "DefaultConnectionTimeout",
    "InBufferSize",
    "KeepAliveInterval",
    "KeepAliveTime",
    "MaxConnections",
    "OutBufferSize",
    "TcpNoDelay",
    "UseIPv6",
    "LogSSLPackets",
    "OpenSSLCADir",
    "OpenSSLCAFile",
    "OpenSSLCipherList",
    "OpenSSLPrngSeedData",
    "ReuseSSLSession",
    "SSLAcceptAnyServerCert",
    "SSLCACerts",
    "SSLCipherStrength",
    "SSLClientCACerts",
    "SSLEnabledCipherSuites",
    "SSLEnabledProtocols",
    "SSLEnableRenegotiation",
    "SSLIncludeCertChain",
    "SSLKeyLogFile",
    "SSLSecurityFlags",
    "SSLServerCACerts",
    "TLS12SignatureAlgorithms",
    "TLS12SupportedGroups",
    "TLS13KeyShareGroups",
    "TLS13SignatureAlgorithms",
    "TLS13SupportedGroups",
    "BuildInfo",
    "CodePage",
    "LicenseInfo",
    "MaskSensitiveData",
    "UseInternalSecurityAPI",
]

MANUAL_PROPERTIES = {
    "connection_backlog": 5,
    "default_eol": b"",
    "default_idle_timeout": 0,
    "default_max_line_length": 2048,
    "default_single_line_mode": False,
    "default_timeout": 0,
    "keep_alive": False,
    "linger": True,
    "local_host": "",
    "local_port": 0,
    "ssl_authenticate_clients": False,
    "ssl_cert": None,
    "ssl_enabled": False,
    "ssl_provider": 0,
    "ssl_start_mode": SSLStartMode.NONE,
}


def test_every_manual_setting_is_in_the_registry():
    names = {s.name for s in REGISTRY}
    assert set(MANUAL_SETTINGS) <= names
    assert set(READOUTS) == {
        "SSLNegotiatedCipher",
        "SSLNegotiatedCipherStrength",
        "SSLNegotiatedCipherSuite",
        "SSLNegotiatedKeyExchange",
        "SSLNegotiatedKeyExchangeStrength",
        "SSLNegotiatedVersion",
    }
    for setting in REGISTRY:
        assert setting.doc.endswith("."), setting.name


def test_properties_have_the_manuals_defaults():
    server = TCPServer()
    for name, default in MANUAL_PROPERTIES.items():
        assert getattr(server, name) == default, name
    assert server.listening is False
    assert dict(server.connections) == {}


@pytest.mark.parametrize("name", MANUAL_SETTINGS)
def test_config_reads_every_setting_as_a_string(name):
    assert isinstance(TCPServer().config(name), str)


def test_config_defaults_and_case_insensitivity():
    server = TCPServer()
    assert server.config("MaxConnections") == "1000"
    assert server.config("maxconnections") == "1000"
    assert server.config("  MAXCONNECTIONS ") == "1000"
    assert server.config("AllowedClients") == "*"
    assert server.config("SSLEnabledProtocols") == "15360"
    assert server.config("CodePage") == "65001"
    assert server.config("MaskSensitiveData") == "True"
    assert server.config("BindExclusively") == "True"
    assert server.config("maxconnections=1234") == ""
    assert server.config("MaxConnections") == "1234"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("True", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("YES", True),
        ("no", False),
        (" Yes ", True),
    ],
)
def test_booleans(text, value):
    assert parse_bool(text) is value
    server = TCPServer()
    server.config(f"TcpNoDelay={text}")
    assert server.config("TcpNoDelay") == str(value)


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        ("MaxConnections=0", "'0'"),
        ("MaxConnections=100001", "'100001'"),
        ("MaxConnections=lots", "'lots'"),
        ("TcpNoDelay=maybe", "'maybe'"),
        ("UseIPv6=3", "'3'"),
        ("CodePage=99999", "'99999'"),
        ("KeepAliveTime=-5", "'-5'"),
        ("AllowedClients=10.0.0.0/33", "'10.0.0.0/33'"),
        ("NoSuchSetting=1", "'NoSuchSetting'"),
        ("=1", "'=1'"),
    ],
)
def test_bad_config_values_raise_10022_showing_the_value(config, shown):
    with pytest.raises(TCPServerError) as caught:
        TCPServer().config(config)
    assert caught.value.code == 10022
    assert shown in caught.value.description


def test_read_only_and_unsupported_settings():
    server = TCPServer()
    assert "tcpserver" in server.config("BuildInfo")
    assert "Twisted" in server.config("BuildInfo")
    assert "MIT" in server.config("LicenseInfo")
    with pytest.raises(TCPServerError) as caught:
        server.config("BuildInfo=x")
    assert "read-only" in caught.value.description
    with pytest.raises(TCPServerError) as caught:
        server.config("UseInternalSecurityAPI=True")
    assert caught.value.code == 10045
    assert "OpenSSL" in caught.value.description
    server.config("UseInternalSecurityAPI=False")  # the default is fine


def test_max_connections_accepts_up_to_100000():
    server = TCPServer()
    server.config("MaxConnections=100000")
    assert server.config("MaxConnections") == "100000"


def test_per_connection_readouts():
    server = memory_server()
    client = MemoryConnection(server)
    assert server.config(f"SSLNegotiatedCipher[{client.connection_id}]") == ""
    with pytest.raises(TCPServerError) as caught:
        server.config("SSLNegotiatedCipher")
    assert "[<connection_id>]" in caught.value.description
    with pytest.raises(TCPServerError) as caught:
        server.config("SSLNegotiatedVersion[nope]")
    assert caught.value.code == 126
    with pytest.raises(TCPServerError):
        server.config("SSLNegotiatedVersion[1]=x")
    with pytest.raises(TCPServerError):
        server.config("MaxConnections[1]")


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("default_max_line_length", 255),
        ("default_max_line_length", "big"),
        ("default_idle_timeout", -1),
        ("local_port", 70000),
        ("connection_backlog", 0),
        ("default_eol", 12),
        ("default_single_line_mode", "perhaps"),
        ("ssl_provider", 2),
        ("ssl_start_mode", 7),
        ("ssl_cert", "cert.pem"),
        ("keep_alive", 2),
    ],
)
def test_property_validation_shows_the_bad_value(name, bad):
    server = TCPServer()
    with pytest.raises(TCPServerError) as caught:
        setattr(server, name, bad)
    assert caught.value.code == 10022
    assert repr(bad) in caught.value.description


def test_properties_as_constructor_keywords():
    server = TCPServer(
        local_port=9999,
        default_eol="\r\n",
        default_max_line_length=4096,
        linger=False,
        default_idle_timeout=2.5,
    )
    assert server.local_port == 9999
    assert server.default_eol == b"\r\n"
    assert server.default_max_line_length == 4096
    assert server.linger is False
    assert server.default_idle_timeout == 2.5
    assert server.factory.default_eol == b"\r\n"
    with pytest.raises(TCPServerError) as caught:
        TCPServer(no_such_property=1)
    assert "no_such_property" in caught.value.description
    with pytest.raises(TCPServerError):
        TCPServer(default_max_line_length=10)


def test_defaults_apply_to_new_connections():
    server = memory_server(
        default_eol=b"\n",
        default_max_line_length=300,
        default_single_line_mode=False,
        default_idle_timeout=7,
        default_timeout=3,
    )
    conn = server.connections[MemoryConnection(server).connection_id]
    assert (conn.eol, conn.max_line_length, conn.idle_timeout, conn.timeout) == (b"\n", 300, 7, 3)
    server.default_eol = b"\r\n"
    assert conn.eol == b"\n"  # existing connections keep theirs
    assert server.connections[MemoryConnection(server).connection_id].eol == b"\r\n"


def test_certificate_store_types_keep_the_manuals_numbers():
    assert {
        m.name: int(m)
        for m in CertStoreType
        if m.name
        in (
            "PFX_FILE",
            "PFX_BLOB",
            "PEM_KEY_FILE",
            "PEM_KEY_BLOB",
            "PUBLIC_KEY_FILE",
            "PUBLIC_KEY_BLOB",
            "AUTO",
        )
    } == {
        "PFX_FILE": 2,
        "PFX_BLOB": 3,
        "PEM_KEY_FILE": 6,
        "PEM_KEY_BLOB": 7,
        "PUBLIC_KEY_FILE": 8,
        "PUBLIC_KEY_BLOB": 9,
        "AUTO": 99,
    }
    assert {m.name: int(m) for m in SSLStartMode} == {
        "AUTOMATIC": 0,
        "IMPLICIT": 1,
        "EXPLICIT": 2,
        "NONE": 3,
        "DETECT": 4,  # (beyond the manual)
    }
    assert [m.effective for m in SSLStartMode] == [1, 1, 2, 3, 4]  # AUTOMATIC is implicit
    assert Certificate.__name__ == "Certificate"  # exported


def test_lookup_by_attribute_and_name():
    assert lookup("default_eol").name == "DefaultEOL"
    assert lookup("defaulteol").attr == "default_eol"


@given(st.binary(max_size=64))
def test_escapes_round_trip(value):
    assert decode_escapes(encode_escapes(value)) == value


def test_escape_forms():
    assert decode_escapes("\\r\\n") == b"\r\n"
    assert decode_escapes("\\x00END") == b"\x00END"
    assert decode_escapes("|") == b"|"
    with pytest.raises(ValueError, match="xff"):
        decode_escapes("\u20ac")


def test_mask_sensitive_data_keeps_payload_out_of_logs(logged):
    server = memory_server(default_eol=b"\n")
    server.on("data_in", lambda e: 1 / 0)
    MemoryConnection(server).feed(b"secret-password\n")
    text = "\n".join(logged.messages())
    assert len(logged.flush(ZeroDivisionError)) == 1
    assert "secret-password" not in text
    assert "<15 bytes>" in text
    server.config("MaskSensitiveData=False")
    MemoryConnection(server).feed(b"visible-now\n")
    text = "\n".join(logged.messages())
    logged.flush(ZeroDivisionError)
    assert "visible-now" in text
