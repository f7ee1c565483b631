"""The embedded broker: one Apache Kafka node in KRaft mode (broker and controller in one JVM),
the release deploy/ runs, with its log directory under a data directory so that it survives
restarts.

    >>> with EmbeddedBroker(data=Path(".whistle")) as broker:
    ...     print(broker.url)         # kafka://127.0.0.1:<free port>

Its jars come from Maven Central, once: `kafka_jars()` resolves `streams/kafka/pom.xml` into
`~/.cache/whistle/kafka-<version>/libs` (`WHISTLE_KAFKA_CACHE` elsewhere) and later starts use
that folder. Its settings are `streams/kafka/server.properties`, where each is explained; this
module adds only what belongs to one node (its id, ports and log directory).

Faults are refused before the JVM starts where they can be seen (no java or mvn, a busy port,
a data directory Kafka did not format for this node, one that is not writable or nearly full),
and otherwise named from the broker's own log. Nothing here deletes data.

Why this module is long: it is one node's whole life, each step with the fault it names (the
jars, the data directory's checks, formatting, the JVM's start, readiness, what the log says);
a cluster of nodes is `streams.kafka.cluster`.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streams.kafka import classes
from streams.procs import Child, child_options

__all__ = ["KAFKA_VERSION", "BrokerError", "EmbeddedBroker", "bootstrap_servers", "free_port",
           "kafka_jars", "port_free", "wait_for_leaders", "wait_for_port"]

KAFKA = Path(__file__).parent
KAFKA_VERSION = "3.9.1"        # kafka.version in streams/kafka/pom.xml and deploy/'s images
NODE_ID = 1
MIN_FREE_BYTES = 256 * 2**20   # below this Kafka soon takes its log directory offline
OWN = "whistle."               # server.properties lines that are Whistle's, not Kafka's


class BrokerError(RuntimeError):
    """The embedded broker cannot start or stopped; the message names what and the fix."""


def bootstrap_servers(broker: str) -> list[str]:
    """aiokafka's servers from a Faust broker URL.

    >>> bootstrap_servers("kafka://a:9092;kafka://b:9092")
    ['a:9092', 'b:9092']
    """
    return [b.removeprefix("kafka://") for b in broker.split(";")]


def free_port() -> int:
    """A port free to listen on, below the kernel's ephemeral range. A port the kernel hands
    out (bind to 0) comes from that range, from which every outgoing connection takes its own
    too: one took it between the pick and the listen (a CI run: "address already in use")."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 16_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    with socket.socket() as s:  # all taken: the kernel's pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 if it does not say)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_free(host: str, port: int) -> bool:
    """Whether `port` can be listened on (a socket in TIME_WAIT does not count as in use)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, timeout: float, alive: Callable[[], bool] = lambda: True,
                  host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def cache_dir() -> Path:
    """Where the broker's jars are kept: WHISTLE_KAFKA_CACHE, else the user's cache folder."""
    if os.environ.get("WHISTLE_KAFKA_CACHE"):
        return Path(os.environ["WHISTLE_KAFKA_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "whistle" / f"kafka-{KAFKA_VERSION}"


def _need(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise BrokerError(f"the embedded Apache Kafka needs `{tool}`, which is not on PATH: "
                          f"install {package} (Debian: apt-get install {package}; "
                          f"`make up` and `make test` do it)")
    return found


def kafka_jars(say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Path:
    """The folder of the broker's jars, resolved with Maven on first use (one progress line
    through `say`). Concurrent callers wait for one another; a failed resolution leaves
    nothing half-written behind."""
    pom = KAFKA / "pom.xml"
    stamp = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cache = cache_dir()
    libs = cache / "libs"

    def cached() -> bool:
        return (cache / "pom.sha").is_file() and (cache / "pom.sha").read_text().strip() == stamp

    if cached():
        return libs
    _need("java", "openjdk-17-jre-headless")
    mvn = _need("mvn", "maven")
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached():  # another start fetched them meanwhile
            return libs
        say(f"whistle: fetching Apache Kafka {KAFKA_VERSION} with Maven into {cache} "
            f"(once; later starts use it)")
        scratch = Path(tempfile.mkdtemp(prefix="libs-", dir=cache))
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={scratch}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0 or not any(scratch.glob("kafka_2.13-*.jar")):
            shutil.rmtree(scratch, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise BrokerError(f"Maven could not fetch Apache Kafka {KAFKA_VERSION} "
                              f"({pom}, exit code {done.returncode}):\n{tail}")
        old = cache / f"libs.old-{os.getpid()}"
        if libs.exists():
            libs.rename(old)
        scratch.rename(libs)
        shutil.rmtree(old, ignore_errors=True)
        (cache / "pom.sha").write_text(stamp + "\n")
    return libs


def cluster_id() -> str:
    """A new KRaft cluster id, as Kafka's Uuid writes one (URL-safe base64, 22 characters)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def read_meta(path: Path) -> dict[str, str]:
    """A Kafka `meta.properties` file as a dict."""
    meta = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            meta[key.strip()] = value.strip()
    return meta


