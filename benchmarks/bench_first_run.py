"""The demo's first run after installation, and a later one: wall and CPU seconds.

README's first command is ``pip install -r requirements.txt && pip install --no-deps -e . &&
python tools/demo.py``. On a fresh machine the demo's first run also pays for everything that is
compiled once and cached (numba's kernels). This runs ``tools/demo.py`` of a checkout twice with
an empty numba cache (``NUMBA_CACHE_DIR``, a new temporary folder) and prints wall time, CPU time
(user + system, of the demo process: on a busy shared machine wall time grows with the load, CPU
time hardly does) and the load average before each run.

Measure it as a user would, in a brand-new virtual environment and a fresh clone:

    python -m venv /tmp/fresh && /tmp/fresh/bin/pip install -r requirements.txt
    git clone <this repository> /tmp/fresh_clone
    /tmp/fresh/bin/pip install --no-deps -e /tmp/fresh_clone
    python benchmarks/bench_first_run.py --python /tmp/fresh/bin/python --checkout /tmp/fresh_clone

Usage: python benchmarks/bench_first_run.py [--python PYTHON] [--checkout DIR] [--runs 2]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_run(python, checkout, env, save_dir):
    """(wall seconds, CPU seconds) of one ``tools/demo.py`` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([python, os.path.join(checkout, "tools", "demo.py"), "--save_dir",
                          save_dir], cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"tools/demo.py failed:\n{out.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter of the environment to measure (default: this one)")
    parser.add_argument("--checkout", default=ROOT, help="the ppmatting checkout to run")
    parser.add_argument("--runs", type=int, default=2, help="runs; the first has an empty cache")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the checkout's own code, as installed
    print(f"{os.cpu_count()} cores; {args.python}; {args.checkout}")
    print(f"{'run':<6} {'wall s':>8} {'CPU s':>8} {'load (1 min) before':>20}")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        env["NUMBA_CACHE_DIR"] = cache
        for run in range(1, args.runs + 1):
            load = os.getloadavg()[0]
            wall, cpu = timed_run(args.python, args.checkout, env, out)
            label = "first" if run == 1 else f"#{run}"
            print(f"{label:<6} {wall:8.1f} {cpu:8.1f} {load:20.2f}", flush=True)


if __name__ == "__main__":
    main()
