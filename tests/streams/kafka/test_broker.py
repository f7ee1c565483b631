"""`whistle broker`: the embedded Apache Kafka node alone, as an operator meets it. It is ready
when a client can produce, keeps its records across a restart on the same data directory,
stops cleanly on SIGTERM, and refuses what it cannot use with the path or port and the fix,
changing nothing. A disk that fills while it runs stops it, and it says why.

    .venv/bin/pytest -s tests/streams/kafka/test_broker.py    # prints start-to-ready times
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.kafka.broker import free_port

pytestmark = pytest.mark.integration

READY = re.compile(r"^whistle broker ready at kafka://127\.0\.0\.1:(\d+) \(data (.+)\)$")


def broker(data: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port", str(port),
                             "--data", str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def ready_line(process: subprocess.Popen, timeout: float = 60) -> str:
    """The first line it prints (the ready line), or fail with what it said."""
    line = process.stdout.readline()
    if not READY.match(line.strip()):
        process.kill()
        pytest.fail(f"no ready line: {line!r}\n{process.stderr.read()[-3000:]}")
    return line.strip()


def refused(data: Path, port: int, env: dict[str, str] | None = None) -> str:
    """What `whistle broker` says when it refuses to start (exit code 1)."""
    out = subprocess.run([sys.executable, "-m", "streams.cli", "broker", "--port", str(port),
                          "--data", str(data)], capture_output=True, text=True, timeout=90,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == ""
    return out.stderr


async def produce_and_read(port: int, topic: str, value: bytes | None) -> list[bytes]:
    """Create `topic` if missing, produce `value` (idempotent, acks=all) unless None, and read
    the topic back whole."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    server = f"127.0.0.1:{port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=server)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    if value is not None:
        producer = AIOKafkaProducer(bootstrap_servers=server, acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=server, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values = []
        while len(values) < end:
            batch = await consumer.getmany(tp, timeout_ms=2000)
            values += [r.value for r in batch.get(tp, [])]
        return values
    finally:
        await consumer.stop()


def test_ready_when_clients_can_produce_durable_and_stopped_cleanly(tmp_path):
    data, port = tmp_path / "data", free_port()
    started = time.monotonic()
    first = broker(data, port)
    line = ready_line(first)
    fresh = time.monotonic() - started
    assert line == f"whistle broker ready at kafka://127.0.0.1:{port} (data {data})"
    assert asyncio.run(produce_and_read(port, "durable", "消防 1".encode())) == [
        "消防 1".encode()]
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, first.stderr.read()
    assert (data / "kafka" / "meta.properties").is_file()
    written = (data / "kafka.properties").read_text().splitlines()
    assert written.count(f"log.dirs={data / 'kafka'}") == 1
    assert "group.initial.rebalance.delay.ms=0" in written
    assert not [line for line in written if line.startswith("whistle.")]  # the JVM's, not Kafka's

    started = time.monotonic()
    second = broker(data, port)
    ready_line(second)
    again = time.monotonic() - started
    try:
        assert asyncio.run(produce_and_read(port, "durable", b"2")) == ["消防 1".encode(), b"2"]
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    print(f"\nwhistle broker: ready {fresh:.1f} s after start on a new data directory, "
          f"{again:.1f} s on the same one")


def test_a_busy_port_is_named(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = refused(tmp_path / "data", port)
    assert f"port {port} on 127.0.0.1 is in use" in said and "--port" in said
    assert not (tmp_path / "data" / "kafka").exists()


def test_another_clusters_data_is_refused_and_left_alone(tmp_path):
    logs = tmp_path / "data" / "kafka"
    logs.mkdir(parents=True)
    meta = "version=1\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\nnode.id=3\n"
    (logs / "meta.properties").write_text(meta)
    said = refused(tmp_path / "data", free_port())
    assert f"{logs} was formatted by another Kafka cluster" in said
    assert "q1Sh-9_ISia_zwGINzRvyQ" in said and "node.id 3" in said
    assert (logs / "meta.properties").read_text() == meta

    other = tmp_path / "other"
    (other / "kafka").mkdir(parents=True)
    (other / "kafka" / "notes.txt").write_text("not Kafka's")
    said = refused(other, free_port())
    assert "holds files but no meta.properties" in said
    assert (other / "kafka" / "notes.txt").read_text() == "not Kafka's"


def test_a_data_directory_that_cannot_be_written_is_named(tmp_path):
    (tmp_path / "a-file").write_text("x")
    said = refused(tmp_path / "a-file" / "data", free_port())
    assert f"the data directory {tmp_path / 'a-file' / 'data'} is not writable" in said


@contextmanager
def small_disk(folder: Path, mib: int) -> Iterator[Path]:
    """A file system of `mib` MiB at `folder` (tmpfs; root only, as CI and `make test` run)."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs needs root (CI and `make test` run as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
                   check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_nearly_full_disk_is_named(tmp_path):
    """The broker needs 256 MiB free to start."""
    with small_disk(tmp_path / "small", 64) as small:
        said = refused(small / "data", free_port())
    assert f"the data directory {small / 'data'} has" in said
    assert "MiB free; the broker needs at least 256 MiB" in said


async def produce_until_refused(port: int) -> str:
    """Produce 100 KB records until the broker refuses or goes; what stopped it."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", acks="all",
                                request_timeout_ms=5000)
    await producer.start()
    try:
        for _ in range(100):
            await producer.send_and_wait("fill", b"x" * 100_000)
        return "nothing"
    except Exception as exc:
        return type(exc).__name__
    finally:
        await producer.stop()


def test_a_disk_that_fills_while_running_stops_the_broker_and_says_why(tmp_path):
    with small_disk(tmp_path / "small", 300) as small:
        port = free_port()
        running = broker(small / "data", port)
        ready_line(running)
        asyncio.run(produce_and_read(port, "fill", None))  # the topic, before the disk fills
        free = shutil.disk_usage(small).free
        (small / "filler").write_bytes(b"\0" * (free - 2**20))
        stopped_by = asyncio.run(produce_until_refused(port))
        assert running.wait(30) == 1, stopped_by
        said = running.stderr.read()
    assert "whistle broker: the broker exited with code" in said
    assert str(small / "data" / "broker.log") in said and "No space left on device" in said


def test_a_broker_that_exits_while_starting_says_why(tmp_path):
    """A log directory whose metadata Kafka cannot read: it exits, and its log's error is
    quoted."""
    logs = tmp_path / "data" / "kafka"
    logs.mkdir(parents=True)
    (logs / "meta.properties").write_text("version=1\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\n"
                                          "node.id=1\ndirectory.id=not-a-uuid\n")
    said = refused(tmp_path / "data", free_port())
    assert "the embedded Kafka exited with code" in said
    assert str(tmp_path / "data" / "broker.log") in said


def test_missing_java_or_maven_is_named(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    said = refused(tmp_path / "data", free_port(), {"PATH": str(bin_dir)})
    assert "needs `java`" in said and "openjdk-17-jre-headless" in said

    (bin_dir / "java").symlink_to(shutil.which("java"))
    said = refused(tmp_path / "data", free_port(), {
        "PATH": str(bin_dir), "WHISTLE_KAFKA_CACHE": str(tmp_path / "empty-cache")})
    assert "needs `mvn`" in said and "apt-get install maven" in said
