"""Several Apache Kafka nodes on one machine: a KRaft cluster whose every node is broker and
controller (three voters: the quorum survives the loss of one), for `whistle broker --nodes 3`
and the cluster chaos tests.

    >>> with EmbeddedCluster(Path(".whistle"), nodes=3, port=9092) as cluster:
    ...     print(cluster.url)   # kafka://127.0.0.1:9092;kafka://127.0.0.1:9093;kafka://127.0.0.1:9094

Node i (1, 2, 3) serves clients on `port + i - 1` and its controller on `port + nodes + i - 1`,
and keeps its data in `data/node-i` (its log directory `data/node-i/kafka`, its log
`data/node-i/broker.log`). Every node gets `cluster.properties` on top of the single node's
settings: replication 3 and `min.insync.replicas` 2, as deploy/ runs. The cluster id is read
from a node formatted before, so a cluster stopped and started again is the same cluster.

Faults are the tests' business: `nodes[i].kill()`, `freeze`, `start()` again on the same data.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streams.kafka.broker import (
    KAFKA,
    BrokerError,
    EmbeddedBroker,
    bootstrap_servers,
    cluster_id,
    free_port,
    port_free,
    read_meta,
)

__all__ = ["CLUSTER_PROPERTIES", "EmbeddedCluster", "cluster_properties", "durability_of",
           "free_run"]

ASKED = ("default.replication.factor", "min.insync.replicas")

CLUSTER_PROPERTIES = KAFKA / "cluster.properties"


def cluster_properties() -> dict[str, str]:
    """`cluster.properties` as a dict: what a cluster adds to a single node's settings."""
    return read_meta(CLUSTER_PROPERTIES)


def durability_of(broker: str, timeout: float = 60.0) -> tuple[int, int]:
    """The brokers' `default.replication.factor` (the replicas of a topic created without a
    number) and `min.insync.replicas` (how many must have a write before acks=all is
    answered): 1 and 1 on the embedded node, 3 and 2 on a cluster (cluster.properties,
    deploy/k8s/kafka.yaml). Asked until the brokers answer, for at most `timeout` seconds: a
    worker must not guess, since a topic keeps the replication it was created with."""
    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    with ThreadPoolExecutor(1) as thread:  # its own event loop, whoever calls it
        while time.monotonic() < deadline:
            try:
                return thread.submit(asyncio.run, _durability(broker)).result()
            except (KafkaError, OSError, TimeoutError, BrokerError) as exc:  # not up yet
                last = exc
                time.sleep(0.5)
    raise BrokerError(f"the brokers at {broker} did not say their default.replication.factor "
                      f"within {timeout:.0f} s ({last!r}): start the brokers first, or set "
                      f"WHISTLE_REPLICATION and WHISTLE_MIN_INSYNC_REPLICAS")


async def _durability(broker: str) -> tuple[int, int]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker),
                                request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        node = min(b.nodeId for b in admin._client.cluster.brokers())
        [answer] = await asyncio.wait_for(admin.describe_configs([ConfigResource(
            ConfigResourceType.BROKER, str(node), dict.fromkeys(ASKED))]), 10)
        [(error, message, _kind, _name, entries)] = answer.resources
        if error:
            raise BrokerError(f"DescribeConfigs of broker {node}: error {error} {message}")
        said = {e[0]: int(e[1]) for e in entries if e[0] in ASKED}
        return said[ASKED[0]], said[ASKED[1]]
    finally:
        await admin.close()


class EmbeddedCluster:
    """`nodes` Kafka nodes on `host`, clients' ports from `port` on (free ones if None)."""

    def __init__(self, data: Path, nodes: int = 3, port: int | None = None,
                 host: str = "127.0.0.1") -> None:
        if nodes < 1:
            raise BrokerError(f"--nodes: {nodes}: a cluster has at least one node")
        self.data = Path(data).absolute()
        self.host = host
        port = port or free_run(2 * nodes, host)
        ports = [port + i for i in range(2 * nodes)]
        if ports[-1] > 65535:
            raise BrokerError(f"--port: {port}: a cluster of {nodes} needs ports {port} to "
                              f"{ports[-1]}, past 65535")
        voters = ",".join(f"{i + 1}@{host}:{ports[nodes + i]}" for i in range(nodes))
        self.cluster = self._formatted_id() or cluster_id()
        extra = cluster_properties() if nodes > 1 else {}
        self.nodes = [EmbeddedBroker(self.data / f"node-{i + 1}", ports[i], host=host,
                                     node_id=i + 1, controller_port=ports[nodes + i],
                                     voters=voters, cluster=self.cluster, extra=extra)
                      for i in range(nodes)]

    def _formatted_id(self) -> str | None:
        ids = {read_meta(meta).get("cluster.id")
               for meta in self.data.glob("node-*/kafka/meta.properties")}
        ids.discard(None)
        if len(ids) > 1:
            raise BrokerError(f"the node directories under {self.data} were formatted by "
                              f"different clusters ({', '.join(sorted(map(str, ids)))}): "
                              f"nothing was changed. Choose another --data")
        return ids.pop() if ids else None

    @property
    def servers(self) -> list[str]:
        return [node.server for node in self.nodes]

    @property
    def url(self) -> str:
        """The bootstrap list as a Faust broker URL (WHISTLE_BROKER)."""
        return ";".join(node.url for node in self.nodes)

    def start(self, timeout: float = 90.0) -> EmbeddedCluster:
        """Every node launched, then each waited for: a node answers only once a majority of
        the voters runs. A node that cannot start stops the others."""
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_ready(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        """Whether every node's process runs."""
        return all(node.alive() for node in self.nodes)

    def stop(self) -> None:
        """SIGTERM to every node at once, then each waited for: one by one, the last ones
        would wait for a quorum that has already gone."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_run(count: int, host: str) -> int:
    """The first of `count` consecutive ports free on `host`."""
    for _ in range(100):
        first = free_port()
        if first + count <= 65536 and all(port_free(host, first + i) for i in range(count)):
            return first
    raise BrokerError(f"no {count} consecutive free ports on {host}: choose one with --port")
