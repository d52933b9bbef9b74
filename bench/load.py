"""python -m bench.load: 16 concurrent clients classifying for 60 seconds.

Starts `python demo.py` on 127.0.0.1 on a fresh database (starter set seeded
and trained with the shared alpha 0.25 weights), then runs 16 client threads,
each with its own HTTP session, calling /classify_sketch over plain HTTP
(upload, POST /gradio_api/call, read the event stream) back to back for 60
seconds. Loops are bounded in time and in calls and stop by themselves.
Answers that say the queue is busy are counted apart from errors; any other
error makes the exit status 1. With --retrain, a third of the way in,
`python -m model.train --views 4 --force` runs in another process (one new
feature view per image, then training), and the calls that started while it
ran are summarized apart. Prints figures and, as its last line, one JSON
object."""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

from bench.common import ALPHA, ROOT, Tally, machine, run_threads
from bench.demo_latency import raw_http_call, running_demo, summary

MAX_CALLS_PER_CLIENT = 5_000


def run_for(url, paths, clients, seconds):
    """(Tally, wall seconds) of `clients` threads calling back to back until
    `seconds` have passed."""
    tally = Tally()
    callers = [raw_http_call(url) for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def worker(index):
        for n in range(MAX_CALLS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            tally.call(callers[index], None, paths[(index * 7 + n) % len(paths)])
    return tally, run_threads(clients, worker)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--retrain", action="store_true",
                        help="retrain in another process during the run")
    args = parser.parse_args(argv)
    with running_demo("sketchlab-bench-load-") as demo:
        retrain = []
        if args.retrain:
            timer = threading.Timer(args.seconds / 3, lambda: retrain.append(_retrain(demo)))
            timer.start()
        tally, wall = run_for(demo.url, demo.paths, args.clients, args.seconds)
        if args.retrain:
            timer.join()
        alive = demo.process.poll() is None
    result = {"endpoint": "/classify_sketch", "clients": args.clients,
              "seconds": round(wall, 1), **summary(tally.seconds(), wall),
              "busy": len(tally.busy), "errors": len(tally.errors), "server_alive_after": alive,
              "alpha": ALPHA, "load_average_1min": round(os.getloadavg()[0], 2),
              "machine": machine()}
    print(f"{args.clients} clients for {wall:.0f} s: {result['calls']} calls, "
          f"{result['throughput_per_s']} calls/s, p50 {result['p50_ms']} ms, "
          f"p95 {result['p95_ms']} ms, busy {len(tally.busy)}, errors {len(tally.errors)}")
    if retrain:
        began, ended, code = retrain[0]
        during = [s for start, s in tally.latencies if began <= start < ended]
        result["retrain"] = {"seconds": round(ended - began, 1), "exit": code,
                             **summary(during, ended - began)}
        print(f"during the {ended - began:.1f} s retrain (exit {code}): {len(during)} calls, "
              f"p50 {result['retrain']['p50_ms']} ms, p95 {result['retrain']['p95_ms']} ms")
    if tally.errors:
        print(f"errors: {tally.errors[:3]}")
    print(json.dumps(result))
    return 0 if not tally.errors and alive and all(code == 0 for _, _, code in retrain) else 1


def _retrain(demo):
    """(start, end, exit status) of a retrain of the demo's database in another process."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "model.train", "--db", str(demo.db), "--alpha", str(ALPHA),
         "--views", "4", "--force"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "KERAS_HOME": str(demo.keras_home)})
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
    return began, time.perf_counter(), done.returncode


if __name__ == "__main__":
    sys.exit(main())
