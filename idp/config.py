"""Settings: ``config/default.toml``, then the file named by ``IDP_CONFIG``,
then ``IDP_*`` environment variables; unknown keys are warned, production
secrets enforced, and the result frozen.

``config/`` and ``themes/`` are read as the packages ``idp.defaults`` and
``idp.themes`` (setup.py maps them into ``idp``), so an installed wheel finds
them as a source checkout does.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tomllib
import warnings
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any

SECRET_KEYS = ("secret_key", "key_encryption_key", "token_hmac_key", "pii_keys",
               "pii_index_key", "pairwise_key")
SIGNING_ALGS = ("ES256", "ES384", "RS256", "RS512", "EdDSA")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the setting."""


def _merge(base: dict, extra: Mapping, path: str) -> None:
    for key, value in extra.items():
        if key not in base:
            warnings.warn(f"unknown setting {path}{key} ignored", stacklevel=3)
            continue
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"setting {path}{key} must be a table")
            _merge(base[key], value, f"{path}{key}.")
        else:
            base[key] = _coerce(base[key], value, f"{path}{key}")


def _coerce(default: Any, value: Any, name: str) -> Any:
    """Convert ``value`` (from TOML or an environment string) to the default's type."""
    target = type(default)
    if target is list:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"setting {name} must be a list of strings")
        return value
    if isinstance(value, target) and not (target is int and isinstance(value, bool)):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"setting {name} must be of type {target.__name__}")
    try:
        if target is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        return target(value)
    except ValueError as exc:
        raise ConfigError(f"setting {name}: {value!r} is not a valid {target.__name__}") from exc


def _env_overrides(environ: Mapping[str, str], defaults: dict) -> dict:
    """Map ``IDP_KEY`` and ``IDP_SECTION__KEY`` variables onto the settings tree."""
    out: dict = {}
    for name, value in environ.items():
        if not name.startswith("IDP_") or name in ("IDP_CONFIG",) or name.startswith("IDP_TEST_"):
            continue
        parts = name[4:].lower().split("__")
        node = defaults
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node = None
                break
            node = node[part]
        if node is None or parts[-1] not in node:
            warnings.warn(f"unknown environment setting {name} ignored", stacklevel=3)
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


def _freeze(tree: dict) -> Mapping[str, Any]:
    return MappingProxyType(
        {k: _freeze(v) if isinstance(v, dict) else v for k, v in tree.items()}
    )


def _validate(settings: dict) -> None:
    issuer = settings["issuer"]
    if not issuer.startswith(("https://", "http://")) or issuer.endswith("/") or "?" in issuer:
        raise ConfigError(
            "setting issuer must be an http(s) URL without query or trailing slash"
        )
    if settings["mode"] not in ("development", "production"):
        raise ConfigError("setting mode must be 'development' or 'production'")
    for name in ("default_signing_alg", "access_token_signing_alg"):
        if settings["tokens"][name] not in SIGNING_ALGS:
            raise ConfigError(f"setting tokens.{name} must be one of {SIGNING_ALGS}")
    if settings["mode"] == "production" and not issuer.startswith("https://"):
        raise ConfigError("setting issuer must be an https URL in production mode")
    tokens = settings["tokens"]
    for name in ("access_token_ttl", "id_token_ttl", "refresh_token_ttl",
                 "authorization_code_ttl", "code_reuse_window", "logout_token_ttl"):
        if tokens[name] < 1:
            raise ConfigError(f"setting tokens.{name} must be at least 1 second")
    if tokens["authorization_code_ttl"] > 600:
        raise ConfigError("setting tokens.authorization_code_ttl must be at most 600 seconds "
                          "(RFC 6749 §4.1.2)")
    longest = max(tokens["access_token_ttl"], tokens["id_token_ttl"],
                  tokens["logout_token_ttl"])
    if settings["keys"]["retired_key_publish_seconds"] < longest:
        raise ConfigError("setting keys.retired_key_publish_seconds must be at least the "
                          f"longest signed token lifetime ({longest} s)")
    for section, name in (("server", "workers"), ("server", "threads"),
                          ("sms", "code_ttl"), ("sms", "max_attempts"), ("sms", "resend_after"),
                          ("sms", "max_resend_wait"), ("sms", "per_number_daily"),
                          ("sms", "per_ip_hourly"), ("mail", "port"),
                          ("mail", "verification_ttl"), ("mail", "resend_after"),
                          ("mail", "per_account_daily"), ("mail", "per_address_daily"),
                          ("mail", "per_ip_hourly"),
                          ("passwords", "max_concurrent_verifications"),
                          ("passwords", "min_length"), ("session", "reauth_ttl")):
        if settings[section][name] < 1:
            raise ConfigError(f"setting {section}.{name} must be at least 1")
    if settings["server"]["protocol_threads"] < 0:
        raise ConfigError("setting server.protocol_threads must not be negative")
    if not 0 <= settings["passwords"]["min_guesses_log10"] <= 20:
        raise ConfigError("setting passwords.min_guesses_log10 must be between 0 and 20")
    if settings["session"]["reauth_hold_after_sms_reset"] < 0:
        raise ConfigError("setting session.reauth_hold_after_sms_reset must not be negative")
    if settings["pii"]["algorithm"] not in ("AES-256-GCM", "SM4-GCM"):
        raise ConfigError("setting pii.algorithm must be AES-256-GCM or SM4-GCM")
    if settings["pii"]["index_algorithm"] not in ("HMAC-SHA256", "HMAC-SM3"):
        raise ConfigError("setting pii.index_algorithm must be HMAC-SHA256 or HMAC-SM3")
    if settings["mail"]["security"] not in ("starttls", "tls", "none"):
        raise ConfigError("setting mail.security must be starttls, tls or none")
    if settings["mail"]["timeout"] <= 0:
        raise ConfigError("setting mail.timeout must be more than 0 seconds")
    if settings["trusted_proxies"] < 0:
        raise ConfigError("setting trusted_proxies must not be negative")
    _validate_assurance(settings["assurance"])
    _validate_limits(settings["throttle"], settings["sms"])
    _validate_password_checks(settings["throttle"])
    _validate_pages(settings)


