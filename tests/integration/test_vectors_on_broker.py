"""Acceptance 2 on the real broker: the vendor vectors through the HTTP app and Kafka; the topic
holds exactly the expected events, and nothing from a negative vector."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from receiver import create_app
from schemas.config import KafkaSettings, Settings
from tests.integration.conftest import Broker, read_topic, unique_topic
from tests.receiver.test_feishu_vectors import PUBLISHED
from tests.receiver.test_feishu_vectors import send as send_feishu
from tests.receiver.test_wecom_vectors import send
from tests.vectors import Clock, feishu_settings, load_vectors, wecom_settings
from workers.dev import devstack

pytestmark = pytest.mark.integration
WECOM = load_vectors("wecom")
FEISHU = load_vectors("feishu")


async def on_a_topic(broker: Broker, settings: Settings) -> tuple[str, Settings]:
    """A fresh topic on the broker, and the settings that publish to it."""
    topic = unique_topic()
    await devstack.create_topics(broker.bootstrap, [topic])
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic=topic)
    return topic, dataclasses.replace(settings, kafka=kafka)


async def test_every_vector_through_the_app_onto_the_topic(broker: Broker) -> None:
    topic, settings = await on_a_topic(broker, wecom_settings(WECOM["config"]))
    clock = Clock(0)
    expected_raw: list[str] = []
    with TestClient(create_app(settings, clock=clock)) as client:
        for vector in WECOM["positive"] + WECOM["negative"]:
            clock.now = float(vector["receiver_now"])
            response = send(client, vector)
            publishes = vector["kind"] == "event" and vector.get("expected_publish") is not False
            publishes = publishes and vector.get("change_type") != "update_tag"
            if vector["kind"] == "negative":
                assert 400 <= response.status_code < 500, vector["id"]
            else:
                assert response.status_code == 200, vector["id"]
            if publishes:
                expected_raw.append(vector["plaintext"])
    events: list[dict[str, Any]] = [
        orjson.loads(v) for v in await read_topic(broker.bootstrap, topic)
    ]
    assert sorted(e["raw"] for e in events) == sorted(expected_raw)
    assert len({e["event_id"] for e in events}) == len(events) == len(WECOM["positive"]) - 3


async def test_every_feishu_vector_through_the_app_onto_the_topic(broker: Broker) -> None:
    """The encrypted app's vectors (the plaintext-mode one is another app's): the topic holds
    each positive's events once, a redelivery's none, a negative's none."""
    topic, settings = await on_a_topic(broker, feishu_settings(FEISHU["config"]))
    clock = Clock(0)
    expected: list[tuple[str, str, str]] = []
    with TestClient(create_app(settings, clock=clock)) as client:
        for vector in FEISHU["positive"] + FEISHU["negative"]:
            if vector["config"] != FEISHU["config"]:
                continue
            clock.now = float(vector["receiver_now"])
            response = send_feishu(client, vector)
            if vector["kind"] == "negative":
                assert 400 <= response.status_code < 500, vector["id"]
                continue
            assert response.status_code == 200, vector["id"]
            if vector.get("expected_publish") is not False:
                expected.extend(PUBLISHED.get(vector["id"], []))
    events = [orjson.loads(v) for v in await read_topic(broker.bootstrap, topic)]
    assert sorted((e["entity"], e["change"], e["entity_id"]) for e in events) == sorted(expected)
    assert {e["vendor"] for e in events} == {"feishu"}
