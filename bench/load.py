"""python -m bench.load: 16 concurrent clients classifying for 60 seconds.

Starts `python demo.py` on 127.0.0.1 on a fresh database (starter set seeded
and trained with the shared alpha 0.25 weights), then runs 16 client threads,
each with its own HTTP session, calling /classify_sketch over plain HTTP
(upload, POST /gradio_api/call, read the event stream) back to back for 60
seconds. Loops are bounded in time and in calls and stop by themselves.
Answers that say the queue is busy are counted apart from errors; any other
error makes the exit status 1. Prints figures and, as its last line, one JSON
object."""
import argparse
import json
import os
import sys
import threading
import time

from bench.common import ALPHA, machine
from bench.demo_latency import raw_http_call, running_demo, summary

MAX_CALLS_PER_CLIENT = 5_000


def run_for(url, paths, clients, seconds):
    """(latencies, wall seconds, busy answers, errors) of `clients` threads
    calling back to back until `seconds` have passed."""
    latencies, busy, errors = [], [], []
    lock = threading.Lock()
    callers = [raw_http_call(url) for _ in range(clients)]
    barrier = threading.Barrier(clients)
    deadline = []

    def worker(index):
        call = callers[index]
        barrier.wait()
        if index == 0:
            deadline.append(time.monotonic() + seconds)
        while not deadline:
            time.sleep(0.001)
        for n in range(MAX_CALLS_PER_CLIENT):
            if time.monotonic() >= deadline[0]:
                return
            path = paths[(index * 7 + n) % len(paths)]
            started = time.perf_counter()
            try:
                call(None, path)
            except Exception as error:  # sorted below, never hidden
                text = repr(error)
                with lock:
                    (busy if "busy" in text.lower() or "full" in text.lower()
                     else errors).append(text)
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, busy, errors


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    with running_demo("sketchlab-bench-load-") as demo:
        latencies, wall, busy, errors = run_for(demo.url, demo.paths, args.clients,
                                                args.seconds)
        alive = demo.process.poll() is None
    result = {"endpoint": "/classify_sketch", "clients": args.clients,
              "seconds": round(wall, 1), **summary(latencies, wall), "busy": len(busy),
              "errors": len(errors), "server_alive_after": alive, "alpha": ALPHA,
              "load_average_1min": round(os.getloadavg()[0], 2), "machine": machine()}
    print(f"{args.clients} clients for {wall:.0f} s: {result['calls']} calls, "
          f"{result['throughput_per_s']} calls/s, p50 {result['p50_ms']} ms, "
          f"p95 {result['p95_ms']} ms, busy {len(busy)}, errors {len(errors)}")
    if errors:
        print(f"errors: {errors[:3]}")
    print(json.dumps(result))
    return 0 if not errors and alive else 1


if __name__ == "__main__":
    sys.exit(main())
