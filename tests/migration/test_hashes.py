"""Legacy password schemes (migration.hashes): each verifies ``test123``
against a vector made by an independent implementation (case M-PW-6),
never normalises the password (M-PW-4), tries UTF-8 then GBK and reads
MSSQL's UTF-16LE (M-PW-5), and bcrypt verifies a long password as the old
systems did (M-PW-1).

Where the vectors come from:
- digests: ``openssl dgst`` (``-md5``, ``-sha1``, ``-sha256``, ``-sm3``,
  ``-binary | base64``) over ``printf %s``, GBK bytes by ``iconv``;
- ``bigint_hex``: Node's ``BigInt('0x' + hex).toString(16)``, as Java's
  ``BigInteger(1, d).toString(16)`` prints it;
- md5_crypt, sha512_crypt: ``openssl passwd -1`` / ``-6 -salt saltsalt``;
- bcrypt: libxcrypt's ``crypt(3)`` (Python's ``crypt`` module), ``$2y$``,
  ``$2a$``, ``$2b$`` with one salt;
- phpass: openwall phpass's own test vector (``test12345``), and a
  JavaScript port of its ``crypt_private`` that reproduces it;
- Django: Node's ``crypto.pbkdf2Sync(pw, salt, 260000, 32, 'sha256')``;
- MSSQL and ASP.NET Membership: Node's ``createHash(...)`` over
  ``Buffer.from(pw, 'utf16le')`` (after the Base64-decoded salt);
- ASP.NET Identity v2/v3: the blob's layout built in Node around
  ``crypto.pbkdf2Sync`` (v2: SHA-1, 1,000 iterations; v3: SHA-256 with
  10,000 and SHA-512 with 100,000);
- Keycloak: Node's ``pbkdf2Sync`` in an export's credential JSON;
- Shiro: Node's ``createHash`` over the salt's bytes and the password,
  then over the digest, N times in all, in hex or Base64 (and as
  ``$shiro1$`` with a Base64 salt);
- WordPress 6.8: Node's ``createHmac('sha384', 'wp-sha384')`` in Base64,
  then libxcrypt's bcrypt of it, prefixed ``$wp``.
"""

from __future__ import annotations

import re

import pytest

from migration.hashes import ExpressionScheme, SchemeError, scheme_for
from migration.hashes.bcrypt import Bcrypt

PASSWORD = "test123"
#: A Keycloak export's password credential (Node's ``pbkdf2Sync``, 27,500
#: iterations of HMAC-SHA256, 64 bytes), its parts as JSON strings.
KEYCLOAK = ('{"type":"password","secretData":"{\\"value\\":\\"eR6cozmtIIWg5JWmHmG6YVMaN66dk7Mr'
            'Rv+k8mJ1BVY19eqQWOCdLJ83HVi331rP0Ow616mX/8vMZtHVGohJHQ==\\",\\"salt\\":\\"a2V5Y2'
            'xvYWstc2FsdC0xNg==\\",\\"additionalParameters\\":{}}","credentialData":"{\\"hashI'
            'terations\\":27500,\\"algorithm\\":\\"pbkdf2-sha256\\",\\"additionalParamete'
            'rs\\":{}}"}')
MD5 = "cc03e747a6afbbcbf8be7668acfebee5"


