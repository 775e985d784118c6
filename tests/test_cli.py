"""The `orgstream` command line as a user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from workers.dev import devstack


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*devstack.orgstream_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=devstack.child_environment(),
    )


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("receiver", "worker", "directory", "dev", "demo"):
        assert command in result.stdout


def test_bad_config_fails_with_one_message_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "orgstream.toml"
    config.write_text('[receiver]\nport = "eighty"\n', encoding="utf-8")
    for command in ("receiver", "worker", "directory"):
        result = run(command, "--config", str(config))
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "orgstream: configuration error: receiver.port: must be an integer of at least 0 "
            "and at most 65535"
        )


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    env = devstack.child_environment() | {"ORGSTREAM_CONFIG": str(missing)}
    result = subprocess.run(
        [*devstack.orgstream_command(), "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr


def test_the_dev_config_serves_the_directory(tmp_path: Path) -> None:
    """`orgstream dev` keeps the mirror and serves it: the feed on, a token for its tenant."""
    from schemas.config import load_settings
    from workers.dev.local_stack import DIRECTORY_PORT, prepare_dev

    settings = load_settings(prepare_dev(tmp_path))
    assert settings.feed.enabled
    assert settings.directory.port == DIRECTORY_PORT
    (tenant,) = settings.tenants
    assert tenant.directory_token is not None
    assert len(tenant.directory_token.reveal()) >= 24


def test_the_dev_config_serves_the_console_to_one_operator(tmp_path: Path) -> None:
    from schemas.config import load_settings
    from workers.dev.local_stack import CONSOLE_PORT, prepare_dev

    console = load_settings(prepare_dev(tmp_path)).console
    assert console.port == CONSOLE_PORT
    (user,) = console.users
    assert user.role == "operator"
    assert len(user.token.reveal()) >= 24
