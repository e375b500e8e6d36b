"""Settings of the pages: their theme, the time zone they show times in, and
the idle limit of a public computer's session."""

from __future__ import annotations

import pytest

from idp.config import ConfigError, load_settings


def test_defaults(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path)}, environ={})
    assert settings["timezone"] == "Asia/Shanghai"
    assert settings["session"]["public_idle_ttl"] == 900


def test_time_zone_from_the_environment(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path)},
                             environ={"IDP_TIMEZONE": "Asia/Urumqi"})
    assert settings["timezone"] == "Asia/Urumqi"


def test_invalid_page_settings_stop_the_start(tmp_path):
    with pytest.raises(ConfigError, match="setting timezone: 'Asia/Beijing' is not an IANA"):
        load_settings({"instance_path": str(tmp_path)}, environ={"IDP_TIMEZONE": "Asia/Beijing"})
    with pytest.raises(ConfigError, match="session.public_idle_ttl must be at least 1"):
        load_settings({"instance_path": str(tmp_path), "session": {"public_idle_ttl": 0}},
                      environ={})


@pytest.mark.parametrize("theme", ["plum", "../themes/default", "__pycache__", ""])
def test_an_unknown_theme_stops_the_start(tmp_path, theme):
    """A theme that is not a folder of templates under themes/ used to start a
    provider whose every page failed."""
    with pytest.raises(ConfigError, match=f"setting theme: no theme {theme!r}"):
        load_settings({"instance_path": str(tmp_path)}, environ={"IDP_THEME": theme})
