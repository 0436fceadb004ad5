"""Accounts-file tables, environment defaults, auth messages, and secrets kept out of sight."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from batcher.auth import BearerToken, default_credentials_from_env, redact_authorization
from batcher.auth_failures import credentials_scheme, describe_auth_failure
from batcher.credentials import CREDENTIAL_KEYS, parse_credentials
from batcher.errors import ConfigError
from batcher.oauth1 import OAuth1Credentials
from batcher.oauth2 import OAuth2RefreshingCredentials

ENV = {
    "ALICE_REFRESH": "SECRET-env-refresh",
    "CLIENT_SECRET": "SECRET-env-client",
    "X_API_KEY": "SECRET-key",
    "X_API_SECRET": "SECRET-api-secret",
    "BOB_TOKEN": "SECRET-bob-token",
    "BOB_SECRET": "SECRET-bob-secret",
    "CAROL_TOKEN": "SECRET-carol",
}

ACCOUNTS = """
[accounts.alice]
scheme = "oauth2"
client_id = "client-1"
client_secret_env = "CLIENT_SECRET"
refresh_token_file = "tokens/alice"
refresh_margin_s = 30

[accounts.alice_env]
scheme = "oauth2"
client_id = "client-1"
refresh_token_env = "ALICE_REFRESH"
state_file = "state/alice.json"

[accounts.bob]
scheme = "oauth1"
consumer_key_env = "X_API_KEY"
consumer_secret_env = "X_API_SECRET"
access_token_env = "BOB_TOKEN"
access_token_secret_env = "BOB_SECRET"

[accounts.carol]
scheme = "bearer"
token_env = "CAROL_TOKEN"
"""


def parse(name: str, table: dict[str, object], tmp_path: Path) -> object:
    return parse_credentials(name, table, tmp_path, ENV)


def test_every_scheme_parses_from_an_accounts_file(tmp_path: Path) -> None:
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "alice").write_text("SECRET-file-refresh\n")
    tables = tomllib.loads(ACCOUNTS)["accounts"]
    parsed = {name: parse_credentials(name, t, tmp_path, ENV) for name, t in tables.items()}
    assert isinstance(parsed["alice"], OAuth2RefreshingCredentials)
    assert isinstance(parsed["alice_env"], OAuth2RefreshingCredentials)
    assert isinstance(parsed["bob"], OAuth1Credentials)
    assert parsed["carol"] == BearerToken("SECRET-carol")
    assert parsed["bob"] == OAuth1Credentials(
        consumer_key="SECRET-key",
        consumer_secret="SECRET-api-secret",
        access_token="SECRET-bob-token",
        access_token_secret="SECRET-bob-secret",
    )
    shown = " ".join(repr(c) for c in parsed.values())
    assert "SECRET" not in shown
    assert {k for t in tables.values() for k in t} <= CREDENTIAL_KEYS


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param({"scheme": "bearer", "token": "x"}, "token must not be written", id="inline"),
        pytest.param(
            {"scheme": "oauth2", "client_id": "c", "refresh_token": "r"},
            "refresh_token must not be written",
            id="inline-refresh",
        ),
        pytest.param({"token_env": "CAROL_TOKEN"}, "scheme is missing", id="no-scheme"),
        pytest.param({"scheme": "basic"}, "scheme is 'basic'", id="bad-scheme"),
        pytest.param({"scheme": "bearer", "token_env": "NOPE"}, "NOPE", id="unset-env"),
        pytest.param({"scheme": "bearer"}, "needs token_env", id="no-token"),
        pytest.param(
            {"scheme": "bearer", "token_env": "CAROL_TOKEN", "token_file": "f"},
            "not both",
            id="env-and-file",
        ),
        pytest.param({"scheme": "oauth2", "refresh_token_env": "X"}, "client_id", id="no-client"),
        pytest.param(
            {"scheme": "oauth2", "client_id": "c"}, "exactly one of", id="no-refresh-token"
        ),
        pytest.param(
            {"scheme": "oauth2", "client_id": "c", "refresh_token_env": "ALICE_REFRESH"},
            "needs state_file",
            id="env-without-state",
        ),
        pytest.param(
            {"scheme": "bearer", "token_file": "missing"}, "cannot read", id="missing-file"
        ),
    ],
)
def test_a_bad_table_says_what_to_fix(
    tmp_path: Path, table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse("acct", table, tmp_path)
    assert "account 'acct'" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_the_environment_picks_oauth1_when_all_four_are_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "X_API_KEY": "k1",
        "X_API_SECRET": "s1",
        "X_ACCESS_TOKEN": "t1",
        "X_ACCESS_TOKEN_SECRET": "u1",
    }
    with caplog.at_level(logging.DEBUG, logger="batcher"):
        credentials = default_credentials_from_env(env)
    assert credentials_scheme(credentials) == "oauth1"
    assert "OAuth 1.0a" in caplog.text
    assert not any(value in caplog.text for value in env.values())
    assert credentials_scheme(default_credentials_from_env({"X_ACCESS_TOKEN": "t1"})) == "bearer"
    with pytest.raises(ConfigError, match="not set: X_API_SECRET"):
        default_credentials_from_env({"X_API_KEY": "k1", "X_ACCESS_TOKEN": "t1"})
    with pytest.raises(ConfigError, match="no access token"):
        default_credentials_from_env({})


@pytest.mark.parametrize(
    ("status", "slug", "title", "detail", "scheme", "expected"),
    [
        pytest.param(
            403,
            "unsupported-authentication",
            "Unsupported Authentication",
            "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.",
            "bearer",
            "needs a user token",
            id="app-only",
        ),
        pytest.param(
            403, "forbidden", "Forbidden", "Forbidden", "oauth2", "media.write", id="bare-403"
        ),
        pytest.param(
            403, "forbidden", "Forbidden", "Forbidden", "bearer", "read-only", id="bare-403-ro"
        ),
        pytest.param(
            403, "forbidden", "Forbidden", "Forbidden", "oauth1", "read-only", id="bare-403-oauth1"
        ),
        pytest.param(
            403, "oauth1-permissions", "Forbidden", "x", "oauth1", "Read and write", id="oauth1-ro"
        ),
        pytest.param(
            401, "unauthorized", "Unauthorized", "Unauthorized", "bearer", "two hours", id="401"
        ),
        pytest.param(401, "unauthorized", "U", "U", "oauth2", "revoked", id="401-oauth2"),
        pytest.param(401, "unauthorized", "U", "U", "oauth1", "clock", id="401-oauth1"),
    ],
)
def test_auth_failures_are_explained(
    status: int, slug: str, title: str, detail: str, scheme: str, expected: str
) -> None:
    assert expected in describe_auth_failure(status, slug, title, detail, scheme)


def test_an_authorization_header_is_logged_redacted() -> None:
    assert redact_authorization("Bearer abc.def") == "Bearer ***"
    assert redact_authorization('OAuth oauth_token="x"') == "OAuth ***"
    assert redact_authorization("") == "***"
