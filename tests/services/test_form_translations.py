"""WTForms' own messages are in the page's language, from a catalog read
once per process and language (Flask-WTF read it from disk for every
request that built a form: issue 9, password login against argon2id)."""

from __future__ import annotations

import re
from html import unescape

import pytest

from tests.helpers import hidden_inputs

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Accept-Language": "en-US"}


def required_errors(html: str) -> list[str]:
    return [unescape(e) for e in re.findall(r'<p class="error" role="alert">(.*?)</p>', html,
                                            re.S)]


@pytest.fixture
def loads(monkeypatch) -> list[tuple]:
    """Every catalog read from disk, with the cache emptied first."""
    from babel import support

    from idp import i18n

    calls: list[tuple] = []
    real = support.Translations.load

    def counted(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    i18n._wtforms_catalog.cache_clear()
    monkeypatch.setattr(support.Translations, "load", counted)
    yield calls
    i18n._wtforms_catalog.cache_clear()


def post_empty_login(app, headers: dict[str, str]) -> str:
    browser = app.test_client()
    form = hidden_inputs(browser.get("/login", headers=headers).text)
    page = browser.post("/login", data={**form, "username": "", "password": ""},
                        headers=headers)
    assert page.status_code == 400
    return page.text


def test_required_field_messages_in_each_language(idp, loads):
    assert "该字段是必填字段。" in required_errors(post_empty_login(idp.app, ZH))
    assert "This field is required." in required_errors(post_empty_login(idp.app, EN))


def test_each_catalog_is_read_once(idp, loads):
    for _ in range(3):
        post_empty_login(idp.app, ZH)
        post_empty_login(idp.app, EN)
    read = sorted(str(locale) for args, _kwargs in loads for locale in args[1])
    assert read == ["en", "zh"]