def check_data(data: Path, node_id: int = NODE_ID) -> str:
    """Refuse a data directory the node cannot use; returns "new" or "formatted".

    Refused with the path and the fix: one that cannot be created or written, one with less
    than MIN_FREE_BYTES free, and a `kafka/` log directory that Kafka did not format for this
    node (another cluster's, a ZooKeeper-mode one, or files that are not Kafka's)."""
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise BrokerError(f"the data directory {data} is not writable ({exc.strerror}): "
                          f"choose another with --data / WHISTLE_DATA, or fix its "
                          f"permissions") from None
    free = shutil.disk_usage(data).free
    if free < MIN_FREE_BYTES:
        raise BrokerError(f"the data directory {data} has {free // 2**20} MiB free; the broker "
                          f"needs at least {MIN_FREE_BYTES // 2**20} MiB: free some space or "
                          f"choose another with --data")
    logs = data / "kafka"
    meta_file = logs / "meta.properties"
    if meta_file.is_file():
        meta = read_meta(meta_file)
        if meta.get("version") != "1" or meta.get("node.id") != str(node_id):
            who = (f"node.id {meta['node.id']}" if "node.id" in meta
                   else f"broker.id {meta.get('broker.id', '?')} (ZooKeeper mode)")
            raise BrokerError(
                f"{logs} was formatted by another Kafka cluster (cluster.id "
                f"{meta.get('cluster.id', '?')}, {who}; this node is KRaft node.id {node_id}): "
                f"nothing was changed. Choose another --data, or move {logs} away to start "
                f"an empty broker")
        return "formatted"
    if logs.exists() and any(logs.iterdir()):
        raise BrokerError(f"{logs} holds files but no meta.properties, so it is not a Kafka "
                          f"log directory this node formatted: nothing was changed. Choose "
                          f"another --data, or move {logs} away")
    return "new"


def settings() -> tuple[str, list[str]]:
    """`streams/kafka/server.properties` as Kafka gets it (without the `whistle.*` lines), and
    the JVM options those lines give."""
    kafka, java = [], []
    for line in (KAFKA / "server.properties").read_text().splitlines(keepends=True):
        if line.startswith(OWN + "java.options="):
            java = line.split("=", 1)[1].split()
        elif not line.startswith(OWN):
            kafka.append(line)
    return "".join(kafka), java


def _log_tail(path: Path | None, lines: int = 12) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    errors = [line for line in text if " ERROR " in line or "Exception" in line
              or line.startswith("Error")]
    return "\n".join((errors or text)[-lines:])


