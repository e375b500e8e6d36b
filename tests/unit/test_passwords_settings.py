"""Settings of the per-IP count of new passwords checked at the SMS reset."""

from __future__ import annotations

import pytest

from idp.config import ConfigError, load_settings


def test_defaults(tmp_path):
    throttle = load_settings({"instance_path": str(tmp_path)}, environ={})["throttle"]
    assert (throttle["password_checks_per_ip"], throttle["password_check_window"]) == (30, 3600)


@pytest.mark.parametrize("name", ["password_checks_per_ip", "password_check_window"])
def test_a_count_or_window_below_one_stops_the_start(tmp_path, name):
    with pytest.raises(ConfigError, match=f"setting throttle.{name} must be at least 1"):
        load_settings({"instance_path": str(tmp_path), "throttle": {name: 0}}, environ={})