@pytest.mark.parametrize(("scheme", "stored", "values"), [
    ("md5(password)", MD5, {}),
    ("md5(password)", MD5.upper(), {}),
    ("upper(md5(password))", MD5.upper(), {}),
    ("sha1(password)", "7288edd0fc3ffcbe93a0cf06e3568e28521687bc", {}),
    ("sha1(password)", "7288EDD0FC3FFCBE93A0CF06E3568E28521687BC", {}),
    ("sha256(password)",
     "ecd71870d1963316a97e3ac3408c9835ad8cf0f3c1bc703527c30265534f75ae", {}),
    ("sha256(password)",
     "ECD71870D1963316A97E3AC3408C9835AD8CF0F3C1BC703527C30265534F75AE", {}),
    ("sm3(password)", "09d3c4e64ed1fe457d91d234fd4def9b19bf4a0382c553c903f6fd538698b0d9", {}),
    # Discuz/UCenter, with a 6-character salt.
    ("md5(md5(password) + salt)", "a071724cdc70c37efd8b78d3c2395016", {"salt": "a1b2c3"}),
    # RuoYi: the login name as the legacy system holds it.
    ("md5(username + password + salt)", "755ef75bb35c9ce4b990eec09f190d8e",
     {"username": "admin", "salt": "111111"}),
    ("base64(sha256(password))", "7NcYcNGWMxapfjrDQIyYNa2M8PPBvHA1J8MCZVNPda4=", {}),
    ("repeat(3, md5(password))", "9dd6023e88f1e5bcf51415d2caa4e031", {}),
    ("sha256('Pp' + password)",
     "53448dfe45614dc6a31a4f52a7bb8ae3381ace14851d4d44cfa189c611bc40ee", {}),
    ("sha256(pepper + password)",
     "53448dfe45614dc6a31a4f52a7bb8ae3381ace14851d4d44cfa189c611bc40ee", {"pepper": "Pp"}),
    ("md5_crypt", "$1$saltsalt$uODog0jKoMVYs4vDW7pRr.", {}),
    ("sha512_crypt", "$6$saltsalt$U5d2t4MFT.Hn/auqLjcfU6R/lm2Y71FvBwABEOht/UpRtNzcFvzGl"
                     "/oU6V38pYgY8ZpicOa.0ESff5jRNylZM.", {}),
    ("bcrypt", "$2y$05$LegacyPhpSaltValue123umeFbsJCDzRE0AqwBHzIKNsuSowyXeKi", {}),
    ("bcrypt", "$2a$05$LegacyPhpSaltValue123umeFbsJCDzRE0AqwBHzIKNsuSowyXeKi", {}),
    ("bcrypt", "$2b$05$LegacyPhpSaltValue123umeFbsJCDzRE0AqwBHzIKNsuSowyXeKi", {}),
    ("phpass", "$P$BLegacy014v3c0Hz7Ak6zIwyLWpn00/", {}),
    ("phpass", "$H$9phpBB3xyN9/J7qtyrMB2qS5TvofWl/", {}),
    ("django_pbkdf2_sha256",
     "pbkdf2_sha256$260000$seasalt1234$VujWEFGLrVaPTmI5YUGjH/oQ43ZIaF7ufCa9wIgXN6c=", {}),
    ("mssql_hashbytes", "0xCDD62A6D790D73588A27AB3635107EF7", {}),
    ("aspnet_identity_v2",
     "AAABAgMEBQYHCAkKCwwNDg8ohYUwltFEqMJ0joBxrSRY+CeyDqdJV6+4XBR8UiNIgg==", {}),
    ("aspnet_identity_v3", "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg9zofRGLIsagKUo3cwoPdnH7pU17g"
                           "eVdy7JNnCOf4Fjhg==", {}),
    ("aspnet_identity_v3", "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg9T0/sKahybnRnGu4vyfg7aWmUJRU"
                           "oQGCgzRMT3oJSFMg==", {}),
    ("aspnet_membership_sha1", "TasEET2cj5QsL929WyEQOz22urs=",
     {"salt": "q1w2e3r4t5y6u7i8o9p0aa=="}),
    ("wordpress", "$wp$2y$05$WordPressSixEightSaltujSCbjvwq3iJ84s6lwVevvWgGEab5046", {}),
    ("wordpress", "$P$BLegacy014v3c0Hz7Ak6zIwyLWpn00/", {}),
    ("shiro(MD5, 2)", "29878c4812ea88a0f50633efd4f5adf2",
     {"salt": "8d78869f470951332959580424d4bf4f"}),
    ("shiro(md5, 2)", "29878C4812EA88A0F50633EFD4F5ADF2",
     {"salt": "8d78869f470951332959580424d4bf4f"}),
    ("shiro(SHA-256, 1024)", "1mwQhuXB5oY63m+OWJ8CAY5kbZKHW+OQ0BH1QDDAlUk=", {"salt": "abc"}),
    ("keycloak_pbkdf2", KEYCLOAK, {}),
    # Spring Security's DelegatingPasswordEncoder: made by Java 17's own
    # MessageDigest and PBKDF2WithHmacSHA256 as Spring's encoders use them.
    ("spring", "{MD5}{g4x2mB9yQ1s=}295ee49f3a0dfdef1a29695d66073e18", {}),
    ("spring", "{SHA-256}{g4x2mB9yQ1s=}74a890b5d0f92033d5c079e78893d17c69f470542cbdbc36d1"
               "4c267020ee81ee", {}),
    ("spring", "{ldap}{SSHA}s5R3AvT0jfL9NbCOxNdtsxRGOCVzYWx0eXNsdA==", {}),
    ("spring", "{pbkdf2@SpringSecurity_v5_8}303132333435363738396162636465664138badce1fb06a0"
               "57a627004b36c546e4431b82cb5c81943b947ee51a28ae80", {}),
    ("spring", "{bcrypt}$2a$05$LegacyPhpSaltValue123umeFbsJCDzRE0AqwBHzIKNsuSowyXeKi", {}),
    # JeecgBoot PasswordUtil: made by Java 17's PBEWithMD5AndDES (its JCE).
    ("jeecg", "9e696f8901e044ba", {"username": "admin", "salt": "RCGTeGiH"}),
    ("jeecg", "9E696F8901E044BA", {"username": "admin", "salt": "RCGTeGiH"}),
    ("shiro", "$shiro1$SHA-256$500000$MDEyMzQ1Njc4OWFiY2RlZg==$uFNDHxVsTE3N7RLeR65HYxFPPyC6jmeGB"
              "4pB08lBcGY=", {}),
])
def test_each_scheme_verifies_its_independent_vector(scheme, stored, values):
    verifier = scheme_for(scheme)
    # nvarchar and .NET strings are UTF-16LE; every other scheme UTF-8 first.
    expected = ("utf-16le" if scheme in ("mssql_hashbytes", "aspnet_membership_sha1")
                else "utf-8")
    assert verifier.verify(PASSWORD, stored, values) == expected
    assert verifier.verify("test124", stored, values) is None
    assert verifier.verify("TEST123", stored, values) is None


