"""The image, as far as it can be tried without a Docker engine: the Dockerfile linted with
hadolint and read for what it promises (two stages, a numeric non-root user, `whistle worker`,
the health check, production settings); its build stage (`pip wheel` of exactly the paths it
copies) and its runtime stage (that wheel installed on its own, started with the Dockerfile's
ENV, ENTRYPOINT and CMD, probed with its HEALTHCHECK) against the embedded broker. What this
cannot show: the base image itself and the user's file permissions in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from streams.kafka.broker import free_port
from tests.integration.workers import demo_broker, wait

from .conftest import DEPLOY, ROOT
from .files import SETTINGS, dockerfile, dockerfile_env, run, tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


# -- the Dockerfile, as written --------------------------------------------------------------

def test_the_dockerfile_passes_hadolint_at_every_level():
    lint = run(tool("hadolint"), "--failure-threshold", "info", "--no-color",
               DEPLOY / "Dockerfile")
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_image_is_multi_stage_non_root_and_runs_whistle_worker():
    steps = dockerfile()
    stages = [args for i, args in steps if i == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build"), stages
    args = {k: v for i, a in steps if i == "ARG" for k, _, v in [a.partition("=")]}
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    final = steps[max(n for n, (i, _) in enumerate(steps) if i == "FROM"):]
    user = [a for i, a in final if i == "USER"]
    assert user and re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", user[-1]), "a numeric non-root user"
    assert json.loads(next(a for i, a in final if i == "ENTRYPOINT")) == ["whistle"]
    assert json.loads(next(a for i, a in final if i == "CMD")) == ["worker"]
    assert json.loads(next(a for i, a in final if i == "VOLUME")) == ["/var/lib/whistle"]
    health = next(a for i, a in final if i == "HEALTHCHECK")
    assert "/healthz" in health and "urllib.request" in health and "curl" not in health
    # the runtime stage installs only the wheels the build stage made
    assert any("--no-index" in a and "/wheels" in a for i, a in final if i == "RUN")


def test_the_image_environment_is_production_and_names_real_settings():
    env = dockerfile_env()
    assert env["WHISTLE_HOST"] == "0.0.0.0"
    assert env["WHISTLE_STORE"] == "rocksdb://"
    assert env["WHISTLE_DATA"] == "/var/lib/whistle"
    assert {k for k in env if k.startswith("WHISTLE_")} <= SETTINGS


def test_the_build_context_sends_only_what_the_build_copies():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {src for i, a in dockerfile() if i == "COPY" and "--from" not in a
              for src in a.split()[:-1]}
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


# -- the image's stages, run without Docker ---------------------------------------------

def listening_on_all_addresses(port: int) -> bool:
    """Whether a socket listens on 0.0.0.0:`port` (what WHISTLE_HOST=0.0.0.0 must give, so the
    API is reachable from outside a container)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port and address == "00000000":
            return True
    return False


def test_the_wheel_built_as_the_image_builds_it_runs_as_the_image_runs_it(tmp_path):
    steps = dockerfile()
    # build stage: a context holding only what the Dockerfile copies, then its `pip wheel`
    context = tmp_path / "context"
    context.mkdir()
    for instruction, args in steps:
        if instruction == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                (shutil.copytree if (ROOT / source).is_dir() else shutil.copy)(
                    ROOT / source, context / source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "--disable-pip-version-check", "--wheel-dir", str(tmp_path / "wheels"),
                            str(context)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((tmp_path / "wheels").glob("whistle-*.whl"))

    # runtime stage: that wheel alone (its dependencies are this venv's, as the image's are the
    # build stage's wheels of the same requirements)
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                                "--quiet", "--disable-pip-version-check", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    volume = tmp_path / "var-lib-whistle"
    volume.mkdir()
    port = free_port()

    with demo_broker(tmp_path) as broker:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(site), **dockerfile_env(),
               "WHISTLE_DATA": str(volume), "WHISTLE_PORT": str(port),
               "WHISTLE_BROKER": broker.url, "WHISTLE_LOG_LEVEL": "warning"}
        where = subprocess.run([sys.executable, "-c", "import streams; print(streams.__file__)"],
                               env=env, cwd=volume, capture_output=True, text=True)
        assert where.stdout.startswith(str(site)), "the worker must run the wheel's code"
        entrypoint = json.loads(next(a for i, a in steps if i == "ENTRYPOINT"))
        cmd = json.loads(next(a for i, a in steps if i == "CMD"))
        log = open(tmp_path / "worker.log", "w")
        worker = subprocess.Popen([str(site / "bin" / entrypoint[0]), *entrypoint[1:], *cmd],
                                  env=env, cwd=volume, stdout=log, stderr=subprocess.STDOUT)
        try:
            def ready() -> bool:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    return answer.status_code == 200
                except httpx.HTTPError:
                    return False
            wait(ready, 60, "the image's worker to be ready")
            assert listening_on_all_addresses(port)
            assert list(volume.rglob("*.sst")) or list(volume.rglob("CURRENT")), \
                "WHISTLE_STORE=rocksdb:// keeps the tables on the volume"
            alarm = {"alarm_id": "image-1", "kind": "fire_report", "site_id": "jyh-yinfeng-lab-3",
                     "occurred_at": datetime.now(UTC).isoformat(timespec="seconds")}
            assert httpx.post(f"http://127.0.0.1:{port}/api/v1/alarms", json=alarm,
                              timeout=10).status_code == 202

            health = next(a for i, a in steps if i == "HEALTHCHECK")
            probe = [sys.executable, *json.loads(health[health.index("CMD") + 3:])[1:]]
            passed = subprocess.run(probe, env={"WHISTLE_PORT": str(port)}, timeout=10)
            assert passed.returncode == 0

            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)   # what `docker stop` and Kubernetes send
            assert worker.wait(timeout=30) == 0
            assert time.monotonic() - started < 30, "within the pods' termination grace period"
            assert subprocess.run(probe, env={"WHISTLE_PORT": str(port)}, timeout=10,
                                  capture_output=True).returncode != 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            log.close()
