"""Pages in Chinese say everything in Chinese: error codes get a sentence
(the code stays in small print), registry answers are words, times are in
the province's time zone, and the consent page names the host the answer
goes to."""

from __future__ import annotations

import re
from datetime import datetime
from html import unescape

import requests

from tests.helpers import CHECKOUT, Browser
from tests.integration.test_step_up import level_2_account

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Accept-Language": "en-US"}


def alert(html: str) -> str:
    return unescape(re.search(r'<p class="alert" role="alert">(.*?)</p>', html, re.S).group(1))


def small_print(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", re.search(r'<p class="small">(.*?)</p>', html,
                                                      re.S).group(1)))


def test_protocol_error_page_in_chinese(provider):
    client = provider.create_client()
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": "https://elsewhere.example.test/cb", "scope": "openid"}
    page = requests.get(f"{provider.url}/authorize", params=params, headers=ZH)
    assert page.status_code == 400 and "Location" not in page.headers
    assert alert(page.text) == "应用发来的请求无效。"
    # The code (and Authlib's English description) only in small print.
    small = small_print(page.text)
    assert small.startswith("错误代码： invalid_request · ")
    assert "redirect" in small.lower()
    assert '<a href="/">首页</a>' in page.text
    english = requests.get(f"{provider.url}/authorize", params=params, headers=EN)
    assert alert(english.text) == "The application sent a request that is not valid."
    assert small_print(english.text).startswith("Error code: invalid_request")


def test_authorize_without_parameters_in_both_languages(provider):
    """Regression: the page's small print read "response_type=The response
    type 'None' is not supported by the server. is not supported"."""
    chinese = requests.get(f"{provider.url}/authorize", headers=ZH)
    assert chinese.status_code == 400 and "Location" not in chinese.headers
    assert alert(chinese.text) == "应用发来的请求无效。"
    assert small_print(chinese.text) == "错误代码： invalid_request · response_type is missing"
    english = requests.get(f"{provider.url}/authorize", headers=EN)
    assert small_print(english.text) == "Error code: invalid_request · response_type is missing"
    token = requests.get(f"{provider.url}/authorize", params={"response_type": "token"},
                         headers=EN)
    assert token.status_code == 400
    assert alert(token.text) == ("The application asked for a kind of answer this service "
                                 "does not give.")
    assert small_print(token.text) == ("Error code: unsupported_response_type · The response "
                                       "type 'token' is not supported.")


def test_every_page_error_code_has_a_chinese_sentence(provider):
    from flask import render_template

    from idp.i18n import ERROR_SENTENCES, error_sentence

    codes = ["invalid_request", "invalid_client", "invalid_scope", "unauthorized_client",
             "unsupported_response_type", "access_denied", "server_error",
             "temporarily_unavailable", "login_required", "consent_required",
             "interaction_required", "request_not_supported", "request_uri_not_supported",
             "unmet_authentication_requirements", "interaction_expired", "csrf",
             "account_changed", "invalid_ticket", "400", "404", "405", "413", "429", "500"]
    assert sorted(ERROR_SENTENCES) == sorted(codes)
    sentences = {}
    with provider.app.test_request_context(headers=ZH):
        for code in codes:
            sentence = error_sentence(code)
            assert sentence and not re.search(r"[A-Za-z]{3}", sentence), (code, sentence)
            sentences[code] = sentence
        page = render_template("error.html", error="access_denied",
                               description="The resource owner denied the request.")
    assert sentences["access_denied"] == "访问已被拒绝。"
    assert alert(page) == "访问已被拒绝。"
    assert small_print(page) == "错误代码： access_denied · The resource owner denied the request."


def test_unknown_pages_and_expired_requests_in_chinese(provider):
    missing = requests.get(f"{provider.url}/no-such-page", headers=ZH)
    assert missing.status_code == 404 and alert(missing.text) == "页面不存在。"
    assert small_print(missing.text) == "错误代码： 404 · Not Found"
    expired = requests.get(f"{provider.url}/authorize/resume", params={"i": "x"}, headers=ZH)
    assert alert(expired.text) == "此登录请求已过期，请返回应用重新开始。"
    # The view's own description is the sentence: it is not repeated.
    assert small_print(expired.text) == "错误代码： interaction_expired"


def _evidence_at(provider, username: str, verified_at: datetime, expires_at: datetime) -> None:
    from idp.accounts.models import VerificationEvidence
    from idp.accounts.service import find_by_username
    from idp.extensions import db

    with provider.app.app_context():
        account = find_by_username(username)
        item = db.session.query(VerificationEvidence).filter_by(account_id=account.id).one()
        item.verified_at, item.expires_at = verified_at, expires_at
        db.session.commit()


