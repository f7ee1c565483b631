"""deploy/k8s: the built-in kinds valid for Kubernetes (kubernetes-validate, strict), the
Strimzi resources valid against the vendored schema (tests/deploy/strimzi-v1beta2.schema.yaml:
written for this repository, see its header), the kustomization renderable, and the files
agreeing with each other, with compose's topics and with the worker's own declarations."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from schemas import Config
from streams.kafka.broker import read_meta
from streams.kafka.cluster import cluster_properties
from streams.settings import Settings, read_config

from .conftest import ROOT, load_all
from .files import (
    K8S,
    SETTINGS,
    STRIMZI_KINDS,
    by_kind,
    compose,
    compose_topics,
    dockerfile,
    env_of,
    k8s_topics,
    manifests,
    one,
)


def test_the_built_in_resources_pass_kubernetes_validate_strictly(tmp_path):
    import kubernetes_validate

    validated = []
    for _, doc in manifests():
        if doc["kind"] in STRIMZI_KINDS:
            continue
        for version in ("1.29.0", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(doc, version, strict=True)
        validated.append(doc["kind"])
    assert {"Namespace", "StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap", "Secret",
            "Job"} <= set(validated)
    # and the check is real: a misspelt field is refused
    sts = copy.deepcopy(one("StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)


def strimzi_schema() -> dict:
    return yaml.safe_load((Path(__file__).parent / "strimzi-v1beta2.schema.yaml")
                          .read_text(encoding="utf-8"))


def test_the_strimzi_resources_match_the_vendored_schema():
    schema = strimzi_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    docs = [d for _, d in manifests() if d["kind"] in STRIMZI_KINDS]
    assert {d["kind"] for d in docs} == STRIMZI_KINDS
    for doc in docs:
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not problems, f"{doc['kind']} {doc['metadata']['name']}: {problems}"
    # the schema refuses what Strimzi would: ZooKeeper, a misspelt field, a managed option
    kafka = one("Kafka")
    for breaks in (lambda k: k["spec"].update(zookeeper={"replicas": 3}),
                   lambda k: k["spec"]["kafka"].update(replica=3),
                   lambda k: k["spec"]["kafka"]["config"].update(listeners="PLAINTEXT://:9092"),
                   lambda k: k["metadata"]["annotations"].pop("strimzi.io/kraft")):
        broken = copy.deepcopy(kafka)
        breaks(broken)
        assert not validator.is_valid(broken)


def test_the_kustomization_applies_every_manifest_but_the_example_secret():
    # (read here rather than by `kubectl kustomize`: kubectl is not on every machine that
    # runs these tests; the files it lists are each validated above)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    applied = kustomization["resources"]
    assert all((K8S / f).is_file() for f in applied), applied
    kinds = sorted(d["kind"] for f in applied for d in load_all(K8S / f))
    assert "Secret" not in kinds, "the example secret must never be applied as it is"
    manifests = sorted(f.name for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml")
    # applied apart: the example Secret (filled in by the operator) and the import Job
    assert set(manifests) - set(applied) == {"secret.example.yaml", "registry-import.yaml"}


def test_the_cluster_keeps_every_acknowledged_write_through_a_broker_loss():
    kafka, pool = one("Kafka"), one("KafkaNodePool")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    # the durability `whistle broker --nodes 3` and the cluster chaos test run with
    assert {k: str(config[k]) for k in cluster_properties()} == cluster_properties()
    assert config["unclean.leader.election.enable"] is False
    assert pool["spec"]["replicas"] >= 3 and set(pool["spec"]["roles"]) == {"controller",
                                                                           "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    topics = by_kind("KafkaTopic")
    assert all(t["spec"]["replicas"] == 3 for t in topics)
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
               for t in topics)


def test_the_workers_are_configured_as_the_topics_were_made():
    sts = one("StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    partitions = {t["spec"]["partitions"] for t in by_kind("KafkaTopic")}
    assert partitions == {int(env["WHISTLE_PARTITIONS"])}, "every topic co-partitioned"
    assert sts["spec"]["replicas"] <= int(env["WHISTLE_PARTITIONS"])
    assert env["WHISTLE_REPLICATION"] == "3"
    assert env["WHISTLE_STORE"] == "rocksdb://" and env["WHISTLE_HOST"] == "0.0.0.0"
    # each pod announces the stable name the others forward requests to
    pod_name = {e["name"]: e.get("valueFrom") for e in container["env"]}["POD_NAME"]
    assert pod_name == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["WHISTLE_CANONICAL_URL"] == (
        f"http://$(POD_NAME).{sts['spec']['serviceName']}.{sts['metadata']['namespace']}.svc:"
        f"{env['WHISTLE_PORT']}")
    assert one("Service", sts["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    assert env["WHISTLE_BROKER"] == f"kafka://{one('Kafka')['metadata']['name']}" \
        "-kafka-bootstrap:9092"
    # the tables on a volume of each pod's own, where WHISTLE_DATA points
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[env["WHISTLE_DATA"]] in claims
    # playbooks from the ConfigMap, tokens from the Secret the config names
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    playbooks = volumes[mounts[env["WHISTLE_PLAYBOOKS"]]]["configMap"]["name"]
    assert playbooks == one("ConfigMap")["metadata"]["name"]
    config_dir = str(Path(env["WHISTLE_CONFIG"]).parent)
    secret = volumes[mounts[config_dir]]["secret"]["secretName"]
    assert secret == one("Secret")["metadata"]["name"]
    assert Path(env["WHISTLE_CONFIG"]).name in one("Secret")["stringData"]


def test_the_workers_are_probed_limited_and_unprivileged():
    pod = one("StatefulSet")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"][
        "memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(
        next(a for i, a in dockerfile() if i == "USER").split(":")[0]), "the image's user"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    labels = one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    for selector in ([one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]]
                     + [s["spec"]["selector"] for s in by_kind("Service")]):
        assert selector.items() <= labels.items()
    assert one("Service", "whistle-workers")["spec"]["clusterIP"] == "None"
    assert one("StatefulSet")["spec"]["serviceName"] == "whistle-workers"


def test_the_example_secret_is_a_config_a_worker_accepts(tmp_path):
    text = one("Secret")["stringData"]["whistle.yaml"]
    (tmp_path / "whistle.yaml").write_text(text, encoding="utf-8")
    config = read_config(tmp_path / "whistle.yaml")
    assert isinstance(config, Config)
    assert {g.role for g in config.tokens} == {"gateway", "admin", "department"}
    access = Settings(config=tmp_path / "whistle.yaml").access()  # departments exist too
    assert set(access.webhooks) == {"police"}


def test_the_playbooks_configmap_is_the_library():
    data = one("ConfigMap")["data"]
    library = {p.name: p.read_text(encoding="utf-8")
               for p in (ROOT / "playbooks" / "library").glob("*.yaml")}
    assert data == library, ("deploy/k8s/playbooks.yaml differs from playbooks/library: "
                             "run `python deploy/k8s/playbooks.py`")



def test_compose_and_kubernetes_create_the_same_topics_with_the_same_settings(tmp_path):
    assert compose_topics(tmp_path) == k8s_topics()


def test_the_topics_are_what_the_worker_declares_with_compaction_and_retention():
    from streams.app import build

    whistle = build(Settings(partitions=12))
    declared = {t.get_topic_name(): t for t in whistle.topics.all()}
    changelogs = {table.changelog_topic.get_topic_name(): table.changelog_topic
                  for table in whistle.app.tables.values()}
    made = k8s_topics()
    assert set(made) == set(declared) | set(changelogs)
    for name, topic in {**declared, **changelogs}.items():
        policy = made[name]["config"]["cleanup.policy"].split(",")
        if topic.compacting:  # the tables and the registry: the latest value per key is the state
            assert policy == ["compact"], name
        else:                 # history: a key has many records, and retention bounds them
            assert "delete" in policy and int(made[name]["config"]["retention.ms"]) > 0, name
    keep = {n: int(t["config"]["retention.ms"]) / 86_400_000 for n, t in made.items()
            if "retention.ms" in t["config"]}
    assert keep["whistle.timeline"] == keep["whistle.incidents"] == 400
    assert all(keep[f"whistle.tasks.{d}"] == 400 for d in whistle.departments)
    assert keep["whistle.alarms"] == 90


def test_every_broker_takes_the_largest_record_a_worker_sends():
    """An incident's timeline is one table record; a broker refusing it would stop the stage
    (seen in the cluster chaos run at Kafka's 1 MiB default)."""
    sends = Settings().max_message_bytes
    embedded = read_meta(ROOT / "streams" / "kafka" / "server.properties")
    kafka = one("Kafka")["spec"]["kafka"]["config"]
    composed = compose()["services"]["kafka"]["environment"]
    for where, limit, fetch in (
            ("streams/kafka/server.properties", embedded["message.max.bytes"],
             embedded["replica.fetch.max.bytes"]),
            ("deploy/k8s/kafka.yaml", kafka["message.max.bytes"],
             kafka["replica.fetch.max.bytes"]),
            ("deploy/compose.yaml", composed["KAFKA_MESSAGE_MAX_BYTES"],
             composed["KAFKA_REPLICA_FETCH_MAX_BYTES"])):
        assert int(limit) >= sends and int(fetch) >= int(limit), where
