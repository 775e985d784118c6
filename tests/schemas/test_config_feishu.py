"""A Feishu tenant's keys: the app, its secrets from the environment, the stable ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.config import ConfigError, load_settings

FEISHU = """
[[tenants]]
id = "gamma"
vendor = "feishu"
app_id = "cli_a1b2c3"
tenant_key = "2ed263bf32cf1651"
"""
ENV = {
    "ORGSTREAM_TENANT_GAMMA_APP_SECRET": "app-secret-1",
    "ORGSTREAM_TENANT_GAMMA_VERIFICATION_TOKEN": "verification-token-1",
    "ORGSTREAM_TENANT_GAMMA_ENCRYPT_KEY": "encrypt-key-1",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orgstream.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_feishu_tenant_takes_its_secrets_from_the_environment(tmp_path: Path) -> None:
    tenant = load_settings(write(tmp_path, FEISHU), environ=ENV).tenant("gamma")
    assert tenant is not None
    assert tenant.feishu is not None
    app = tenant.feishu
    assert (app.app_id, app.tenant_key) == ("cli_a1b2c3", "2ed263bf32cf1651")
    assert app.verification_token.reveal() == "verification-token-1"
    assert app.encrypt_key is not None
    assert app.encrypt_key.reveal() == "encrypt-key-1"
    assert tenant.app_secret is not None
    assert tenant.app_secret.reveal() == "app-secret-1"
    assert tenant.api_base == "https://open.feishu.cn"
    assert tenant.corp_id == "2ed263bf32cf1651"  # externalIds: feishu:<tenant_key>:…
    assert (app.user_id_type, app.department_id_type) == ("user_id", "department_id")
    shown = repr(tenant) + repr(app)
    assert not any(secret in shown for secret in ENV.values())


def test_the_encrypt_key_is_optional_and_the_ids_are_configurable(tmp_path: Path) -> None:
    text = FEISHU + 'user_id_type = "union_id"\ndepartment_id_type = "open_department_id"\n'
    env = {k: v for k, v in ENV.items() if not k.endswith("ENCRYPT_KEY")}
    tenant = load_settings(write(tmp_path, text), environ=env).tenant("gamma")
    assert tenant is not None
    assert tenant.feishu is not None
    assert tenant.feishu.encrypt_key is None
    assert tenant.feishu.aes_key is None
    assert (tenant.feishu.user_id_type, tenant.feishu.department_id_type) == (
        "union_id",
        "open_department_id",
    )


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        (FEISHU, {}, "tenants[0].verification_token"),
        (FEISHU.replace('tenant_key = "2ed263bf32cf1651"\n', ""), ENV, "tenants[0].tenant_key"),
        (FEISHU.replace('app_id = "cli_a1b2c3"\n', ""), ENV, "tenants[0].app_id"),
        (FEISHU + 'user_id_type = "email"\n', ENV, "tenants[0].user_id_type"),
        (FEISHU + 'department_id_type = "name"\n', ENV, "tenants[0].department_id_type"),
        (FEISHU + 'callback_token = "x"\n', ENV, "tenants[0].callback_token"),
        (FEISHU + 'corp_id = "x"\n', ENV, "tenants[0].corp_id"),
        (FEISHU + 'encrypt_key = "replace-me"\n', {}, "tenants[0].encrypt_key"),
        (
            FEISHU + 'accept_unsigned_challenge = "no"\n',
            ENV,
            "tenants[0].accept_unsigned_challenge",
        ),
    ],
)
def test_a_bad_feishu_tenant_names_the_key(
    tmp_path: Path, text: str, env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(key)):
        load_settings(write(tmp_path, text), environ=env)


def test_feishu_keys_on_a_wecom_tenant_are_refused(tmp_path: Path) -> None:
    text = """
[[tenants]]
id = "acme"
vendor = "wecom"
corp_id = "ww1"
callback_token = "t"
encoding_aes_key = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
tenant_key = "x"
"""
    with pytest.raises(ConfigError, match=r"tenants\[0\]\.tenant_key: not a key of a wecom"):
        load_settings(write(tmp_path, text), environ={})
