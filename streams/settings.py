"""Settings, read once from `WHISTLE_*` environment variables into one object passed down.

    >>> Settings(broker="kafka://127.0.0.1:9092").port
    6066
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from playbooks.departments import DEPARTMENTS
from playbooks.load import LIBRARY
from schemas import Duration

__all__ = ["DEMO_SITES", "Settings"]

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
    sites: Path = DEMO_SITES
    departments: Path = DEPARTMENTS
    data: Path = Path("./whistle-data")
    store: str = Field("memory://", description="table store: memory:// or rocksdb://")
    partitions: int = Field(4, ge=1, le=1024)
    replication: int = Field(1, ge=1, le=16)
    correlation_window: Duration = timedelta(minutes=10)
    device_silence: Duration = Field(timedelta(hours=24), description="how long a device not in "
                                     "the registry may stay silent before it counts as offline")
    offline_check: float = Field(60.0, gt=0, description="seconds between offline checks")
    pas_check: float = Field(1.0, gt=0, description="seconds between looks at verification "
                             "deadlines (positive alarm sequence)")
    ingest_timeout: float = Field(5.0, gt=0, description="seconds to wait for the broker's ack")
    update_timeout: float = Field(10.0, gt=0, description="seconds to wait for a task update")
    fetch_wait_ms: int = Field(10, ge=1, le=1500,
                               description="consumer long-poll; Faust's 1500 costs latency")
    rebalance_timeout: float = Field(6.0, gt=0,
                                     description="seconds; 6 lets a worker join in ~3 s")
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    log_level: str = "info"
