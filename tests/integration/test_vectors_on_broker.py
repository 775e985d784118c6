"""Acceptance 2 on the real broker: the vendor vectors through the HTTP app and Kafka; the topic
holds exactly the expected events, and nothing from a negative vector."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from receiver import create_app
from schemas.config import KafkaSettings
from tests.integration.conftest import Broker, read_topic, unique_topic
from tests.receiver.test_wecom_vectors import Clock, send
from tests.vectors import load_vectors, wecom_settings
from workers.dev import devstack

pytestmark = pytest.mark.integration
WECOM = load_vectors("wecom")


async def test_every_vector_through_the_app_onto_the_topic(broker: Broker) -> None:
    topic = unique_topic()
    await devstack.create_topics(broker.bootstrap, [topic])
    settings = wecom_settings(WECOM["config"])
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic=topic)
    settings = type(settings)(
        kafka, settings.receiver, settings.scim, settings.store, settings.tenants
    )
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
