"""python restart.py CHECKOUT 0|1: a worker on the demo registry killed (SIGKILL) and started again three
times on its URL, with WHISTLE_STATIC_MEMBERSHIP off (0) or on (1); prints the seconds from each
start to /readyz 200. Run from this repo (its venv), e.g. on a git worktree of a commit."""
import sys, tempfile, time, os
from pathlib import Path
sys.path.insert(0, sys.argv[1]); os.chdir(sys.argv[1])
from streams.kafka.broker import free_port
from tests.integration.workers import Worker, demo_broker
env = {"WHISTLE_STATIC_MEMBERSHIP": "true" if sys.argv[2] == "1" else "false"}
tmp = tempfile.mkdtemp()
with demo_broker(Path(tmp)) as broker:
    port = free_port()
    w = Worker(broker.url, None, Path(tmp), port, env)
    print("first", round(w.ready_after, 2))
    for i in range(3):
        time.sleep(2)
        w.kill()
        w = Worker(broker.url, None, Path(tmp), port, env)
        print("restart", round(w.ready_after, 2), flush=True)
    w.kill()
