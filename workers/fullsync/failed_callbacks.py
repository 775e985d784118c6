"""DingTalk keeps the callbacks it failed to deliver (docs/vendors.md §2.3); read them back
and publish them, so an outage of the receiver loses nothing.

`call_back/get_call_back_failed_result` hands out at most 200 at a time and forgets what it
handed out, so each batch is published (acks=all) before the next is asked for. An entry is
turned into the legacy callback it stands for and normalized by the receiver's own code, so
it becomes exactly the events the callback would have. Entries without ids (community reports
say some lack them) cannot be replayed: the caller runs a full sync instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog

from schemas.event import ContactEvent
from schemas.topics import new_traceparent
from schemas.vendors import dingtalk
from schemas.vendors.errors import CallbackError
from workers.kafka.producer import EventPublisher
from workers.vendors.dingtalk import DingTalkDirectory

_BATCHES_PER_RUN: Final = 50  # 10,000 callbacks; the rest wait for the next run
# The id lists come under the callback's own tag, in one of the spellings DingTalk uses.
_ID_KEYS: Final = {
    "UserId": ("userid", "userId", "UserId", "user_id"),
    "DeptId": ("deptid", "deptId", "DeptId", "dept_id"),
}
log = structlog.get_logger("orgstream.sync")


@dataclass
class Recovered:
    callbacks: int = 0  # entries DingTalk returned
    events: int = 0  # contact events published from them
    without_ids: int = 0  # contact entries naming no one: a full sync must cover them

    @property
    def needs_full_sync(self) -> bool:
        return self.without_ids > 0


async def recover_failed_callbacks(
    tenant: str, corp_id: str, source: DingTalkDirectory, publisher: EventPublisher
) -> Recovered:
    recovered = Recovered()
    for _ in range(_BATCHES_PER_RUN):
        entries, more = await source.failed_callbacks()
        events: list[ContactEvent] = []
        for entry in entries:
            recovered.callbacks += 1
            plaintext = _as_callback(entry, corp_id)
            try:
                opened = dingtalk.normalize(tenant, plaintext, time.time())
            except CallbackError as exc:
                log.warning("failed_callback_unreadable", tenant=tenant, reason=exc.reason)
                continue
            if opened.ignored_reason == "no_entity_ids":
                recovered.without_ids += 1
            events.extend(opened.events)
        if events:
            await publisher.publish(events, new_traceparent())
            recovered.events += len(events)
        if not more:
            break
    if recovered.callbacks:
        log.info(
            "failed_callbacks_recovered",
            tenant=tenant,
            callbacks=recovered.callbacks,
            events=recovered.events,
            without_ids=recovered.without_ids,
        )
    return recovered


def _as_callback(entry: dict[str, Any], corp_id: str) -> bytes:
    """`{"call_back_tag": "user_add_org", "event_time": ms, "user_add_org": {"userid": [...],
    "corpid": ...}}` -> the legacy plaintext `{"EventType", "CorpId", "TimeStamp", "UserId"}`."""
    tag = str(entry.get("call_back_tag", ""))
    data = entry.get(tag)
    if isinstance(data, str):  # some SDKs and answers carry it as a JSON string
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            data = {}
    fields: dict[str, Any] = {
        "EventType": tag,
        "CorpId": corp_id,
        "TimeStamp": str(entry.get("event_time", "")),
    }
    if isinstance(data, dict):
        fields["CorpId"] = str(data.get("corpid") or data.get("CorpId") or corp_id)
        for wanted, spellings in _ID_KEYS.items():
            for spelling in spellings:
                if isinstance(data.get(spelling), list):
                    fields[wanted] = data[spelling]
    return orjson.dumps(fields)
