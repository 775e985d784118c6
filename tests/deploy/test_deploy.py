"""deploy/ checked without a container engine: the linters, the Kubernetes schemas, the alert
rules and dashboard against the metrics the project exports, and the configs against its loader.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry
from yamllint import linter
from yamllint.config import YamlLintConfig

import workers.metrics  # noqa: F401 - registers the worker's metrics on the default registry
from receiver.app import create_app
from receiver.metrics import ReceiverMetrics
from receiver.publisher import MemoryEventPublisher
from schemas.config import ConfigError, Secret, Settings, parse_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.33.0"
# Prometheus' own series, which every scrape target has.
PROMETHEUS_SERIES = {"up"}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{")


def exported_metric_names() -> set[str]:
    """Every series name the receiver and the worker can expose, labelled or not yet observed."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names: set[str] = set()
    registries: list[CollectorRegistry] = [REGISTRY, ReceiverMetrics.create().registry]
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
    return names


def metric_names_in(expr: str) -> set[str]:
    """The series an expression selects; it must parse as PromQL first."""
    parsed = promql_parser.parse(expr)
    return set(_SELECTOR.findall(str(parsed)))  # the parser prints every selector as name{…}


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml_documents(path):
            yield f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [
        doc for _, doc in manifests() if (doc["kind"], doc["metadata"]["name"]) == (kind, name)
    ]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def load_toml(path: Path, environ: dict[str, str]) -> Settings:
    return parse_settings(tomllib.loads(path.read_text(encoding="utf-8")), environ)


def filled_in(example: dict[str, str]) -> dict[str, str]:
    """The example secrets as an operator fills them in: every REPLACE-ME replaced (an AES
    key by 43 characters, anything else by a fresh token)."""
    filled = {}
    for name, value in example.items():
        if name.endswith("AES_KEY"):
            filled[name] = "".join(secrets.choice(string.ascii_letters) for _ in range(43))
        else:
            filled[name] = value.replace("REPLACE-ME", secrets.token_urlsafe(12))
    return filled


def k8s_example_secrets() -> dict[str, str]:
    return dict(manifest("Secret", "orgstream-secrets")["stringData"])


def k8s_settings() -> Settings:
    return load_toml(K8S / "orgstream.toml", filled_in(k8s_example_secrets()))


def compose() -> dict[str, Any]:
    (doc,) = yaml_documents(DEPLOY / "compose.yaml")
    return dict(doc)


