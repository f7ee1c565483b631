"""What `whistle bench` is asked to do (its command-line options, as one object) and which
combinations it refuses, with the reason.

    opts = BenchOptions(alarms=300, rate=50, seconds=3, peer="alertmanager")
    if (why := refused(opts)) is not None:
        print(f"whistle bench: {why}")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BenchOptions", "refused"]


@dataclass
class BenchOptions:
    """The options of `whistle bench`; the defaults are the issue's measuring conditions.

        run(BenchOptions(broker="kafka://HOST:9092", url="http://HOST:6066"))
    """

    alarms: int = 5000
    rate: float = 200.0
    seconds: float = 10.0
    broker: str | None = None
    url: str | None = None
    json: Path | None = None
    svg: Path | None = None
    skip_relay: bool = False
    storm: bool = True            # a fire report in the middle of a 10x storm
    memory: int = 0               # alarms for the RSS phase (10 per incident); 0: none
    workers: int = 1              # worker processes (embedded broker only)
    peer: str | None = None       # "alertmanager"
    profile: Path | None = None   # py-spy the (first) worker during the throughput run
    warm_broker: float = 15.0     # seconds of alarms at 200/s through a broker started here


def refused(opts: BenchOptions) -> str | None:
    """Why `opts` cannot be run, or None when they can.

        refused(BenchOptions(broker="kafka://h:9092"))   # "give both --broker and --url ..."
    """
    if (opts.broker is None) != (opts.url is None):
        return ("give both --broker and --url (a running deployment), or neither (a fresh "
                "embedded broker and worker)")
    if opts.broker is not None and (opts.workers != 1 or opts.peer or opts.profile):
        return ("--workers, --peer and --profile need the embedded broker and workers this "
                "command starts (no --broker/--url)")
    if opts.peer not in (None, "alertmanager"):
        return f"--peer {opts.peer}: the only peer is alertmanager"
    if opts.workers < 1:
        return "--workers must be at least 1"
    if opts.warm_broker < 0:
        return "--warm-broker must be 0 (none) or more seconds"
    return None
