"""Worker metrics for Prometheus, served on `worker.metrics_port`.

The consumer-lag gauges carry kafka-lag-exporter's names and labels, so dashboards and alerts
written for Kafka work unchanged. They are the group's lag as `orgstream lag` measures it (every
worker exports the whole group's: aggregate with max, not sum, across workers). Labels naming a
group member (`member_host`, `consumer_id`, `client_id`) are empty: lag is read from committed
offsets, which do not say who committed them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:  # the lag is measured in workers/kafka, which itself reports here
    from workers.kafka.lag import GroupLag

_SECONDS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_FRESHNESS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
_PARTITION_LABELS: Final = (
    "cluster_name",
    "group",
    "topic",
    "partition",
    "member_host",
    "consumer_id",
    "client_id",
)

EVENTS = Counter(
    "orgstream_events",
    "Events by tenant and outcome (applied, skipped, parked, held, dead_lettered).",
    ["tenant", "outcome"],
)
APPLY_SECONDS = Histogram(
    "orgstream_apply_seconds", "Time to apply one event, retries included.", ["tenant"],
    buckets=_SECONDS,
)  # fmt: skip
FRESHNESS_SECONDS = Histogram(
    "orgstream_freshness_seconds",
    "From the vendor's event time to the change applied on the SCIM target.",
    ["tenant"],
    buckets=_FRESHNESS,
)
SCIM_REQUESTS = Counter(
    "orgstream_scim_requests",
    "SCIM requests by method and HTTP status (`transport` when none came back).",
    ["method", "status"],
)
SCIM_SECONDS = Histogram(
    "orgstream_scim_request_seconds", "SCIM request latency.", ["method"], buckets=_SECONDS
)
VENDOR_CALLS = Counter(
    "orgstream_vendor_calls",
    "Vendor API calls by vendor and errcode (`http_<status>` or `transport` when no errcode).",
    ["vendor", "errcode"],
)
TARGET_QUARANTINED = Gauge(
    "orgstream_scim_target_quarantined", "1 while the SCIM target is quarantined.", ["target"]
)
PARKED_EVENTS = Gauge(
    "orgstream_parked_events", "Events waiting in the store, by state.", ["state"]
)
GROUP_LAG = Gauge(
    "kafka_consumergroup_group_lag", "Group offset lag of a partition.", _PARTITION_LABELS
)
GROUP_LAG_SECONDS = Gauge(
    "kafka_consumergroup_group_lag_seconds",
    "Age of the oldest event of the partition the group has not done.",
    _PARTITION_LABELS,
)
GROUP_OFFSET = Gauge(
    "kafka_consumergroup_group_offset", "Last committed offset of a partition.", _PARTITION_LABELS
)
GROUP_SUM_LAG = Gauge(
    "kafka_consumergroup_group_sum_lag", "Sum of the group's offset lag.", ["cluster_name", "group"]
)
GROUP_MAX_LAG_SECONDS = Gauge(
    "kafka_consumergroup_group_max_lag_seconds",
    "Largest time lag of the group's partitions.",
    ["cluster_name", "group", "is_simple_consumer"],
)
PARTITION_LATEST = Gauge(
    "kafka_partition_latest_offset",
    "Log end (fetched high watermark) of a partition.",
    ["cluster_name", "topic", "partition"],
)
PARTITION_EARLIEST = Gauge(
    "kafka_partition_earliest_offset",
    "Log start of a partition.",
    ["cluster_name", "topic", "partition"],
)


def export_lag(cluster: str, lag: GroupLag) -> None:
    for p in lag.partitions:
        labels = (cluster, lag.group, p.topic, str(p.partition), "", "", "")
        GROUP_LAG.labels(*labels).set(p.lag)
        GROUP_LAG_SECONDS.labels(*labels).set(p.lag_seconds)
        GROUP_OFFSET.labels(*labels).set(p.committed if p.committed is not None else -1)
        PARTITION_LATEST.labels(cluster, p.topic, str(p.partition)).set(p.log_end)
        PARTITION_EARLIEST.labels(cluster, p.topic, str(p.partition)).set(p.log_start)
    GROUP_SUM_LAG.labels(cluster, lag.group).set(lag.total)
    GROUP_MAX_LAG_SECONDS.labels(cluster, lag.group, "false").set(lag.max_lag_seconds)
