"""Settings, read once from `WHISTLE_*` environment variables into one object passed down.

    >>> Settings(broker="kafka://127.0.0.1:9092").port
    6066
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from playbooks.campaigns import CAMPAIGNS
from playbooks.departments import DEPARTMENTS, load_departments
from playbooks.load import LIBRARY
from schemas import FEEDBACK_TARGET, Config, Duration, Grant, Webhook

__all__ = ["DEMO_SITES", "ConfigError", "Settings", "read_config"]

DEMO_SITES = Path(__file__).parent / "demo" / "sites.yaml"


class Settings(BaseSettings):
    """Everything a worker needs to know. Each field is also `WHISTLE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="WHISTLE_", extra="ignore")

    broker: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap URL(s), ;-separated")
    host: str = "127.0.0.1"
    port: int = Field(6066, ge=1, le=65535)
    app_id: str = "whistle"
    playbooks: Path = LIBRARY
    playbooks_watch: float = Field(2.0, ge=0, description="seconds between looks for changed "
                                   "playbook files; 0 turns reloading on change off")
    campaigns: Path = Field(CAMPAIGNS, description="directory of campaign playbooks "
                            "(专项整治方案), loaded at start; a bad file refuses the start")
    sites: Path = DEMO_SITES
    departments: Path = DEPARTMENTS
    data: Path = Field(Path(".whistle"), description="the broker's (embedded) and the "
                       "worker's data and logs; kept across restarts")
    store: str = Field("memory://", description="table store: memory:// or rocksdb://")
    rocksdb_memtable_mb: int = Field(1, ge=1, le=1024, description="rocksdb://: the write "
                                     "buffer of each table partition (Faust's default: 64)")
    rocksdb_cache_mb: int = Field(1, ge=1, le=4096, description="rocksdb://: the block cache "
                                  "of each table partition (Faust's default: 2048)")
    rocksdb_memory_mb: int = Field(16, ge=0, le=65536, description="rocksdb://: the block "
                                   "cache every table partition of a worker shares, which also "
                                   "holds their write buffers (the largest is flushed past half "
                                   "of it); 0: a cache of rocksdb_cache_mb per partition")
    partitions: int = Field(4, ge=1, le=1024)
    replication: int | None = Field(None, ge=1, le=16, description="replicas of each topic "
                                    "Whistle creates; unset: the brokers' "
                                    "default.replication.factor (1 on the embedded node, 3 on "
                                    "a cluster), asked at start")
    min_insync_replicas: int | None = Field(None, ge=1, le=16, description="brokers that must "
                                            "have a write before it is acknowledged; /readyz "
                                            "is 503 while fewer answer. Unset: the brokers' "
                                            "min.insync.replicas, asked at start")
    correlation_window: Duration = timedelta(minutes=10)
    device_silence: Duration = Field(timedelta(hours=24), description="how long a device not in "
                                     "the registry may stay silent before it counts as offline")
    offline_check: float = Field(60.0, gt=0, description="seconds between offline checks")
    low_battery: float = Field(20.0, ge=0, le=100, description="percent: a battery at or below "
                               "this opens one maintenance task (battery fault)")
    pas_check: float = Field(1.0, gt=0, description="seconds between looks at verification "
                             "deadlines (positive alarm sequence)")
    ingest_timeout: float = Field(5.0, gt=0, description="seconds to wait for the broker's ack")
    produce_timeout: float = Field(30.0, gt=0, description="seconds a broker has to answer a "
                                   "produce request before the producer gives up on it and "
                                   "asks the cluster for the partition's leader again (Kafka's "
                                   "request.timeout.ms; Faust's 1200 kept writes waiting 20 "
                                   "minutes on a broker that hangs)")
    update_timeout: float = Field(10.0, gt=0, description="seconds to wait for a task update")
    fetch_wait_ms: int = Field(10, ge=1, le=1500,
                               description="consumer long-poll while a partition is left "
                               "out of a fetch (250 ms when none is); Faust's 1500 costs latency")
    canonical_url: str = Field("", description="where the other workers reach this one "
                               "(announced in the group); default http://<host>:<port>")
    static_membership: bool = Field(True, description="a worker killed and started again on "
                                    "its canonical URL takes its partitions back at once, "
                                    "without a rebalance (Kafka's group.instance.id, "
                                    "streams.runtime.membership); a stopping one leaves")
    read_ahead: bool = Field(True, description="copy people's reports past a backlog to the "
                             "urgent lane (streams.runtime.lookahead)")
    poll_records: int = Field(100, ge=1, description="the most records handed to the agents "
                              "at once; Faust delivers a batch whole, so a people's report "
                              "waits for at most one batch of a storm")
    rebalance_timeout: float = Field(6.0, gt=0, description="seconds, also the session "
                                     "timeout: a dead worker's partitions move this soon; 6 is "
                                     "Kafka's default least (group.min.session.timeout.ms)")
    escalation_check: float = Field(1.0, gt=0, description="seconds between looks at task "
                                    "deadlines (ack_due, complete_due)")
    stream_history: int = Field(10_000, ge=10, description="task events held per department "
                                "for streams that reconnect (in memory)")
    stream_ping: float = Field(15.0, gt=0, description="seconds between keep-alive comments "
                               "on an idle stream")
    rate_limit: float = Field(20.0, gt=0, description="requests a second per token (with "
                              "tokens configured); refused with 429 and Retry-After")
    rate_burst: int = Field(100, ge=1, description="requests at once per token")
    config: Path | None = Field(None, description="tokens and webhooks (YAML or JSON); without "
                                "tokens Whistle runs open (dev mode)")
    tokens: list[Grant] = Field(default_factory=list, description="JSON, added to the file's")
    webhooks: dict[str, Webhook] = Field(default_factory=dict,
                                         description="JSON, over the file's")
    producer_batch_bytes: int = Field(16384, ge=1, description="the producer's largest batch "
                                      "(Kafka's batch.size)")
    max_message_bytes: int = Field(8 * 2**20, ge=2**20, description="the largest request the "
                                   "producer sends (an incident's timeline is one table record); "
                                   "the brokers' message.max.bytes must allow it (8 MiB in "
                                   "streams/kafka/server.properties and deploy/)")
    map_tiles: str = Field("", pattern=r"^$|^https?://[^\s\"'<>]+$", description="the duty "
                           "officer's map (/board): an intranet tile server's URL template, "
                           "e.g. http://tiles.example/{z}/{x}/{y}.png; empty: no tiles (grid "
                           "outlines on a plain background)")
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    log_level: str = "info"

    def access(self, departments: Iterable[str] | None = None) -> Config:
        """The tokens and webhooks: the `config` file's, with the environment's added, each
        naming a department that exists. Raises ConfigError naming where and what."""
        base = Config()
        if self.config is not None:
            base = read_config(self.config)
        try:
            access = Config(tokens=[*base.tokens, *self.tokens],
                            webhooks={**base.webhooks, **self.webhooks})
        except ValidationError as exc:
            raise ConfigError(f"WHISTLE_TOKENS/WHISTLE_WEBHOOKS: {_problems(exc)}") from None
        known = set(load_departments(self.departments).by_id() if departments is None
                    else departments)
        where = self.config or "WHISTLE_TOKENS/WHISTLE_WEBHOOKS"
        for i, grant in enumerate(access.tokens):
            if grant.department is not None and grant.department not in known:
                raise ConfigError(f"{where}: tokens.{i}.department: unknown department "
                                  f"{grant.department!r}")
        for target in access.webhooks:
            if target != FEEDBACK_TARGET and target not in known:
                raise ConfigError(f"{where}: webhooks.{target}: neither a department nor "
                                  f"{FEEDBACK_TARGET!r}")
        return access


class ConfigError(ValueError):
    """A config file or variable that cannot be used; the message names where and why."""


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
                     for e in exc.errors())


def read_config(path: Path) -> Config:
    """The `--config` file (YAML, or JSON which is YAML too), validated."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_problems(exc)}") from None
