"""The accounts file: which accounts a run has, where their tokens come from, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.accounts import load_accounts
from batcher.auth import BearerToken
from batcher.errors import ConfigError

SECRET = "s3cr3t-token-value"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text, encoding="utf-8")
    return path


def token_of(credentials: object) -> str:
    assert isinstance(credentials, BearerToken)
    return credentials.token


def test_accounts_from_env_and_file_with_the_env_default(tmp_path: Path) -> None:
    (tmp_path / "bob.token").write_text("\nbob-token\n", encoding="utf-8")
    path = write(
        tmp_path,
        '[accounts.alice]\ntoken_env = "ALICE_TOKEN"\n[accounts.bob]\ntoken_file = "bob.token"\n',
    )
    accounts = load_accounts(path, environ={"ALICE_TOKEN": "alice-token", "X_ACCESS_TOKEN": "d"})
    assert accounts.names == ["default", "alice", "bob"]
    alice, bob = accounts.get("alice"), accounts.get("bob")
    assert alice is not None
    assert bob is not None
    assert token_of(alice.credentials) == "alice-token"
    assert token_of(bob.credentials) == "bob-token"
    assert token_of(accounts.default.credentials) == "d"


def test_default_key_names_the_account_of_rows_without_one(tmp_path: Path) -> None:
    path = write(tmp_path, 'default = "alice"\n[accounts.alice]\ntoken_env = "A"\n')
    accounts = load_accounts(path, environ={"A": "alice-token"})
    assert accounts.default.name == "alice"
    assert accounts.get(None) is accounts.default
    assert accounts.names == ["alice"]


def test_an_account_named_default_is_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[accounts.default]\ntoken_env = "A"\n[accounts.b]\ntoken_env = "A"\n')
    accounts = load_accounts(path, environ={"A": "x"})
    assert accounts.default.name == "default"
    assert accounts.names == ["default", "b"]


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        pytest.param(
            '[accounts.alice]\ntoken_env = "ALICE_TOKEN"\n',
            {"X_ACCESS_TOKEN": SECRET},
            "account 'alice': environment variable ALICE_TOKEN (token_env) is not set",
            id="missing-env",
        ),
        pytest.param(
            '[accounts.alice]\ntoken_env = "A"\ntoken_file = "f"\n',
            {"A": SECRET},
            "account 'alice': give token_env or token_file, not both",
            id="two-sources",
        ),
        pytest.param(
            "[accounts.alice]\n",
            {},
            "account 'alice': needs token_env (an environment variable) or token_file",
            id="no-source",
        ),
        pytest.param(
            f'[accounts.alice]\ntoken_env = "A"\ntoken = "{SECRET}"\n',
            {"A": SECRET},
            "account 'alice': unknown key(s) token",
            id="unknown-key",
        ),
        pytest.param(
            '[accounts.alice]\ntoken_file = "missing.token"\n',
            {"X_ACCESS_TOKEN": SECRET},
            "account 'alice': cannot read token file",
            id="missing-file",
        ),
        pytest.param(
            'default = "carol"\n[accounts.alice]\ntoken_env = "A"\n',
            {"A": SECRET},
            "default = 'carol' names no account (known: alice)",
            id="unknown-default",
        ),
        pytest.param(
            '[accounts.alice]\ntoken_env = "A"\n',
            {"A": SECRET},
            "no default account for rows without an account column: set X_ACCESS_TOKEN",
            id="no-default",
        ),
        pytest.param("", {}, "no [accounts.NAME] table", id="empty"),
        pytest.param("[accounts\n", {}, "is not valid TOML", id="bad-toml"),
        pytest.param(
            '[accounts."a b"]\ntoken_env = "A"\n', {"A": SECRET}, "account names", id="bad-name"
        ),
    ],
)
def test_errors_name_the_file_and_the_account_never_the_token(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_accounts(path, environ=environ)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_missing_accounts_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read accounts file"):
        load_accounts(tmp_path / "nope.toml", environ={})