def test_console_shows_registry_words_and_local_times(gw):
    provider, gateway = gw
    username, password, _person = level_2_account(provider, gateway)
    _evidence_at(provider, username, datetime(2026, 1, 1, 16, 30),
                 datetime(2027, 12, 31, 20, 0))
    browser = Browser(provider.url)
    browser.session.headers.update(ZH)
    page = browser.go(f"{provider.url}/account", username=username, password=password)
    assert page.status_code == 200 and "/account" in page.url
    row = re.search(r'<tr data-method="population_registry".*?</tr>', page.text, re.S).group(0)
    assert '<td data-label="结果" data-result="match">一致</td>' in row
    # 2026-01-01 16:30 UTC is 2026-01-02 00:30 in Asia/Shanghai (UTC+8).
    assert '<time datetime="2026-01-01T16:30:00Z">2026-01-02 00:30</time>' in row
    assert '<td data-label="有效期至">2028-01-01</td>' in row
    assert "<th>时间（中国时间）</th>" in page.text
    browser.session.headers.update(EN)
    english = browser.session.get(f"{provider.url}/account").text
    assert '<td data-label="Result" data-result="match">Matches</td>' in english
    assert "<th>When (China Time)</th>" in english


def test_registry_answers_are_words(provider):
    from connectors.registries import (
        CardStatus,
        CarrierResult,
        FaceDecision,
        LegalEntityResult,
        PopulationResult,
    )
    from idp.i18n import registry_answer

    answers = {member.value for enum in (PopulationResult, LegalEntityResult, CardStatus,
                                         CarrierResult, FaceDecision) for member in enum}
    with provider.app.test_request_context(headers=ZH):
        for value in answers:
            word = registry_answer(value)
            assert word != value and not re.search(r"[A-Za-z]", word), (value, word)
        assert registry_answer("lost") == "卡已挂失"
        # An answer without a word is shown as it is.
        assert registry_answer("something_new") == "something_new"


def test_consent_names_the_host_that_receives_the_answer(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False,
                                    redirect_uri="https://civil.example.gov.cn/oidc/callback")
    browser = Browser(provider.url)
    page = browser.go(browser.authorize_url(client), username=username, password=password,
                      consent="")
    assert "/consent" in page.url
    assert ('<p class="destination"><strong class="host">civil.example.gov.cn</strong> '
            "will receive this information.</p>") in page.text
    browser.session.headers.update(ZH)
    chinese = browser.go(browser.authorize_url(client), consent="")
    assert ('<p class="destination"><strong class="host">civil.example.gov.cn</strong> '
            "将收到这些信息。</p>") in chinese.text


def test_brackets_are_full_width_in_chinese(gw):
    """Regression: /account showed "(未核验)" after an unverified e-mail
    address and the step-up page "L3 (已强实名核验)", in ASCII brackets,
    while /account/email says "（未验证）"."""
    from idp.accounts.service import find_by_username, set_phone_number
    from idp.extensions import db

    provider, gateway = gw
    username, password, _ = provider.create_account(email="brackets@example.test")
    with provider.app.app_context():
        set_phone_number(provider.runtime, find_by_username(username), "+8613700990001",
                         verified=False)
        db.session.commit()
    browser = Browser(provider.url)
    browser.session.headers.update(ZH)
    page = browser.go(f"{provider.url}/account", username=username, password=password).text
    assert '<dd id="email">brackets@example.test（未验证）' in page
    assert "137****0001（未确认）" in page
    browser.session.headers.update(EN)
    english = browser.session.get(f"{provider.url}/account").text
    assert '<dd id="email">brackets@example.test (not verified)' in english
    assert "137****0001 (not confirmed)" in english

    username, password, _person = level_2_account(provider, gateway)
    client = provider.create_client()
    browser = Browser(provider.url)
    browser.session.headers.update(ZH)
    step_up = browser.go(browser.authorize_url(client, acr_values="L3"), username=username,
                         password=password)
    assert "/login/step-up" in step_up.url
    lead = unescape(re.search(r'<p class="lead">(.*?)</p>', step_up.text, re.S).group(1))
    assert lead.endswith("需要可信等级 L3（已强实名核验）；本次登录为 L2（已实名核验）。")


def _chinese_catalog():
    from babel.messages.pofile import read_po

    from idp.i18n import SOURCE

    with (SOURCE / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po)


def _translations(message) -> tuple[str, ...]:
    """A catalog entry's translations (one per plural form), or ``("",)``."""
    if message is None:
        return ("",)
    return message.string if isinstance(message.string, tuple) else (message.string,)


def test_every_page_text_has_a_chinese_translation():
    """Every message the code and the templates give Flask-Babel (babel.cfg,
    the keywords of the README's extract command) is translated: one that
    is not shows in English on a Chinese page."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (CHECKOUT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    catalog = _chinese_catalog()
    found, missing = 0, []
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(CHECKOUT), method_map, options_map,
            keywords=dict(DEFAULT_KEYWORDS, _l=None)):
        msgid = message if isinstance(message, str) else message[0]
        found += 1
        if not all(_translations(catalog.get(msgid))):
            missing.append(msgid)
    assert found > 300 and missing == []


def test_chinese_translations_bracket_in_full_width():
    """Brackets in Chinese text are full-width （）, as on /account/email's
    "（未验证）"; only the placeholders %(name)s keep ASCII ones."""
    for message in _chinese_catalog():
        if not message.id:
            continue
        for text in _translations(message):
            bare = re.sub(r"%\(\w+\)[sd]", "", text)
            assert "(" not in bare and ")" not in bare, (message.id, text)
