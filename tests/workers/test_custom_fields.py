"""The vendors' custom user fields (WeCom extattr, DingTalk extension, Feishu custom_attrs),
read from the simulated APIs into one shape and carried by a directory record to the applier."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.record import decode_record, encode_record
from tests.workers import test_dingtalk_api, test_feishu_api
from tests.workers.test_apply import make_rig
from workers.apply.records import event_of
from workers.simulator.dingtalk_api import DingTalkApi
from workers.simulator.feishu_api import FeishuApi
from workers.simulator.wecom import SimUser
from workers.vendors.custom_fields import dingtalk_extension, feishu_custom_attrs, wecom_extattr
from workers.vendors.records import RecordMaker
from workers.vendors.source import user_from_attributes

FIELDS = (("工号", "A-17"), ("职级", "p7"))


async def test_wecom_extattr_is_read() -> None:
    rig = await make_rig("flat")
    rig.sim.users["zhangwei"] = SimUser("zhangwei", "张伟", (1,), 1, custom=FIELDS)
    user = await rig.applier.source.get_user("zhangwei")
    assert user is not None
    assert dict(user.custom) == dict(FIELDS)
    await rig.target.aclose()


async def test_dingtalk_extension_is_read() -> None:
    sim = test_dingtalk_api.simulator()
    sim.users["zhangwei"] = replace(sim.users["zhangwei"], custom=FIELDS)
    user = await test_dingtalk_api.client(DingTalkApi(sim)).get_user("zhangwei")
    assert user is not None
    assert dict(user.custom) == dict(FIELDS)


async def test_feishu_custom_attrs_are_read_by_id() -> None:
    sim = test_feishu_api.simulator()
    sim.users["zhangwei"] = replace(sim.users["zhangwei"], custom=(("C-1", "A-17"),))
    user = await test_feishu_api.client(FeishuApi(sim)).get_user("zhangwei")
    assert user is not None
    assert dict(user.custom) == {"C-1": "A-17"}


@pytest.mark.parametrize(
    ("read", "answer", "fields"),
    [
        (wecom_extattr, {"extattr": {"attrs": [
            {"type": 0, "name": "工号", "text": {"value": "A-17"}},
            {"type": 1, "name": "主页", "web": {"url": "https://x.example", "title": "x"}},
            {"type": 2, "name": "小程序", "miniprogram": {"appid": "wx1"}},
            {"type": 0, "text": {"value": "no name"}},
        ]}}, {"工号": "A-17", "主页": "https://x.example"}),
        (wecom_extattr, {"extattr": "not an object"}, {}),
        (dingtalk_extension, {"extension": '{"工号": "A-17", "年限": 3}'},
         {"工号": "A-17", "年限": "3"}),
        (dingtalk_extension, {"extension": "{broken"}, {}),
        (dingtalk_extension, {"extension": "[1, 2]"}, {}),
        (feishu_custom_attrs, {"custom_attrs": [
            {"type": "TEXT", "id": "C-1", "value": {"text": "A-17"}},
            {"type": "HREF", "id": "C-2", "value": {"url": "https://x.example"}},
            {"type": "ENUMERATION", "id": "C-3", "value": {"option_value": "opt-1"}},
            {"type": "TEXT", "id": "C-4", "value": {}},
        ]}, {"C-1": "A-17", "C-2": "https://x.example", "C-3": "opt-1"}),
    ],
)  # fmt: skip
def test_each_vendors_shape_and_what_is_left_out(
    read: object, answer: dict[str, object], fields: dict[str, str]
) -> None:
    assert read(answer) == fields  # type: ignore[operator]


async def test_a_record_carries_the_custom_fields_to_the_applier() -> None:
    rig = await make_rig("flat")
    rig.sim.users["zhangwei"] = SimUser("zhangwei", "张伟", (1,), 1, custom=FIELDS, alias="Zhang")
    user = await rig.applier.source.get_user("zhangwei")
    assert user is not None
    record = RecordMaker("acme", "wecom", "callback").user(user, 1, [])
    carried = user_from_attributes(event_of(decode_record(encode_record(record))).attributes)
    assert carried is not None
    assert (dict(carried.custom), carried.alias) == (dict(FIELDS), "Zhang")
    hidden = RecordMaker("acme", "wecom", "callback", ("custom",)).user(user, 1, [])
    assert hidden.user is not None
    assert dict(hidden.user.custom) == {}  # `[feed] exclude_fields = ["custom"]`
    await rig.target.aclose()