def test_the_published_phpass_vector_verifies():
    assert scheme_for("phpass").verify("test12345", "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", {})


def test_bigint_hex_drops_leading_zeros_as_java_does():
    # md5("a") = 0cc175b9...: Java's BigInteger prints it without the 0.
    scheme = scheme_for("bigint_hex(md5(password))")
    assert scheme.verify("a", "cc175b9c0f1b6a831c399e269772661", {}) == "utf-8"
    assert scheme.verify("a", "0cc175b9c0f1b6a831c399e269772661", {}) is None


def test_a_password_is_never_normalised_before_verifying():
    """M-PW-4: a hash of the full-width string verifies only with it."""
    full_width = "ｔｅｓｔ１２３"
    scheme = scheme_for("md5(password)")
    assert scheme.verify(full_width, "f41d0f7daf4bfebba84625d4f8b2f388", {}) == "utf-8"
    assert scheme.verify(PASSWORD, "f41d0f7daf4bfebba84625d4f8b2f388", {}) is None
    assert scheme.verify(full_width, MD5, {}) is None


def test_non_ascii_passwords_try_utf8_then_gbk():
    """M-PW-5: the encoding that matched is the answer."""
    scheme = scheme_for("md5(password)")
    assert scheme.verify("密码123", "d18902dd4cc8df459a9e769dc749888d", {}) == "utf-8"
    assert scheme.verify("密码123", "023b1f07f0a78fc82f15fc1cebe93524", {}) == "gbk"
    # GBK's MD5 begins with 0: Java's BigInteger form of it as well.
    assert scheme_for("bigint_hex(md5(password))").verify(
        "密码123", "23b1f07f0a78fc82f15fc1cebe93524", {}) == "gbk"


def test_mssql_hashbytes_reads_the_nvarchar_utf16le_bytes():
    scheme = scheme_for("mssql_hashbytes")
    assert scheme.verify("密码123", "0x722DD1C9306BBC4808ED2346AA52561CA508816F", {}) \
        == "utf-16le"
    assert scheme.verify("密码123", "722dd1c9306bbc4808ed2346aa52561ca508816f", {}) \
        == "utf-16le"
    assert scheme.verify("密码124", "0x722DD1C9306BBC4808ED2346AA52561CA508816F", {}) is None
    assert scheme.verify("密码123", "0x1234", {}) is None


