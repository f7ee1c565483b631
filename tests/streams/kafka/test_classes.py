"""The embedded broker's class data sharing (`streams/kafka/classes.py`) on the real JVM and
jars: a broker writes its archive when it stops, the next start maps it once the JVM has
checked it, and a torn archive is refused and removed, never mapped."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from streams.kafka import classes
from streams.kafka.broker import EmbeddedBroker, kafka_jars

pytestmark = pytest.mark.integration


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A jar cache of the test's own (the real jars linked), so that its archives are too."""
    real = kafka_jars()
    own = tmp_path / "cache"
    (own / "libs").mkdir(parents=True)
    for jar in real.glob("*.jar"):
        (own / "libs" / jar.name).symlink_to(jar)
    shutil.copy(real.parent / "pom.sha", own / "pom.sha")
    monkeypatch.setenv("WHISTLE_KAFKA_CACHE", str(own))
    monkeypatch.setattr(classes, "SETTLED", 0.0)
    return own


def started(data: Path) -> tuple[EmbeddedBroker, str, str]:
    """A broker on `data`, ready; its command line and its memory map."""
    broker = EmbeddedBroker(data).start()
    pid = broker.process.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    return broker, cmdline, Path(f"/proc/{pid}/maps").read_text()


def test_a_stopped_broker_leaves_an_archive_the_next_maps_and_a_torn_one_is_refused(
        tmp_path, cache):
    java = shutil.which("java")
    archive = classes.archive_for(java, cache / "libs")
    written = f"{archive.stem}.*.written"

    broker, cmdline, _ = started(tmp_path / "data")
    broker.stop()
    assert "-XX:ArchiveClassesAtExit=" in cmdline and broker.writes_classes
    assert not archive.exists()
    [dumped] = cache.glob(written)
    assert dumped.stat().st_size > 10 * 2**20, dumped.stat().st_size

    broker, cmdline, maps = started(tmp_path / "data")
    broker.stop()
    assert f"-XX:SharedArchiveFile={archive}" in cmdline and not broker.writes_classes
    assert str(archive) in maps  # the JVM mapped it, not only was told of it
    assert not list(cache.glob(written))

    # torn, as by a broker killed while it wrote it: refused, removed, the broker starts
    torn = archive.with_name(f"{archive.stem}.torn.written")
    torn.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    archive.unlink()
    old = time.time() - 60
    os.utime(torn, (old, old))
    broker, cmdline, maps = started(tmp_path / "data")
    broker.stop()
    assert not torn.exists() and "-XX:ArchiveClassesAtExit=" in cmdline
    assert str(cache) + "/classes-" not in maps
