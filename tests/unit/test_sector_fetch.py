"""A sector_identifier_uri is fetched over https from public addresses only,
pinned to the address checked, without redirects, within size and time
limits, and its failures name no port (issue 7). The TLS tests serve the
document from 127.0.0.1 with the address check stubbed out: this
machine has no public address to test from."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from idp.clients import sector
from idp.clients.metadata import ClientError, fetch_sector_uris
from idp.clients.sector import UNFETCHABLE, SectorError, fetch_redirect_uris, is_public_address

DOCUMENT = ["https://a.example.test/cb", "https://b.example.test/cb"]


@pytest.fixture
def no_connection(monkeypatch):
    """Fail the test if anything tries to connect."""
    def connect(_self):
        raise AssertionError("a refused sector_identifier_uri was connected to")

    monkeypatch.setattr(sector._PinnedHTTPSConnection, "connect", connect)


@pytest.mark.parametrize("uri", [
    "https://127.0.0.1:8443/sector.json",
    "https://10.0.0.1:8443/sector.json",
    "https://192.168.1.10:8443/",
    "https://172.16.0.1:8443/",
    "https://100.64.0.1:8443/",  # shared address space (carrier NAT)
    "https://169.254.169.254:8443/latest/meta-data/",  # cloud metadata
    "https://0.0.0.0:8443/",
    "https://224.0.0.1:8443/",
    "https://240.0.0.1:8443/",
    "https://[::1]:8443/sector.json",
    "https://[::]:8443/",
    "https://[fe80::1]:8443/",
    "https://[fc00::1]:8443/",
    "https://[ff02::1]:8443/",
    "https://[::ffff:127.0.0.1]:8443/",
    "https://[::ffff:10.0.0.1]:8443/",
    "https://[2002:7f00:1::]:8443/",  # 6to4 of 127.0.0.1
    "https://[64:ff9b::a00:1]:8443/",  # NAT64 of 10.0.0.1
    "https://localhost:8443/sector.json",  # a name resolving to loopback
])
def test_non_public_addresses_are_refused_without_connecting(no_connection, caplog, uri):
    with caplog.at_level(logging.WARNING, logger="idp.clients.sector"), \
            pytest.raises(SectorError) as refused:
        fetch_redirect_uris(uri)
    assert str(refused.value) == UNFETCHABLE
    assert "8443" not in str(refused.value)
    assert any("non-public address" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("uri", ["http://sector.example.test/sector.json",
                                 "http://127.0.0.1:8080/sector.json", "ftp://x.test/s"])
def test_only_https_is_fetched(no_connection, uri):
    with pytest.raises(ClientError) as refused:
        fetch_sector_uris(uri)
    assert str(refused.value) == "sector_identifier_uri must be an https URL"


def test_the_old_fetch_answers_name_no_port(no_connection):
    """The old fetch said 'cannot be fetched: ConnectionError' for a closed
    port and 'answered HTTP 404' for an open one: a port scanner."""
    with pytest.raises(ClientError) as refused:
        fetch_sector_uris("https://127.0.0.1:5432/")
    assert str(refused.value) == UNFETCHABLE


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.53", False), ("10.1.2.3", False), ("100.100.100.100", False),
    ("198.18.0.1", False), ("192.0.2.1", False), ("255.255.255.255", False),
    ("::ffff:192.168.0.1", False), ("fec0::1", False), ("2001:db8::1", False),
    ("64:ff9b:1::1", False), ("::7f00:1", False),
])
def test_public_address_rule(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


# --- the fetch itself, against a TLS server on 127.0.0.1 -----------------------------


def _certificate_files(tmp_path, host: str):
    """A CA and a server certificate for ``host`` signed by it; returns
    ``(ca file, certificate file, key file)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