def test_bcrypt_verifies_a_long_password_by_its_first_72_bytes():
    """M-PW-1: 30 three-byte characters (90 bytes); the old system read 72."""
    stored = "$2y$05$LegacyPhpSaltValue123uMjFEW/dyjXVM.dR3Jqr.15BUike2JJ2"
    long_password = "长" * 30
    assert Bcrypt().verify(long_password, stored, {}) == "utf-8"
    assert Bcrypt().verify("长" * 24 + "短" * 6, stored, {}) == "utf-8"
    assert Bcrypt().verify("长" * 23, stored, {}) is None


@pytest.mark.parametrize("scheme", ["bcrypt", "phpass", "md5_crypt", "sha512_crypt",
                                    "django_pbkdf2_sha256", "mssql_hashbytes",
                                    "aspnet_identity_v2", "aspnet_identity_v3",
                                    "aspnet_membership_sha1", "wordpress", "shiro",
                                    "keycloak_pbkdf2"])
@pytest.mark.parametrize("stored", [MD5, "", "AAAA", "AQAAAAEAACcQ////////", "$wp$nothing",
                                    "not base64 at all!", "[]", '{"secretData": 1}',
                                    KEYCLOAK.replace("27500", "2000000000")])
def test_a_stored_value_of_another_format_is_no_match(scheme, stored):
    assert scheme_for(scheme).verify(PASSWORD, stored, {"salt": "AAAA"}) is None


def test_an_identity_v3_blob_asking_for_too_many_iterations_is_no_match():
    import base64
    import struct

    blob = b"\x01" + struct.pack(">III", 1, 2_000_000_000, 16) + bytes(16) + bytes(32)
    assert scheme_for("aspnet_identity_v3").verify(
        PASSWORD, base64.b64encode(blob).decode(), {}) is None


@pytest.mark.parametrize(("text", "message", "position"), [
    ("md5(password +)", "expected a name, a function or a string, found ')'", 14),
    ("md5(pasword)", "unknown name 'pasword'", 4),
    ("md5(password", "expected ')', found the end", 12),
    ("base64(password)", "expected a digest", 7),
    ("repeat(0, md5(password))", "repeat needs a count from 1 to", 7),
    ("repeat(3 md5(password))", "expected ','", 9),
    ("md5('salt + password)", "unterminated string", 4),
    ("md5(password) md5(salt)", "unexpected 'm'", 14),
    ("md5(salt)", "never reads the password", 0),
    ("__import__('os')", "unknown name '__import__'", 0),
    ("md5(" * 17 + "password" + ")" * 17, "calls nested deeper than 16", 64),
])
def test_a_malformed_expression_names_its_fault_and_position(text, message, position):
    with pytest.raises(SchemeError, match=re.escape(message)) as raised:
        ExpressionScheme(text)
    assert raised.value.position == position
    if position:
        assert f"at position {position + 1}" in str(raised.value)


def test_an_expression_too_long_is_refused():
    with pytest.raises(SchemeError, match="longer than 1000"):
        ExpressionScheme("md5(password" + " + salt" * 200 + ")")


@pytest.mark.parametrize(("text", "message"), [
    ("shiro(MD4, 2)", "unknown algorithm 'MD4'"),
    ("shiro(MD5, 0)", "iterations must be 1 to"),
    ("shiro(MD5, 2000000)", "iterations must be 1 to"),
    ("bcrypt(12)", "takes no parameters"),
])
def test_a_named_scheme_refuses_parameters_it_cannot_use(text, message):
    with pytest.raises(SchemeError, match=re.escape(message)):
        scheme_for(text)


def test_an_unknown_scheme_name_lists_the_known_ones():
    with pytest.raises(SchemeError, match="unknown scheme 'md6'.*bcrypt"):
        scheme_for("md6")


def test_a_field_the_row_lacks_is_an_error_not_a_mismatch():
    with pytest.raises(SchemeError, match="reads salt"):
        scheme_for("md5(password + salt)").verify(PASSWORD, MD5, {"salt": None})
    assert scheme_for("md5(password + salt)").fields == {"password", "salt"}


