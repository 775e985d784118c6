"""orgstream.toml loading: defaults, env secrets, one clear error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import ConfigError, load_settings

KEY = "PmXxzdTxF1GShAbPOwFyKedNiamfzcaGHyusd3PgBBw"
GOOD = f"""
[kafka]
bootstrap_servers = "127.0.0.1:19092"

[scim]
base_url = "http://127.0.0.1:8000/v2/"
department_mode = "nested"

[[tenants]]
id = "acme"
vendor = "wecom"
corp_id = "ww4d6c562f86fe99d5"
callback_token = "cb-token-9f3a"
encoding_aes_key = "{KEY}"
api_secret = "s3cret-value"
proxy = "http://proxy.internal:3128"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orgstream.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_file_loads_with_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={})
    assert settings.kafka.topic == "orgstream.contact-events"
    assert settings.kafka.dlq_topic == "orgstream.contact-events.dlq"
    assert settings.kafka.consumer_group == "orgstream-workers"
    assert settings.scim.base_url == "http://127.0.0.1:8000/v2"
    assert settings.scim.user_delete == "deactivate"
    tenant = settings.tenant("acme")
    assert tenant is not None
    assert tenant.api_base == "https://qyapi.weixin.qq.com"
    assert len(tenant.aes_key) == 32
    assert tenant.receive_id == "ww4d6c562f86fe99d5"


def test_secrets_come_from_the_environment_and_win(tmp_path: Path) -> None:
    env = {"ORGSTREAM_TENANT_ACME_API_SECRET": "from-env", "ORGSTREAM_SCIM_BEARER_TOKEN": "bt"}
    settings = load_settings(write(tmp_path, GOOD), environ=env)
    tenant = settings.tenant("acme")
    assert tenant is not None
    assert tenant.api_secret is not None
    assert tenant.api_secret.reveal() == "from-env"
    assert settings.scim.bearer_token is not None
    assert settings.scim.bearer_token.reveal() == "bt"


def test_the_store_url_comes_from_the_environment_and_stays_out_of_reprs(tmp_path: Path) -> None:
    url = "postgresql://orgstream:pg-pass-77@db:5432/orgstream"
    settings = load_settings(write(tmp_path, GOOD), environ={"ORGSTREAM_STORE_URL": url})
    assert settings.store.url == url
    assert "pg-pass-77" not in repr(settings)


def test_secrets_never_show_in_reprs(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={})
    text = repr(settings)
    for secret in ("cb-token-9f3a", KEY, "s3cret-value"):
        assert secret not in text


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda s: s.replace(KEY, KEY[:-1]), "tenants[0].encoding_aes_key"),
        (
            lambda s: s.replace('callback_token = "cb-token-9f3a"\n', ""),
            "tenants[0].callback_token",
        ),
        (lambda s: s.replace('vendor = "wecom"', 'vendor = "lark"'), "tenants[0].vendor"),
        (lambda s: s.replace('"nested"', '"tree"'), "scim.department_mode"),
        (lambda s: s.replace("[scim]", '[scim]\nuser_name = "{tenant}"'), "scim.user_name"),
        (lambda s: s.replace("[scim]", '[scim]\nuser_name = "{userid}@{org}"'), "scim.user_name"),
        (lambda s: s.replace("[kafka]", "[kafka]\nbogus = 1"), "kafka.bogus"),
        (lambda s: s.replace('proxy = "http', 'proxy = "socks5'), "tenants[0].proxy"),
        (lambda s: s + "\n[[tenants]]\n" + s.split("[[tenants]]")[1], "tenants[1].id"),
    ],
)
def test_bad_file_fails_with_one_message_naming_the_key(
    tmp_path: Path, edit: object, key: str
) -> None:
    assert callable(edit)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, edit(GOOD)), environ={})
    assert str(caught.value).startswith(key + ":")
    assert KEY not in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.toml", environ={})


APP_KEY = "dingshutt0nzy8j42g2r"
DINGTALK = f"""
[[tenants]]
id = "beta"
vendor = "dingtalk"
corp_id = "dingb5e19cf002bea0a538117c467a4c2f31"
app_key = "{APP_KEY}"
app_secret = "app-secret-77"
callback_token = "IdHnmRDP5MtEccWwnScL"
aes_key = "{KEY}"
"""


def test_dingtalk_receive_id_follows_the_callback_mode(tmp_path: Path) -> None:
    subscription = load_settings(write(tmp_path, DINGTALK), environ={}).tenant("beta")
    assert subscription is not None
    assert subscription.callback_mode == "subscription"
    assert subscription.receive_id == "dingshutt0nzy8j42g2r"
    assert subscription.api_base == "https://oapi.dingtalk.com"
    legacy_text = DINGTALK + 'callback_mode = "legacy"\n'
    legacy = load_settings(write(tmp_path, legacy_text), environ={}).tenant("beta")
    assert legacy is not None
    assert legacy.receive_id == "dingb5e19cf002bea0a538117c467a4c2f31"
    env = {"ORGSTREAM_TENANT_BETA_APP_SECRET": "from-env"}
    from_env = load_settings(write(tmp_path, DINGTALK), environ=env).tenant("beta")
    assert from_env is not None
    assert from_env.app_secret is not None
    assert from_env.app_secret.reveal() == "from-env"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (
            lambda s: s.replace(f'app_key = "{APP_KEY}"', 'callback_mode = "subscription"'),
            "tenants[0].app_key",
        ),
        (lambda s: s + 'callback_mode = "stream"\n', "tenants[0].callback_mode"),
        (lambda s: s + "api_qps = 0\n", "tenants[0].api_qps"),
    ],
)
def test_bad_dingtalk_tenant_names_the_key(tmp_path: Path, edit: object, key: str) -> None:
    assert callable(edit)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, edit(DINGTALK)), environ={})
    assert str(caught.value).startswith(key + ":")


def test_user_name_template_is_kept(tmp_path: Path) -> None:
    text = GOOD.replace("[scim]", '[scim]\nuser_name = "{userid}@{tenant}"')
    assert load_settings(write(tmp_path, text), environ={}).scim.user_name == "{userid}@{tenant}"