def _validate_limits(throttle: dict, sms: dict) -> None:
    for name in ("account_failures", "account_window", "device_failures", "first_delay",
                 "max_delay", "device_cookie_ttl", "device_cookie_accounts", "ip_failures",
                 "ip_window"):
        if throttle[name] < 1:
            raise ConfigError(f"setting throttle.{name} must be at least 1")
    if throttle["max_delay"] < throttle["first_delay"]:
        raise ConfigError("setting throttle.max_delay must be at least throttle.first_delay")
    if sms["own_number_hourly"] < 0:
        raise ConfigError("setting sms.own_number_hourly must not be negative")
    for name in ("global_hourly_budget", "prefix_hourly_budget", "prefix_digits",
                 "notice_interval"):
        if sms[name] < 1:
            raise ConfigError(f"setting sms.{name} must be at least 1")
    codes = sms["allowed_country_codes"]
    if not codes or not all(c.isascii() and c.isdigit() and 1 <= len(c) <= 3 and c[0] != "0"
                            for c in codes):
        raise ConfigError("setting sms.allowed_country_codes must list country calling codes "
                          "without \"+\", e.g. [\"86\"]")


def _validate_password_checks(throttle: dict) -> None:
    """The per-IP count of new passwords checked at the SMS reset."""
    for name in ("password_checks_per_ip", "password_check_window"):
        if throttle[name] < 1:
            raise ConfigError(f"setting throttle.{name} must be at least 1")


def theme_folder(name: str) -> Path:
    """The folder of the theme ``name`` (``themes/<name>``), which holds its
    ``templates/`` and ``static/`` folders.

    Flask and Jinja read a theme from a folder, so the package must be
    installed unpacked, as pip installs a wheel.

    :raises ConfigError: when there is no theme ``name`` (no such folder with
        a ``templates/`` folder).
    """
    folder = Path(str(files("idp.themes") / name))
    if "/" in name or name.startswith((".", "_")) or not (folder / "templates").is_dir():
        raise ConfigError(f"setting theme: no theme {name!r} among the provider's themes")
    return folder


def _validate_pages(settings: dict) -> None:
    """The theme, the public computer's idle limit and the pages' time zone."""
    from babel.dates import get_timezone

    theme_folder(settings["theme"])
    for name in ("public_idle_ttl", "idle_ttl"):
        if settings["session"][name] < 1:
            raise ConfigError(f"setting session.{name} must be at least 1 second")
    logout = settings["logout"]
    for name in ("delivery_timeout", "delivery_attempts", "retry_delay"):
        if logout[name] < 1:
            raise ConfigError(f"setting logout.{name} must be at least 1")
    try:
        get_timezone(settings["timezone"])
    except LookupError:
        raise ConfigError(f"setting timezone: {settings['timezone']!r} is not an IANA time "
                          "zone name (e.g. Asia/Shanghai)") from None


