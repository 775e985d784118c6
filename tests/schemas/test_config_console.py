"""`[console]`: who may log in, with which role; bad entries fail naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import ConfigError, parse_settings

TOKEN = "a-console-token-0123456789"
FIRST = "console.users[0]."


def console(users: list[dict[str, Any]], environ: dict[str, str] | None = None) -> Any:
    return parse_settings({"console": {"users": users}}, environ=environ or {}).console


def test_users_with_roles_and_tokens_from_the_file_or_the_environment() -> None:
    settings = console(
        [{"name": "ann", "role": "operator", "token": TOKEN}, {"name": "bo.b"}],
        {"ORGSTREAM_CONSOLE_USER_BO_B_TOKEN": "bob-token-from-the-env-0001"},
    )
    ann, bob = settings.users
    assert (ann.name, ann.role, ann.token.reveal()) == ("ann", "operator", TOKEN)
    assert (bob.name, bob.role, bob.token.reveal()) == (
        "bo.b",
        "viewer",
        "bob-token-from-the-env-0001",
    )
    assert TOKEN not in repr(settings)
    assert (settings.host, settings.port) == ("127.0.0.1", 8070)


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ([{"name": "ann"}], FIRST + "token: required"),
        ([{"name": "ann", "token": "short"}], FIRST + "token: at least 16"),
        ([{"name": "ann", "token": "change-me-change-me"}], FIRST + "token: still the example"),
        ([{"name": "ann", "role": "admin", "token": TOKEN}], FIRST + "role: "),
        ([{"name": "ann smith", "token": TOKEN}], FIRST + "name"),
        ([{"name": "ann", "token": TOKEN}, {"name": "ann", "token": TOKEN + "x"}], "listed twice"),
        ([{"name": "ann", "token": TOKEN}, {"name": "bob", "token": TOKEN}], "share a token"),
        ([{"name": "ann", "token": TOKEN, "password": "x"}], FIRST + "password: unknown key"),
    ],
)  # fmt: skip
def test_bad_users_fail_naming_the_key(users: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        console(users)
    assert message in str(raised.value)
    assert TOKEN not in str(raised.value)