def test_jeecg_is_keyed_by_the_login_name_and_salt():
    """Made by Java 17's PBEWithMD5AndDES: PasswordUtil.encrypt("jeecg",
    "123456", "vDDkDzrK")."""
    verifier = scheme_for("jeecg")
    values = {"username": "jeecg", "salt": "vDDkDzrK"}
    assert verifier.verify("123456", "3dd8371f3cf8240e", values) == "utf-8"
    assert verifier.verify("123456", "3dd8371f3cf8240e",
                           {**values, "username": "Jeecg"}) is None
    assert verifier.verify("123456", "3dd8371f3cf8240e", {**values, "salt": "vDDkDzrL"}) is None
    # Java refuses a non-ASCII password for PBE keys: no legacy hash has one.
    assert verifier.verify("密码123456", "3dd8371f3cf8240e", values) is None


@pytest.mark.parametrize("stored", [
    # The examples of Spring Security's reference documentation
    # ("Password Storage"), all of the password "password".
    "{bcrypt}$2a$10$dXJ3SW6G7P50lGmMkkmwe.20cQQubK3.HZWzG3YB1tlRy.fqvM/BG",
    "{noop}password",
    "{pbkdf2}5d923b44a6d129f3ddf3e3c8d29412723dcbde72445e8ef6bf3b508fbf17fa4ed4d6b99ca763d8dc",
    "{scrypt}$e0801$8bWJaSu2IKSn9Z9kM+TPXfOc/9bdYSrN1oD9qfVThWEwdRTnO7re7Ei+fUZRJ68k9lTyuTeUp4o"
    "f4g24hHnazw==$OAOec05+bXxvuu/1qZ6NUR+xQYvYv7BeL1QxwRpY5Pc=",
    "{sha256}97cde38028ad898ebc02e690819fa220e88c62e0699403e94fff291cfffaf8410849f27605abcbc0",
])
def test_spring_verifies_its_documented_examples(stored):
    verifier = scheme_for("spring")
    assert verifier.verify("password", stored, {}) == "utf-8"
    assert verifier.verify("Password", stored, {}) is None


@pytest.mark.parametrize("stored", ["{unknown}abc", "no prefix", "{MD5}not-hex",
                                    "{scrypt}$ffff01$c2FsdA==$a2V5", "{ldap}{SSHA}!!"])
def test_spring_values_it_cannot_read_are_no_match(stored):
    assert scheme_for("spring").verify("password", stored, {}) is None


@pytest.mark.parametrize("scheme, stored", [
    ("bcrypt", "$2b$31$LegacyPhpSaltValue123umeFbsJCDzRE0AqwBHzIKNsuSowyXeKi"),
    ("wordpress", "$wp$2y$31$WordPressSixEightSaltujSCbjvwq3iJ84s6lwVevvWgGEab5046"),
    ("sha512_crypt", "$6$rounds=999999999$saltsalt$U5d2t4MFT.Hn/auqLjcfU6R/lm2Y71FvBwABEOht"
                     "/UpRtNzcFvzGl/oU6V38pYgY8ZpicOa.0ESff5jRNylZM."),
    ("django_pbkdf2_sha256",
     "pbkdf2_sha256$2000000000$seasalt1234$VujWEFGLrVaPTmI5YUGjH/oQ43ZIaF7ufCa9wIgXN6c="),
    ("phpass", "$P$zLegacy014v3c0Hz7Ak6zIwyLWpn00/"),
    ("spring", "{scrypt}$ffffffff0101$c2FsdHNhbHQ=$a2V5a2V5a2V5"),
    ("spring", "{argon2}$argon2id$v=19$m=3000000,t=1000,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5"),
    ("bcrypt", "$2b$10$short"),
])
def test_a_stored_value_asking_too_much_work_is_no_match_at_once(scheme, stored):
    """Attack finding: a legacy row must not make a login hang (bcrypt cost
    31, 10^9 crypt rounds, 2*10^9 PBKDF2 iterations, phpass 2^30, scrypt
    N = 2^65535, argon2 with 3 GB). Cheap refusals, before any work."""
    import time

    started = time.monotonic()
    assert scheme_for(scheme).verify(PASSWORD, stored, {}) is None
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("text, message", [
    ("repeat(2, repeat(2, md5(password)))", "repeat of a repeat"),
    ("+".join(["repeat(60000, sha512(password))"] * 2), "more than 100000 digests"),
])
def test_an_expression_costing_too_much_is_refused(text, message):
    with pytest.raises(SchemeError, match=message):
        scheme_for(text)