def _validate_assurance(assurance: dict) -> None:
    values = assurance["acr_values"]
    if len(values) != 4 or len(set(values)) != 4 or "0" in values or not all(
            v.isprintable() and " " not in v and 0 < len(v) <= 64 for v in values):
        raise ConfigError("setting assurance.acr_values must be four distinct values without "
                          "spaces (and not \"0\", which OIDC Core reserves)")
    if assurance["level_names"] and len(assurance["level_names"]) != 4:
        raise ConfigError("setting assurance.level_names must be empty or name four levels")
    for name in ("single_factor_max_level", "multi_factor_max_level", "kiosk_max_level"):
        if not 1 <= assurance[name] <= 4:
            raise ConfigError(f"setting assurance.{name} must be between 1 and 4")
    for name in ("checks_per_account_daily", "checks_per_ip_hourly", "claim_ttl"):
        if assurance[name] < 1:
            raise ConfigError(f"setting assurance.{name} must be at least 1")
    for method, days in assurance["validity_days"].items():
        if days < 1:
            raise ConfigError(f"setting assurance.validity_days.{method} must be at least 1")


def _ensure_secrets(settings: dict, instance: Path) -> None:
    """Fill empty secrets: generated and kept under instance/ in development,
    refused in production."""
    values = settings["secrets"]
    missing = [k for k in SECRET_KEYS if not values[k]]
    if not missing:
        return
    if settings["mode"] == "production":
        names = ", ".join(f"secrets.{k} (IDP_SECRETS__{k.upper()})" for k in missing)
        raise ConfigError(f"production mode needs these secrets configured: {names}")
    path = instance / "secrets.json"
    stored: dict = {}
    if path.exists():
        stored = json.loads(path.read_text())
    changed = False
    for key in missing:
        if key not in stored:
            stored[key] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            if key == "pii_keys":
                stored[key] = f"{settings['pii']['active_key']}={stored[key]}"
            changed = True
        values[key] = stored[key]
    if changed:
        instance.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh, indent=2)
        os.replace(tmp, path)


def normalize_database_url(url: str) -> str:
    """Map the common ``postgres://`` and ``postgresql://`` forms onto the
    psycopg 3 driver this package installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def decode_key(value: str, name: str) -> bytes:
    """Decode a base64url secret of at least 32 bytes.

    :raises ConfigError: if ``value`` is not base64url or shorter than 32 bytes.
    """
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError as exc:
        raise ConfigError(f"setting secrets.{name} is not base64url") from exc
    if len(raw) < 32:
        raise ConfigError(f"setting secrets.{name} must decode to at least 32 bytes")
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Mapping[str, Any]:
    """Load the settings tree.

    :param overrides: nested mapping applied last (tests, the demo).
    :param environ: environment to read ``IDP_*`` variables from (default ``os.environ``).
    :returns: a read-only nested mapping with every key of ``config/default.toml``,
        plus derived ``database_url``, ``instance_path`` and the secrets filled in.
    :raises ConfigError: on an invalid value or, in production, a missing secret.
    """
    environ = os.environ if environ is None else environ
    with files("idp.defaults").joinpath("default.toml").open("rb") as fh:
        settings = tomllib.load(fh)
    if environ.get("IDP_CONFIG"):
        try:
            with open(environ["IDP_CONFIG"], "rb") as fh:
                extra = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"IDP_CONFIG: cannot read {environ['IDP_CONFIG']}: "
                              f"{exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"IDP_CONFIG: {environ['IDP_CONFIG']} is not valid TOML: "
                              f"{exc}") from None
        _merge(settings, extra, "")
    _merge(settings, _env_overrides(environ, settings), "")
    if overrides:
        _merge(settings, overrides, "")
    _validate(settings)
    instance = Path(settings["instance_path"] or Path.cwd() / "instance").resolve()
    settings["instance_path"] = str(instance)
    if not settings["database_url"]:
        settings["database_url"] = f"sqlite:///{instance / 'idp.sqlite3'}"
    settings["database_url"] = normalize_database_url(settings["database_url"])
    if settings["mode"] == "production":
        settings["session"]["cookie_secure"] = True
    _ensure_secrets(settings, instance)
    for key in ("key_encryption_key", "token_hmac_key", "pii_index_key", "pairwise_key"):
        decode_key(settings["secrets"][key], key)
    pii_keys(settings)
    return _freeze(settings)


def pii_keys(settings: Mapping[str, Any]) -> dict[str, bytes]:
    """Parse ``secrets.pii_keys`` (``id=base64url,...``) into key id -> bytes.

    :raises ConfigError: on a malformed list, a short key, or a missing active key.
    """
    keys: dict[str, bytes] = {}
    for item in settings["secrets"]["pii_keys"].split(","):
        kid, sep, value = item.strip().partition("=")
        if not sep or not kid.isalnum():
            raise ConfigError("setting secrets.pii_keys must look like 'k1=<base64url>,...'")
        keys[kid] = decode_key(value, f"pii_keys ({kid})")
    if settings["pii"]["active_key"] not in keys:
        raise ConfigError(f"setting pii.active_key {settings['pii']['active_key']!r} names no "
                          "key in secrets.pii_keys")
    return keys
