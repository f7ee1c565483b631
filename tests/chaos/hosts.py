"""A second host on this machine: a network namespace joined to this one by a veth pair, each end
with an address of its own, so a worker there reaches the brokers only across that link, and
the link can be cut (`cut()`: its end here goes down; packets are dropped, no connection is
reset) and mended (`mend()`), as a switch port failing would.

    with Host() as host:               # this machine 10.213.X.1, the namespace 10.213.X.2
        Worker(..., host=host.inside, wrap=host.exec)
        host.cut(); ...; host.mend()

It needs `ip` (iproute2) and the right to make namespaces (root here and in CI). When either is
missing the test fails saying which: it never skips.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess

__all__ = ["Host"]


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed ({done.returncode}): "
                             f"{done.stderr.strip()}; the cluster chaos test makes a network "
                             f"namespace, which needs root (or CAP_NET_ADMIN) and iproute2")


class Host:
    """A network namespace with the address `inside`; this machine is `outside` on the link."""

    def __init__(self) -> None:
        assert shutil.which("ip"), "the cluster chaos test needs `ip` (apt-get install iproute2)"
        tag = f"{os.getpid() % 100_000}{random.randrange(100)}"
        self.name = f"whistle-{tag}"
        self.here, self.there = f"wh{tag}a", f"wh{tag}b"  # at most 15 characters
        self.net = f"10.213.{random.randrange(1, 250)}"
        self.outside, self.inside = f"{self.net}.1", f"{self.net}.2"
        self.made = False

    @property
    def exec(self) -> list[str]:
        """What to put before a command to run it on this host."""
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> Host:
        _ip("netns", "add", self.name)
        self.made = True
        _ip("link", "add", self.here, "type", "veth", "peer", "name", self.there)
        _ip("link", "set", self.there, "netns", self.name)
        _ip("addr", "add", f"{self.outside}/30", "dev", self.here)
        _ip("link", "set", self.here, "up")
        _ip("-n", self.name, "addr", "add", f"{self.inside}/30", "dev", self.there)
        _ip("-n", self.name, "link", "set", self.there, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        # while the link is down its own route goes, and packets for the other end would
        # follow the default route off this machine (here a proxy answered them with 404):
        # a wider route that refuses them keeps every packet on this machine
        _ip("route", "add", "unreachable", f"{self.net}.0/24")
        return self

    def cut(self) -> None:
        _ip("link", "set", self.here, "down")

    def mend(self) -> None:
        _ip("link", "set", self.here, "up")

    def __exit__(self, *exc: object) -> None:
        if self.made:
            subprocess.run(["ip", "route", "del", "unreachable", f"{self.net}.0/24"],
                           capture_output=True)
            subprocess.run(["ip", "link", "del", self.here], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