class EmbeddedBroker(Child):
    """Start and stop one Apache Kafka node on `host` (127.0.0.1) whose data lives in
    `data/kafka`.

    `port` is the clients' port (a free one if None); the controller listens on
    `controller_port` (another free one if None). `log` is where the JVM writes (default
    `data/broker.log`). Alone it is its own quorum; `streams.kafka.cluster` gives each of
    several nodes its `node_id`, the quorum's `voters`, the `cluster` id and `extra` settings."""

    STOP_TIMEOUT = 30.0  # a clean shutdown flushes and writes its recovery checkpoints

    def __init__(self, data: Path, port: int | None = None, log: Path | None = None, *,
                 host: str = "127.0.0.1", node_id: int = NODE_ID,
                 controller_port: int | None = None, voters: str | None = None,
                 cluster: str | None = None, extra: dict[str, str] | None = None) -> None:
        self.data = Path(data).absolute()
        self.host = host
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.node_id = node_id
        self.voters = voters or f"{node_id}@{host}:{self.controller_port}"
        self.cluster = cluster
        self.extra = extra or {}
        self.log_path = log or self.data / "broker.log"
        self.fresh = False  # set by start(): this start formatted a new log directory
        self.writes_classes = False  # set by start(): it writes its class archive as it stops
        super().__init__()

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.server}"

    def properties(self) -> str:
        """The node's whole configuration: the repo's settings and this node's own lines."""
        own = {
            **self.extra,
            "node.id": self.node_id,
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.server}",
            "log.dirs": self.data / "kafka",
        }
        lines = "".join(f"{k}={v}\n" for k, v in own.items())
        return settings()[0] + "\n# this node\n" + lines

    def _java(self, libs: Path, *args: str, broker: bool = False) -> list[str]:
        """java's command line: the broker's (`broker`), or one of Kafka's tools'."""
        java = _need("java", "openjdk-17-jre-headless")
        return [java, *settings()[1], *classes.sharing(java, libs, write=broker),
                f"-Dlog4j.configuration=file:{KAFKA / 'log4j.properties'}",
                f"-Dkafka.logs.dir={self.data}", "-cp", f"{libs}/*", *args]

    def start(self, timeout: float = 60.0) -> EmbeddedBroker:
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Format the log directory if it is new, and start the JVM without waiting for it (a
        node of a cluster answers only once a majority of the quorum runs)."""
        libs = kafka_jars()
        for port in (self.port, self.controller_port):
            if not port_free(self.host, port):
                raise BrokerError(f"port {port} on {self.host} is in use (another whistle "
                                  f"broker?): stop it or choose another --port")
        state = check_data(self.data, self.node_id)
        self.fresh = state == "new"
        config = self.data / "kafka.properties"
        config.write_text(self.properties())
        if state == "new":
            done = subprocess.run(
                self._java(libs, "kafka.tools.StorageTool", "format", "-t",
                           self.cluster or cluster_id(), "-c", str(config)),
                stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if done.returncode != 0:
                raise BrokerError(f"Kafka could not format {self.data / 'kafka'}: "
                                  f"{(done.stdout + done.stderr).strip()[-800:]}")
        self._log = open(self.log_path, "ab")
        command = self._java(libs, "kafka.Kafka", str(config), broker=True)
        self.writes_classes = any(a.startswith("-XX:ArchiveClassesAtExit=") for a in command)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, **child_options())

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the node serves clients; a node that exits or does not within `timeout` is
        stopped and refused with what its log says."""
        if not self._wait_ready(timeout):
            code = self.process.poll() if self.process is not None else None
            self.stop()
            said = _log_tail(self.log_path)
            raise BrokerError(
                (f"the embedded Kafka exited with code {code} while starting"
                 if code is not None else
                 f"the embedded Kafka did not answer on port {self.port} within {timeout:.0f} s")
                + f" (data {self.data}); its log {self.log_path} says:\n{said}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _wait_ready(self, timeout: float) -> bool:
        """Until a client's metadata request lists this node (Kafka opens its listener's
        socket before it serves requests, so a connect alone says too little)."""
        deadline = time.monotonic() + timeout
        if not wait_for_port(self.port, timeout, self.alive, self.host):
            return False
        with ThreadPoolExecutor(1) as thread:  # its own event loop, whoever calls start()
            while self.alive() and time.monotonic() < deadline:
                if thread.submit(asyncio.run, answers_metadata(self.server, self.node_id)).result():
                    return True
                time.sleep(0.1)
        return False

    def why_stopped(self) -> str:
        """What the log says of a broker that exited on its own (a full disk, a crash)."""
        return _log_tail(self.log_path)


async def answers_metadata(server: str, node_id: int | None = None) -> bool:
    """Whether the node lists itself (`node_id`, when given: a registered, unfenced broker) in
    a metadata answer and can name a group coordinator.

    The second makes a new node create its offsets topic now, rather than while the first
    worker waits for it (which aiokafka logs as an error)."""
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    client = AIOKafkaClient(bootstrap_servers=server, request_timeout_ms=2000,
                            connections_max_idle_ms=5000)
    try:
        await asyncio.wait_for(client.bootstrap(), 3)
        listed = {b.nodeId for b in client.cluster.brokers()}
        if not listed or (node_id is not None and node_id not in listed):
            return False
        await asyncio.wait_for(client.coordinator_lookup(0, "whistle"), 3)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await client.close()


async def wait_for_leaders(client, topic: str, timeout: float = 30.0) -> None:
    """Until every partition of a topic just created has a leader (aiokafka's client), so the
    first records are not refused with NotLeaderForPartition and retried."""
    from aiokafka.structs import TopicPartition

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await client.force_metadata_update()
        parts = client.cluster.partitions_for_topic(topic)
        leaders = [client.cluster.leader_for_partition(TopicPartition(topic, p))
                   for p in parts or ()]
        if leaders and all(leader is not None and leader >= 0 for leader in leaders):
            return
        await asyncio.sleep(0.1)

