"""How long `whistle up` takes to stop (SIGTERM to exit), three times on new data
directories, and when its worker logged the gathering of all futures and the closing of its
loop (seconds after the signal).

    .venv/bin/python docs/bench/tenth-stop/stop.py CHECKOUT
"""

import os
import pathlib
import signal
import sys
import tempfile
import time

checkout = sys.argv[1] if len(sys.argv) > 1 else "."
sys.path.insert(0, checkout)
os.chdir(checkout)
from tests.integration.conftest import Stack  # noqa: E402

MARKS = ("Gathering all futures", "Closing event loop")
for _ in range(3):
    stack = Stack(pathlib.Path(tempfile.mkdtemp()))
    time.sleep(1)
    before = len(stack.output)
    t0 = time.monotonic()
    stack.process.send_signal(signal.SIGTERM)
    seen: dict[str, float] = {}
    while stack.process.poll() is None:
        for line in stack.output[before:]:
            for mark in MARKS:
                if mark in line and mark not in seen:
                    seen[mark] = round(time.monotonic() - t0, 2)
        time.sleep(0.01)
    print(f"stop {time.monotonic() - t0:.2f} s", seen)
