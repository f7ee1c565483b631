"""Class data sharing for the embedded broker's JVM: the classes a broker loaded, kept in an
archive that later starts map instead of loading and verifying each class again.

By hand on a 2-core machine, `whistle broker` to ready took 1.96-1.99 s with an archive and
2.75-3.28 s without (README "Eighth stop"). A broker started without one writes one when it
stops (`-XX:ArchiveClassesAtExit`), to a file of its own; a later start checks that file with
the same JVM and jars (`-Xshare:on`, which refuses an archive it cannot map) and only then
renames it into place. A torn archive (a broker killed while writing it) crashes the JVM that
maps it (SIGBUS, tried), so none is used unchecked. An archive belongs to one JVM build and
one set of jars: its name carries both.

    java_flags = sharing(java, libs)     # before "-cp", on the broker's command line

The storage tool that formats a new node's log directory maps the archive too when there is
one (0.64-0.79 s instead of 0.87-0.96 s, six and two runs).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["CHECK_TIMEOUT", "archive_for", "sharing"]

CHECK_TIMEOUT = 30.0   # seconds for `java -Xshare:on ... -version` to map a written archive
SETTLED = 2.0          # a written archive older than this is not being written any more


def archive_for(java: str, libs: Path) -> Path:
    """Where the archive of this JVM build and these jars is (it may not exist yet)."""
    jvm = Path(java).resolve()
    parts = [str(jvm), str(jvm.stat().st_mtime_ns)]
    parts += sorted(f"{jar.name}:{jar.stat().st_size}" for jar in libs.glob("*.jar"))
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return libs.parent / f"classes-{key}.jsa"


def sharing(java: str, libs: Path, write: bool = True) -> list[str]:
    """The JVM options that map the archive, or that write one at exit when there is none
    (with `write`: a broker's JVM; a short-lived tool's writes none, its classes are few)."""
    archive = archive_for(java, libs)
    if not archive.is_file():
        _adopt(java, libs, archive)
    if archive.is_file():
        _tidy(archive)
        return [f"-XX:SharedArchiveFile={archive}"]
    if not write:
        return []
    written = archive.with_name(f"{archive.stem}.{uuid.uuid4().hex[:12]}.written")
    return [f"-XX:ArchiveClassesAtExit={written}"]


def _adopt(java: str, libs: Path, archive: Path) -> None:
    """Put in place the first archive an earlier broker wrote that this JVM maps; remove the
    ones it refuses. One still being written, or another start's meanwhile, is left alone."""
    for written in sorted(archive.parent.glob(f"{archive.stem}.*.written")):
        try:
            if time.time() - written.stat().st_mtime < SETTLED:
                continue
            with tempfile.TemporaryDirectory() as scratch:  # a crash's hs_err file goes there
                check = subprocess.run(
                    [java, "-Xshare:on", f"-XX:SharedArchiveFile={written}", "-cp",
                     f"{libs}/*", "-version"], stdin=subprocess.DEVNULL, capture_output=True,
                    timeout=CHECK_TIMEOUT, cwd=scratch)
            if check.returncode == 0:
                os.replace(written, archive)
                return
            written.unlink()
        except (OSError, subprocess.TimeoutExpired):
            continue  # taken or removed by another start meanwhile, or too slow to tell


def _tidy(archive: Path) -> None:
    """Remove what other brokers wrote once the archive was in place (nodes of a cluster
    started together each write one, ~45 MB)."""
    for written in archive.parent.glob(f"{archive.stem}.*.written"):
        try:
            if time.time() - written.stat().st_mtime >= SETTLED:
                written.unlink()
        except OSError:
            continue