# --- the linters -------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_non_root_with_orgstream_as_entry_point() -> None:
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    instructions = {line.split()[0] for line in final_stage if line and line[0].isupper()}
    assert {"USER", "HEALTHCHECK", "ENTRYPOINT"} <= instructions
    assert 'ENTRYPOINT ["orgstream"]' in final_stage
    user = next(line for line in final_stage if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert not any("apt-get" in line or "gcc" in line for line in final_stage)


@pytest.mark.parametrize(
    "path",
    sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml")),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_yaml_passes_yamllint(path: Path) -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    problems = list(linter.run(path.read_text(encoding="utf-8"), config, str(path)))
    assert problems == [], "\n".join(f"{p.line}:{p.column} {p.message}" for p in problems)


@pytest.mark.parametrize(("where", "doc"), list(manifests()), ids=lambda v: str(v)[:60])
def test_manifest_is_valid_for_kubernetes(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_except_the_secret_example() -> None:
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}
    (generated,) = kustomization["configMapGenerator"]
    assert generated["files"] == ["orgstream.toml"]


# --- configuration and ports against the project ----------------------------------------


def test_the_kubernetes_config_loads_with_the_project_loader_and_its_secret() -> None:
    settings = k8s_settings()
    assert settings.store.url.startswith("postgresql://")
    assert settings.scim.bearer_token is not None
    assert {t.id for t in settings.tenants} == {"acme", "beta", "gamma"}
    for tenant in settings.tenants:
        assert tenant.callback_token.reveal() != ""


def test_the_compose_config_loads_with_the_project_loader_and_the_env_example() -> None:
    environ = filled_in(env_file(DEPLOY / ".env.example"))
    settings = load_toml(DEPLOY / "compose" / "orgstream.toml", environ)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.store.url.startswith("postgresql://orgstream:")
    assert {t.id for t in settings.tenants} == {"acme", "beta", "gamma"}


def test_manifests_use_the_ports_and_paths_the_processes_serve() -> None:
    settings = k8s_settings()
    routes = {getattr(r, "path", "") for r in create_app(settings, MemoryEventPublisher()).routes}
    receiver = container(manifest("Deployment", "orgstream-receiver"))
    worker = container(manifest("Deployment", "orgstream-worker"))

    assert receiver["ports"] == [
        {"name": "http", "containerPort": settings.receiver.port},
        {"name": "metrics", "containerPort": settings.receiver.metrics_port},
    ]
    assert worker["ports"] == [{"name": "metrics", "containerPort": settings.worker.metrics_port}]
    assert receiver["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert receiver["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= routes
    assert "/metrics" not in routes  # never on the port the vendors reach
    service = manifest("Service", "orgstream-receiver")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    for deployment, port in (("receiver", 9465), ("worker", 9464)):
        annotations = manifest("Deployment", f"orgstream-{deployment}")["spec"]["template"][
            "metadata"
        ]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
    assert settings.receiver.host == settings.worker.metrics_host == "0.0.0.0"
    exposed = f"EXPOSE {settings.receiver.port} {settings.receiver.metrics_port}"
    assert f"{exposed} {settings.worker.metrics_port}" in (DEPLOY / "Dockerfile").read_text(
        encoding="utf-8"
    )


def revealed_secrets(settings: Settings) -> tuple[object, ...]:
    def show(secret: Secret | None) -> str | None:
        return secret.reveal() if secret else None

    per_tenant = [
        (
            show(t.callback_token),
            t.aes_key,
            show(t.api_secret),
            show(t.app_secret),
            show(t.feishu.encrypt_key) if t.feishu else None,
        )
        for t in settings.tenants
    ]
    return (settings.store.url, show(settings.scim.bearer_token), *per_tenant)


def test_every_secret_key_is_one_the_loader_reads() -> None:
    """A misspelt key would be silently ignored: without each one, the settings must differ."""
    secret = filled_in(k8s_example_secrets())
    complete = revealed_secrets(load_toml(K8S / "orgstream.toml", secret))
    for key in secret:
        without = {k: v for k, v in secret.items() if k != key}
        try:
            changed = revealed_secrets(load_toml(K8S / "orgstream.toml", without)) != complete
        except ConfigError as exc:  # a required secret: the loader names it
            changed = key in str(exc)
        assert changed, key


def test_workers_never_outnumber_partitions_and_the_topics_match_the_config() -> None:
    settings = k8s_settings()
    job = container(manifest("Job", "orgstream-topics"))
    script = job["args"][0]
    partitions = {
        topic: int(count)
        for topic, count in re.findall(r"--topic (\S+) --partitions (\d+)", script)
    }
    assert set(partitions) == set(settings.kafka.topics)
    worker = manifest("Deployment", "orgstream-worker")
    assert worker["spec"]["replicas"] <= partitions[settings.kafka.topic]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60

    services = compose()["services"]
    assert services["worker"]["deploy"]["replicas"] <= partitions[settings.kafka.topic]
    assert set(settings.kafka.topics) == set(
        re.findall(r"--topic (\S+) --partitions", services["topics"]["command"][0])
    )


@pytest.mark.parametrize("where", ["kubernetes", "compose"])
def test_the_directory_feed_is_compacted_and_the_others_are_not(where: str) -> None:
    """The test brokers do not compact: the deployments must ask for it."""
    settings = k8s_settings()
    if where == "kubernetes":
        script = container(manifest("Job", "orgstream-topics"))["args"][0]
    else:
        script = compose()["services"]["topics"]["command"][0]
    commands = [c for c in script.split("--create") if "--topic" in c]
    compacted = {
        re.findall(r"--topic (\S+)", c)[0] for c in commands if "cleanup.policy=compact" in c
    }
    assert compacted == {settings.kafka.directory_topic}


def test_compose_scrapes_the_ports_the_config_opens_and_keeps_secrets_out() -> None:
    services = compose()["services"]
    assert services["receiver"]["ports"] == ["127.0.0.1:8080:8080"]
    prometheus = (DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8")
    assert "receiver:9465" in prometheus
    assert "port: 9464" in prometheus
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert "env_file: .env" in text
    assert "change-me" not in text
    gitignore = (DEPLOY.parent / ".gitignore").read_text(encoding="utf-8")
    assert "deploy/.env" in gitignore.splitlines()


# --- alerts and dashboard against the metrics -------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    (doc,) = yaml_documents(DEPLOY / "prometheus" / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_parse_and_name_only_exported_metrics() -> None:
    exported = exported_metric_names() | PROMETHEUS_SERIES
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert metric_names_in(rule["expr"]) <= exported, rule["alert"]


def test_the_alerts_cover_what_an_operator_must_hear_about() -> None:
    watched = set().union(*(metric_names_in(rule["expr"]) for rule in alert_rules()))
    assert {
        "kafka_consumergroup_group_sum_lag",
        "orgstream_freshness_seconds_bucket",
        "orgstream_events_total",
        "orgstream_callbacks_total",
        "orgstream_scim_target_quarantined",
    } <= watched


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "orgstream-dashboard.json").read_text("utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_the_dashboard_queries_only_exported_metrics() -> None:
    exported = exported_metric_names()
    exprs = dashboard_expressions()
    assert len(exprs) > 15
    for expr in exprs:
        # Grafana fills the template variables; label_values() is Grafana's, not PromQL.
        expr = re.sub(r"\$\{?(\w+)\}?", "x", expr)
        if expr.startswith("label_values("):
            expr = expr.removeprefix("label_values(").split(",")[0]
        assert metric_names_in(expr) <= exported, expr


def test_the_exported_names_are_read_from_the_registries() -> None:
    """The comparison above is only as good as this list: spot-check it both ways."""
    names = exported_metric_names()
    assert {"orgstream_events_total", "orgstream_callbacks_total"} <= names
    assert "kafka_consumergroup_group_lag" in names
    assert "process_resident_memory_bytes" in names
    assert "orgstream_no_such_metric_total" not in names


# --- the edge: what is reachable, and secrets that cannot stay examples -----------------


def test_compose_publishes_only_on_loopback_and_limits_every_orgstream_service() -> None:
    services = compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert set(published) == {"receiver", "prometheus"}
    for ports in published.values():
        assert all(port.startswith("127.0.0.1:") for port in ports), ports
    for name in ("receiver", "worker", "prometheus"):
        limits = services[name]["deploy"]["resources"]["limits"]
        assert {"cpus", "memory"} <= set(limits), name


@pytest.mark.parametrize(
    ("example", "config"),
    [
        (DEPLOY / ".env.example", DEPLOY / "compose" / "orgstream.toml"),
        (K8S / "secret.example.yaml", K8S / "orgstream.toml"),
    ],
    ids=["compose", "kubernetes"],
)
def test_the_example_secrets_are_refused_until_replaced(example: Path, config: Path) -> None:
    secrets_given = env_file(example) if example.suffix == ".example" else k8s_example_secrets()
    with pytest.raises(ConfigError, match="still the example value"):
        load_toml(config, secrets_given)
    for name in secrets_given:  # each one alone is enough to refuse
        one_left = {**filled_in(secrets_given), name: secrets_given[name]}
        if name != "POSTGRES_PASSWORD":
            with pytest.raises(ConfigError, match="example value"):
                load_toml(config, one_left)


def test_network_policies_admit_only_the_callback_port_and_monitoring() -> None:
    deny = manifest("NetworkPolicy", "orgstream-default-deny-ingress")["spec"]
    assert (deny["policyTypes"], deny.get("ingress")) == (["Ingress"], None)
    (selected,) = deny["podSelector"]["matchExpressions"]
    pods = {
        doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for _, doc in manifests()
        if doc["kind"] in ("Deployment", "Job")
    }
    assert (selected["operator"], set(selected["values"])) == ("In", pods)
    receiver = manifest("NetworkPolicy", "orgstream-receiver")["spec"]["ingress"]
    open_rules = [rule for rule in receiver if "from" not in rule]
    assert [p["port"] for rule in open_rules for p in rule["ports"]] == ["http"]
    for name in ("orgstream-receiver", "orgstream-worker"):
        rules = manifest("NetworkPolicy", name)["spec"]["ingress"]
        metrics = [rule for rule in rules if any(p["port"] == "metrics" for p in rule["ports"])]
        (only,) = metrics
        selector = only["from"][0]["namespaceSelector"]["matchLabels"]
        assert selector == {"kubernetes.io/metadata.name": "monitoring"}


def test_no_pod_gets_a_service_account_token() -> None:
    for where, doc in manifests():
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            assert pod.get("automountServiceAccountToken") is False, where
