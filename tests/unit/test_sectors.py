"""Pairwise sectors of redirect URIs (OIDC Core §8.1, §17.3; RFC 8252 §7):
a loopback host or a private-use scheme never groups clients of different
owners (idp.clients.metadata.sector_for)."""

from __future__ import annotations

import pytest

from idp.clients.metadata import ClientError, is_loopback_host, redirect_destination, sector_for


@pytest.mark.parametrize("uris,sector", [
    (["https://rp.example.test/a", "https://rp.example.test/b"], "rp.example.test"),
    (["https://RP.Example.Test:8443/cb"], "rp.example.test"),
    # The user's own machine: a sector of the client's own (its client_id).
    (["http://127.0.0.1/cb"], None),
    (["http://127.0.0.1/cb", "http://[::1]/cb", "http://localhost/cb"], None),
    (["https://127.0.0.2/cb"], None),
    (["https://app.localhost/cb"], None),
    (["https://[::ffff:127.0.0.1]/cb"], None),
    # A private-use scheme: its own name, written so it is never a host name.
    (["cn.example.app:/cb"], "cn.example.app:"),
    (["cn.example.other://rp.example.test/cb"], "cn.example.other:"),
    (["CN.Example.App:/cb", "cn.example.app://any.host/cb"], "cn.example.app:"),
])
def test_sector(uris, sector):
    assert sector_for(uris, None) == sector


@pytest.mark.parametrize("uris", [
    ["http://127.0.0.1/cb", "https://rp.example.test/cb"],
    ["cn.example.app:/cb", "https://rp.example.test/cb"],
    ["com.example.app:/cb", "https://com.example.app/cb"],
    ["cn.example.app:/cb", "http://127.0.0.1/cb"],
])
def test_redirect_uris_of_several_sectors_need_a_sector_identifier_uri(uris):
    with pytest.raises(ClientError, match="several hosts"):
        sector_for(uris, None)


def test_a_sector_identifier_uri_groups_loopback_clients():
    uri = "https://sector.example.test/apps.json"
    listed = ["http://127.0.0.1/tax/cb", "cn.example.tax:/cb"]
    assert sector_for(listed, uri, fetch=lambda _uri: listed) == "sector.example.test"


@pytest.mark.parametrize("uri,destination", [
    ("https://rp.example.test/cb", "rp.example.test"),
    ("http://127.0.0.1:8400/cb", "127.0.0.1"),
    ("cn.example.other://rp.example.test/cb", "cn.example.other"),
    ("com.example.app:/cb", "com.example.app"),
    ("", None),
])
def test_redirect_destination(uri, destination):
    assert redirect_destination(uri) == destination


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("LOCALHOST.", True), ("a.localhost", True), ("::ffff:127.0.0.1", True),
    ("fe80::1%lo", False), ("10.0.0.1", False), ("localhost.example.test", False),
    ("rp.example.test", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback
