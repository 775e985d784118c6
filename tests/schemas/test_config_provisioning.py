"""A tenant's provisioning keys: off by default, and on only with what writing needs."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import ConfigError, parse_settings

WECOM = {"id": "acme", "vendor": "wecom", "corp_id": "ww1", "callback_token": "t",
         "encoding_aes_key": "k" * 43, "api_secret": "s"}  # fmt: skip
ON = {"provisioning": True, "provisioning_token": "write-token", "sync_secret": "sync"}


def parse(tenant: dict[str, Any], environ: dict[str, str] | None = None, **top: Any) -> Any:
    return parse_settings({"tenants": [tenant], **top}, environ=environ or {})


def test_provisioning_is_off_unless_asked_for() -> None:
    tenant = parse(WECOM).tenants[0]
    assert tenant.provisioning is None


def test_on_with_its_secrets_from_the_environment() -> None:
    environ = {"ORGSTREAM_TENANT_ACME_PROVISIONING_TOKEN": "from-env",
               "ORGSTREAM_TENANT_ACME_SYNC_SECRET": "sync-from-env"}  # fmt: skip
    tenant = parse({**WECOM, "provisioning": True}, environ).tenants[0]
    assert tenant.provisioning is not None
    assert tenant.provisioning.token.reveal() == "from-env"
    assert tenant.provisioning.sync_secret is not None
    assert tenant.provisioning.sync_secret.reveal() == "sync-from-env"
    assert tenant.provisioning.userid == "{userName}"
    assert "from-env" not in repr(tenant.provisioning)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({**ON, "provisioning_token": None}, r"provisioning_token: required"),
        ({**ON, "sync_secret": None}, r"sync_secret: required .* contact-sync"),
        ({**ON, "directory_token": "write-token"}, r"must differ from directory_token"),
        ({**ON, "provisioning": "yes"}, r"provisioning: must be true or false"),
        ({**ON, "provisioning_userid": "{userid}"}, r"\{userid\} is none of them"),
        ({**ON, "provisioning_userid": "plain"}, r"provisioning_userid: a template"),
        ({**ON, "provisioning_userid": "{userName"}, r"provisioning_userid: a template"),
        ({**ON, "provisioning_token": "change-me"}, r"still the example value"),
    ],
)
def test_what_provisioning_refuses(keys: dict[str, Any], message: str) -> None:
    tenant = {**WECOM, **{k: v for k, v in keys.items() if v is not None}}
    with pytest.raises(ConfigError, match=message):
        parse(tenant)


def test_dingtalk_writes_with_its_app_and_feishu_not_yet() -> None:
    dingtalk = {"id": "beta", "vendor": "dingtalk", "corp_id": "d1", "callback_token": "t",
                "aes_key": "k" * 43, "app_key": "ak", "app_secret": "s", **ON}  # fmt: skip
    assert parse(dingtalk).tenants[0].provisioning is not None
    without_secret = {k: v for k, v in dingtalk.items() if k != "app_secret"}
    with pytest.raises(ConfigError, match=r"app_key: provisioning into DingTalk needs"):
        parse(without_secret)
    feishu = {"id": "gamma", "vendor": "feishu", "app_id": "cli_1", "tenant_key": "tk",
              "verification_token": "v", "app_secret": "s", **ON}  # fmt: skip
    with pytest.raises(ConfigError, match=r"writing into feishu is not supported yet"):
        parse(feishu)


def test_a_tenant_whose_target_is_its_own_provisioning_url_is_refused() -> None:
    looping = {"base_url": "https://sync.corp.example/scim/v2/acme"}
    with pytest.raises(
        ConfigError, match=r"scim.base_url: is the provisioning URL of tenant 'acme'"
    ):
        parse({**WECOM, **ON}, scim=looping)
    with pytest.raises(ConfigError, match=r"tenants\[0\].scim.base_url"):
        parse({**WECOM, **ON, "scim": looping})
    parse({**WECOM, **ON}, scim={"base_url": "https://sync.corp.example/scim/v2/other"})
    parse(WECOM, scim=looping)  # without provisioning nothing loops


def test_a_pull_source_and_the_loop_through_it() -> None:
    environ = {"ORGSTREAM_TENANT_ACME_PROVISIONING_SOURCE_TOKEN": "pull-token"}
    source = {**WECOM, **ON, "provisioning_source": "https://idp.example/scim/v2/"}
    provisioning = parse(source, environ).tenants[0].provisioning
    assert provisioning.source_url == "https://idp.example/scim/v2"
    assert provisioning.source_token.reveal() == "pull-token"
    with pytest.raises(ConfigError, match=r"provisioning_source: the SCIM base URL"):
        parse({**source, "provisioning_source": "idp.example"})
    with pytest.raises(ConfigError, match=r"provisioning_source: is the tenant's own SCIM target"):
        parse(source, scim={"base_url": "https://idp.example/scim/v2"})
