"""Legal entities: an account at level 2 proves it is an entity's legal
representative; the legal-entity registry matches the credit code, the
entity's name and the account's verified name and ID number together."""

from __future__ import annotations

import json

import pytest

from connectors.sandbox import DEMO_ENTITIES
from tests.helpers import Browser, hidden_inputs
from tests.integration.test_account_admin import cli
from tests.sandbox_support import fresh_entity

REVOKED = DEMO_ENTITIES[1]


@pytest.fixture(scope="module")
def representative(gw):
    """A browser signed in to an account verified as the legal
    representative of an active entity: ``(browser, username, entity)``."""
    from idp.accounts.service import find_by_username
    from idp.accounts.verification import verify_population

    provider, gateway = gw
    entity, person = fresh_entity(gateway)
    username, password, _ = provider.create_account()
    with provider.app.app_context():
        verify_population(provider.runtime, find_by_username(username), person.name,
                          person.id_number, None)
    browser = Browser(provider.url)
    browser.go(f"{provider.url}/account", username=username, password=password)
    return browser, username, entity


def confirm(browser, uscc, name):
    url = f"{browser.base}/account/entities"
    data = hidden_inputs(browser.session.get(url).text)
    data.update(uscc=uscc, entity_name=name)
    return browser.session.post(url, data=data, allow_redirects=False)


def test_legal_representative_confirmed(gw, representative):
    provider, gateway = gw
    browser, username, entity = representative
    done = confirm(browser, entity.uscc.lower(), entity.name)
    assert done.status_code == 303
    page = browser.session.get(f"{provider.url}/account/entities").text
    assert f'data-uscc="{entity.uscc}" data-level="2"' in page
    shown = json.loads(cli(provider, gateway, "users", "show", username, "--json").output)
    assert shown["entities"] == [{"uscc": entity.uscc, "name": entity.name,
                                  "role": "legal_representative", "level": 2}]


def test_refusals(gw, representative):
    _provider, gateway = gw
    browser, _, entity = representative
    other, _ = fresh_entity(gateway)
    for uscc, name, message in (
            (other.uscc, other.name, "legal representative"),
            (entity.uscc, "别的公司", "does not match"),
            (REVOKED.uscc, REVOKED.name, "revoked"),
            ("91350100M000100Y44", "任意", "check character")):
        refused = confirm(browser, uscc, name)
        assert refused.status_code in (400, 422) and message in refused.text, message
        assert name in refused.text  # what was typed is kept


def test_needs_a_verified_identity(gw):
    provider, _ = gw
    username, password, _ = provider.create_account()
    browser = Browser(provider.url)
    page = browser.go(f"{provider.url}/account/entities", username=username,
                      password=password)
    assert "First verify" in page.text and 'name="uscc"' not in page.text
