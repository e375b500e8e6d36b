"""Contract suite of the mail connector: :class:`connectors.mail.SmtpMailer`
against the sandbox's SMTP receiver over real SMTP on 127.0.0.1, in each
security mode (plain, STARTTLS, implicit TLS, with a login), and its
failures (refused recipient, unreachable or silent relay, a certificate
that does not verify, STARTTLS not offered, header injection)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.mail import MailGatewayError, SmtpMailer, from_settings
from connectors.sandbox import read_mail, seed
from tests.conftest import free_port
from tests.contracts.test_registries import signed
from tests.sandbox_support import Gateway, start_sandbox, start_smtp

SENDER = "no-reply@idp.example.test"


@dataclass
class Pki:
    """A test certificate authority and a server certificate it issued for
    127.0.0.1 (IP address only: a connection to "localhost" does not match)."""

    ca_file: str
    server: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory: Path = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test relay CA"))
          .issuer_name(_name("Test relay CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("relay"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "server.pem", directory / "server.key")
    return Pki(str(directory / "ca.pem"), server)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[Gateway]:
    """The sandbox gateway with its plain SMTP receiver, as the demo runs it."""
    live = start_sandbox(tmp_path_factory.mktemp("mail-sandbox"), smtp=True)
    yield live
    live.stop()


@pytest.fixture
def dataset(tmp_path) -> str:
    """A fresh dataset for a receiver started by the test itself."""
    path = str(tmp_path / "sandbox.sqlite3")
    seed(path, people=9, entities=3)
    return path


@pytest.fixture
def receiver(dataset, request):
    """Start an SMTP receiver over ``dataset`` with the given options; stopped after."""
    started = []

    def start(**options):
        smtp = start_smtp(dataset, **options)
        started.append(smtp)
        return smtp

    yield start
    for smtp in started:
        smtp.stop()


def plain(port: int, **options) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", port, SENDER, security="none", **options)


def test_delivers_a_utf8_message_and_returns_its_id(sandbox):
    text = "请打开这个链接确认：\nhttps://id.example.test/account/email/confirm/abc\n"
    message_id = plain(sandbox.smtp_port).send("li.na@example.test", "确认您的电子邮件地址", text)
    assert message_id.startswith("<") and message_id.endswith("@idp.example.test>")
    [mail] = read_mail(sandbox.data_path, "Li.Na@example.test")
    assert (mail["message_id"], mail["mail_from"], mail["rcpt"]) == (
        message_id, SENDER, "li.na@example.test")
    assert mail["subject"] == "确认您的电子邮件地址" and mail["body"] == text
    # The same mail through the sandbox gateway's signed JSON endpoint.
    answer = signed(sandbox, "GET", "/mail/v1/outbox", query="to=li.na%40example.test")
    assert answer.status_code == 200
    assert [m["message_id"] for m in answer.json()["messages"]] == [message_id]
    unsigned = signed(sandbox, "GET", "/mail/v1/outbox", query="to=li.na%40example.test",
                      secret="wrong")
    assert unsigned.status_code == 401 and unsigned.json() == {"error": "bad_signature"}


def test_each_message_gets_its_own_id(sandbox):
    mailer = plain(sandbox.smtp_port)
    first = mailer.send("twice@example.test", "One", "1")
    second = mailer.send("twice@example.test", "Two", "2")
    assert first != second
    assert [m["subject"] for m in read_mail(sandbox.data_path, "twice@example.test")] == [
        "One", "Two"]


def test_a_refused_recipient_is_an_error(sandbox):
    with pytest.raises(MailGatewayError) as info:
        plain(sandbox.smtp_port).send("nobody@example.invalid", "Hello", "text")
    assert str(info.value) == "mail relay 127.0.0.1: recipient refused (550)"
    assert read_mail(sandbox.data_path, "nobody@example.invalid") == []


@pytest.mark.parametrize("to,subject", [
    ("victim@example.test\r\nBcc: many@example.test", "Hello"),
    ("victim@example.test", "Hello\nBcc: many@example.test"),
    ("victim@example.test", "Hello\rX-Injected: yes"),
])
def test_header_injection_is_refused(sandbox, to, subject):
    with pytest.raises(ValueError, match="must be one line"):
        plain(sandbox.smtp_port).send(to, subject, "text")
    assert read_mail(sandbox.data_path, "many@example.test") == []
    assert read_mail(sandbox.data_path, "victim@example.test") == []


def test_an_unreachable_relay_is_an_error():
    port = free_port()  # nothing listens there
    with pytest.raises(MailGatewayError) as info:
        plain(port, timeout=2).send("a@example.test", "Hello", "text")
    assert str(info.value) == "mail relay 127.0.0.1: connection failed (ConnectionRefusedError)"


def test_a_silent_relay_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete, but no greeting ever comes
        started = time.monotonic()
        with pytest.raises(MailGatewayError) as info:
            plain(silent.getsockname()[1], timeout=0.5).send("a@example.test", "Hi", "text")
        assert time.monotonic() - started < 5
    assert str(info.value) == "mail relay 127.0.0.1: connection timed out"


def test_starttls_verifies_the_relay(receiver, dataset, pki):
    smtp = receiver(tls_context=pki.server)
    SmtpMailer("127.0.0.1", smtp.port, SENDER, security="starttls", ca_file=pki.ca_file,
               timeout=5).send("tls@example.test", "Over TLS", "text")
    assert [m["subject"] for m in read_mail(dataset, "tls@example.test")] == ["Over TLS"]
    # Without the test CA the certificate does not verify: nothing is sent.
    with pytest.raises(MailGatewayError) as info:
        SmtpMailer("127.0.0.1", smtp.port, SENDER, security="starttls",
                   timeout=5).send("tls@example.test", "Unverified", "text")
    assert str(info.value) == "mail relay 127.0.0.1: TLS failed (CERTIFICATE_VERIFY_FAILED)"
    # The certificate names 127.0.0.1, not localhost: the host name is checked.
    with pytest.raises(MailGatewayError) as info:
        SmtpMailer("localhost", smtp.port, SENDER, security="starttls", ca_file=pki.ca_file,
                   timeout=5).send("tls@example.test", "Wrong name", "text")
    assert "TLS failed (CERTIFICATE_VERIFY_FAILED)" in str(info.value)
    assert [m["subject"] for m in read_mail(dataset, "tls@example.test")] == ["Over TLS"]


def test_starttls_is_never_downgraded(receiver, dataset):
    smtp = receiver()  # offers no STARTTLS
    with pytest.raises(MailGatewayError) as info:
        SmtpMailer("127.0.0.1", smtp.port, SENDER, security="starttls",
                   timeout=5).send("plain@example.test", "Hello", "text")
    assert str(info.value) == ("mail relay 127.0.0.1: connection needs an extension the relay "
                               "does not offer (STARTTLS, AUTH or SMTPUTF8)")
    assert read_mail(dataset, "plain@example.test") == []


def test_implicit_tls(receiver, dataset, pki):
    smtp = receiver(tls_context=pki.server, implicit_tls=True)
    SmtpMailer("127.0.0.1", smtp.port, SENDER, security="tls", ca_file=pki.ca_file,
               timeout=5).send("implicit@example.test", "Implicit", "text")
    assert [m["subject"] for m in read_mail(dataset, "implicit@example.test")] == ["Implicit"]


def test_login(receiver, dataset, pki):
    smtp = receiver(tls_context=pki.server, credentials={"relay-user": "relay-pass"})

    def mailer(**login) -> SmtpMailer:
        return SmtpMailer("127.0.0.1", smtp.port, SENDER, security="starttls",
                          ca_file=pki.ca_file, timeout=5, **login)

    mailer(username="relay-user", password="relay-pass").send("auth@example.test", "In", "t")
    with pytest.raises(MailGatewayError) as info:
        mailer(username="relay-user", password="wrong").send("auth@example.test", "No", "t")
    assert str(info.value) == "mail relay 127.0.0.1: login refused (535)"
    with pytest.raises(MailGatewayError) as info:
        mailer().send("auth@example.test", "Anonymous", "t")
    assert str(info.value) == "mail relay 127.0.0.1: delivery refused (530)"
    assert [m["subject"] for m in read_mail(dataset, "auth@example.test")] == ["In"]


def test_a_login_needs_tls():
    with pytest.raises(ValueError, match="needs TLS"):
        SmtpMailer("127.0.0.1", 25, SENDER, security="none", username="u", password="p")


def test_the_password_stays_out_of_repr():
    mailer = SmtpMailer("relay.example.test", 587, SENDER, username="u", password="s3cret-pw")
    assert "s3cret-pw" not in repr(mailer) and "relay.example.test" in repr(mailer)


def _settings(mode: str = "development", **mail) -> dict:
    defaults = {"host": "", "port": 587, "security": "starttls", "username": "",
                "password": "", "ca_file": "", "from_address": SENDER, "timeout": 10.0}
    return {"mode": mode, "mail": {**defaults, **mail}}


def test_from_settings():
    assert from_settings(_settings()) is None
    mailer = from_settings(_settings(host="relay.example.test", port=465, security="tls"))
    assert (mailer.host, mailer.port, mailer.security) == ("relay.example.test", 465, "tls")
    # Plain SMTP in production only to a relay on this machine.
    assert from_settings(_settings("production", host="127.0.0.1", security="none"))
    with pytest.raises(ValueError, match="only to a relay on this machine"):
        from_settings(_settings("production", host="relay.example.test", security="none"))
    with pytest.raises(ValueError, match="setting mail.ca_file: cannot load /nonexistent.pem"):
        from_settings(_settings(host="relay.example.test", ca_file="/nonexistent.pem"))
    with pytest.raises(ValueError, match="setting mail: mail security must be one of"):
        from_settings(_settings(host="relay.example.test", security="ssl"))


def test_the_mail_page_links_urls_and_escapes_the_rest(receiver, dataset):
    from connectors.sandbox import create_sandbox

    smtp = receiver()
    plain(smtp.port).send("page@example.test", "<b>Subject</b>",
                          "Open https://id.example.test/confirm/abc_-1 now.\n"
                          "<script>alert(1)</script> \"https://x.test/\"onmouseover=x\n")
    page = create_sandbox(dataset, {"k": "s"}, outbox_page=True).test_client().get("/mail")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert ('<a href="https://id.example.test/confirm/abc_-1">'
            'https://id.example.test/confirm/abc_-1</a>') in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>Subject</b>" not in html and "&lt;b&gt;Subject&lt;/b&gt;" in html
    assert '<a href="https://x.test/">https://x.test/</a>&#34;onmouseover=x' in html
    without = create_sandbox(dataset, {"k": "s"}).test_client().get("/mail")
    assert without.status_code == 401  # no page without --outbox-page: a signed endpoint
