"""broker_ready.py CHECKOUT [DATA] [N]: `whistle broker` of CHECKOUT (this repo's venv) to its
ready line N times on one data directory (the first on a new one); prints each (s)."""
import os, subprocess, sys, tempfile, time, signal
VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../.venv")
code = sys.argv[1]; d = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else tempfile.mkdtemp()
env = {**os.environ, "PYTHONPATH": code}
res = []
for run in range(int(sys.argv[3]) if len(sys.argv) > 3 else 2):
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(VENV, "bin", "whistle"), "broker", "--data", d + "/data", "--port", "29911"],
                         cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if "ready at" in line: res.append(time.monotonic() - t0); break
    p.send_signal(signal.SIGINT); p.wait(30); time.sleep(1)
print(code, " ".join(f"{x:.2f}" for x in res))
