"""Reading the deploy/ files for the tests: the Dockerfile's instructions, the compose file,
the Kubernetes manifests by kind, the topics compose and Kubernetes create, and the tools that
check them (from the venv, pip's test extra, or the system, `make test`'s apt-get)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streams.settings import Settings

from .conftest import DEPLOY, load_all

K8S = DEPLOY / "k8s"
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic"}
VENV_BIN = Path(sys.executable).parent
SETTINGS = {f"WHISTLE_{name.upper()}" for name in Settings.model_fields}


def tool(name: str) -> str:
    """A command-line tool from the venv (pip's test extra) or the system (make test's apt)."""
    found = shutil.which(name, path=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")
    if found is None:
        pytest.fail(f"{name} is missing: `make test` installs it (see the Makefile)")
    return found


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def manifests() -> list[tuple[Path, dict]]:
    """Every resource in deploy/k8s (the kustomization itself is not one)."""
    return [(f, doc) for f in sorted(K8S.glob("*.yaml")) if f.name != "kustomization.yaml"
            for doc in load_all(f)]


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def one(kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def env_of(container: dict) -> dict[str, str]:
    """The container's literal environment (not the `valueFrom` ones, like POD_NAME)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def compose_topics(tmp_path: Path) -> dict[str, dict]:
    """What deploy/kafka/create-topics.sh asks kafka-topics.sh for, run with a stand-in that
    records its arguments."""
    record = tmp_path / "calls"
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {record}\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {"KAFKA_TOPICS": str(fake), "PATH": "/usr/bin:/bin", "PARTITIONS": "12",
           "REPLICATION": "3"}
    made = subprocess.run(["bash", str(DEPLOY / "kafka" / "create-topics.sh")], text=True,
                          capture_output=True, env=env)
    assert made.returncode == 0, made.stderr
    topics = {}
    for line in record.read_text().splitlines():
        words = line.split()
        assert "--create" in words and "--if-not-exists" in words
        flag = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}
        configs = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--config")
        topics[flag["--topic"]] = {"partitions": int(flag["--partitions"]),
                                   "replicas": int(flag["--replication-factor"]),
                                   "config": configs}
    return topics


def k8s_topics() -> dict[str, dict]:
    """The KafkaTopic resources, in compose_topics' form."""
    return {t["spec"]["topicName"]: {"partitions": t["spec"]["partitions"],
                                     "replicas": t["spec"]["replicas"],
                                     "config": {k: str(v) for k, v in
                                                t["spec"].get("config", {}).items()}}
            for t in by_kind("KafkaTopic")}


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "whistle.json")
                      .read_text(encoding="utf-8"))
