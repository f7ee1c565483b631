"""ready.py CHECKOUT (this repo's venv; e.g. a git worktree of a commit): `whistle up` of CHECKOUT to its ready line, on a new data directory and
again on it; prints both (s)."""
import os, subprocess, sys, tempfile, time, signal
VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../.venv")
code = sys.argv[1]
env = {**os.environ, "PYTHONPATH": code}
d = tempfile.mkdtemp()
out = []
for run in ("new", "again"):
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(VENV, "bin", "whistle"), "up", "--data", d + "/data", "--port", str(26000 + os.getpid() % 900)],
                         cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if line.startswith("whistle ready at"):
            out.append(time.monotonic() - t0); break
    p.send_signal(signal.SIGINT); p.wait(30)
    time.sleep(1)
print(code, " ".join(f"{x:.2f}" for x in out))