@pytest.fixture
def sector_server(tmp_path, monkeypatch):
    """An https server for ``sector.test`` on 127.0.0.1, whose behaviour the
    test sets in ``state``; the fetch resolves every name to it and trusts
    its CA. Yields ``(state, port, requests seen)``."""
    ca_file, cert_file, key_file = _certificate_files(tmp_path, "sector.test")
    state = {"status": 200, "body": json.dumps(DOCUMENT).encode(), "headers": {},
             "drip": False}
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append({"path": self.path, "host": self.headers["Host"]})
            self.send_response(state["status"])
            for name, value in state["headers"].items():
                self.send_header(name, value)
            if state["drip"]:
                self.end_headers()
                for _ in range(100):
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        return
                    time.sleep(0.2)
                return
            self.send_header("Content-Length", str(len(state["body"])))
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Every name "resolves" to the server, as a DNS answer would say.
    monkeypatch.setattr(sector, "public_address", lambda host, port: "127.0.0.1")
    monkeypatch.setattr(sector, "tls_context",
                        lambda: ssl.create_default_context(cafile=str(ca_file)))
    yield state, server.server_port, seen
    server.shutdown()
    server.server_close()


def test_document_is_fetched_from_the_checked_address(sector_server):
    """sector.test has no DNS entry: the connection goes to the address the
    check returned, and TLS and Host still name sector.test."""
    state, port, seen = sector_server
    uri = f"https://sector.test:{port}/clients/sector.json?v=1"
    assert fetch_sector_uris(uri) == DOCUMENT
    assert seen == [{"path": "/clients/sector.json?v=1", "host": f"sector.test:{port}"}]


def test_certificate_for_another_name_is_refused(sector_server):
    _state, port, seen = sector_server
    with pytest.raises(ClientError) as refused:
        fetch_sector_uris(f"https://other.test:{port}/sector.json")
    assert str(refused.value) == UNFETCHABLE and seen == []


@pytest.mark.parametrize("status,headers", [
    (302, {"Location": "https://127.0.0.1/internal"}),
    (301, {"Location": "/elsewhere.json"}),
    (404, {}),
    (500, {}),
])
def test_redirects_and_errors_are_not_followed(sector_server, status, headers):
    state, port, seen = sector_server
    state.update(status=status, headers=headers)
    with pytest.raises(ClientError) as refused:
        fetch_sector_uris(f"https://sector.test:{port}/sector.json")
    assert str(refused.value) == UNFETCHABLE and str(port) not in str(refused.value)
    assert len(seen) == 1


def test_large_and_encoded_documents_are_refused(sector_server):
    state, port, _seen = sector_server
    uri = f"https://sector.test:{port}/sector.json"
    state["body"] = json.dumps(["https://a.example.test/" + "x" * 70_000]).encode()
    with pytest.raises(ClientError, match="cannot be fetched"):
        fetch_sector_uris(uri)
    state.update(body=json.dumps(DOCUMENT).encode(), headers={"Content-Encoding": "gzip"})
    with pytest.raises(ClientError, match="cannot be fetched"):
        fetch_sector_uris(uri)


def test_a_trickling_server_is_cut_at_the_deadline(sector_server, monkeypatch):
    state, port, _seen = sector_server
    monkeypatch.setattr(sector, "FETCH_DEADLINE", 1.0)
    state["drip"] = True
    started = time.monotonic()
    with pytest.raises(ClientError, match="cannot be fetched"):
        fetch_sector_uris(f"https://sector.test:{port}/sector.json")
    assert time.monotonic() - started < 3


def test_a_document_that_is_not_an_array_of_uris(sector_server):
    state, port, _seen = sector_server
    for body in (b'{"not": "a list"}', b"not json", b"[1, 2]"):
        state["body"] = body
        with pytest.raises(ClientError) as refused:
            fetch_sector_uris(f"https://sector.test:{port}/sector.json")
        assert str(refused.value) == "sector_identifier_uri must hold a JSON array of URIs"


def test_the_deadline_covers_name_resolution(monkeypatch, caplog):
    """getaddrinfo() has no timeout of its own: a resolver that answers
    slowly (or a name server that the registrant controls) held the fetch
    past its deadline."""
    release = threading.Event()

    def slow_resolve(_host, _port):
        release.wait(10)
        return ["192.0.2.1"]

    monkeypatch.setattr(sector, "resolve", slow_resolve)
    monkeypatch.setattr(sector, "FETCH_DEADLINE", 0.5)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="idp.clients.sector"), \
                pytest.raises(SectorError) as refused:
            fetch_redirect_uris("https://slow-dns.example.test/sector.json")
        assert time.monotonic() - started < 2
    finally:
        release.set()
    assert str(refused.value) == UNFETCHABLE
    assert any(r.getMessage().endswith("not fetched: the deadline") for r in caplog.records)
