"""python -m bench.demo_latency: end-to-end latency of the demo's /classify_sketch.

Starts `python demo.py` on 127.0.0.1 (a fresh database: the starter set is
seeded and a first model trained with the alpha 0.25 shared weights, copied
into a temporary KERAS_HOME), then calls /classify_sketch through
gradio_client: 200 calls from one client, then 200 calls spread over 8
concurrent clients. Each call uploads a 256x256 PNG sketch and waits for the
gr.Label answer, as any API user would. For comparison it then times the
same sketches through Classifier.classify in this process (no HTTP), and
records the load average, since other work on the machine shows in the
figures. It also makes the same calls over plain HTTP (httpx: upload, POST
/gradio_api/call/classify_sketch, read the event stream) to separate the
server's time from gradio_client's (whose receive loop polls every 50 ms).
Prints figures and, as its last line, one JSON object.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from bench.common import ALPHA, ROOT, Tally, free_port, machine, run_threads, setup


def percentile(values, q):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def summary(latencies, wall):
    ms = [s * 1000 for s in latencies]
    return {"calls": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(percentile(ms, 95), 1), "mean_ms": round(statistics.fmean(ms), 1),
            "max_ms": round(max(ms), 1), "throughput_per_s": round(len(ms) / wall, 1)}


def make_sketches(folder, count=20):
    import numpy as np
    from model.sketches import SHAPES, draw
    rng = np.random.default_rng(31337)
    paths = []
    for i in range(count):
        path = folder / f"sketch-{i}.png"
        draw(SHAPES[i % len(SHAPES)], rng).save(path)
        paths.append(path)
    return paths


def start_demo(workdir, keras_home, port):
    log = open(workdir / "demo.log", "w")
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "GRADIO_TEMP_DIR": str(workdir / "gradio")}
    proc = subprocess.Popen([sys.executable, "demo.py", "--db", str(workdir / "bench.db"),
                             "--alpha", str(ALPHA), "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, log


def wait_ready(url, sketch, proc, timeout=300):
    """Until the first model is trained and /classify_sketch answers."""
    from gradio_client import Client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"demo.py exited with {proc.returncode}")
        try:
            client = Client(url, verbose=False)
            client.predict(sketch, api_name="/classify_sketch")
            return time.monotonic()
        except Exception:
            time.sleep(1)
    sys.exit("the demo did not become ready in time")


@contextlib.contextmanager
def running_demo(prefix):
    """`python demo.py` on 127.0.0.1 on a fresh database with the shared alpha
    0.25 weights in a temporary KERAS_HOME, ready to classify. Yields a
    namespace: url, paths (sketch files), payloads (their /classify_sketch values),
    db, keras_home, startup_s; the process is stopped afterwards."""
    keras_home = setup(dataset=False)  # the demo draws its own sketches
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "client")
    from gradio_client import handle_file
    paths = make_sketches(workdir)
    payloads = [handle_file(str(p)) for p in paths]
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    proc, log = start_demo(workdir, keras_home, port)
    try:
        ready = wait_ready(url, payloads[0], proc)
        yield types.SimpleNamespace(url=url, paths=paths, payloads=payloads,
                                    db=workdir / "bench.db", keras_home=keras_home, process=proc,
                                    startup_s=ready - started)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def gradio_call(url):
    from gradio_client import Client
    client = Client(url, verbose=False)

    def call(payload, path):
        value = client.predict(payload, api_name="/classify_sketch")
        assert value.get("confidences"), value
    return call


def raw_http_call(url):
    """The same call without gradio_client: upload, POST /call, read the SSE answer."""
    import httpx
    session = httpx.Client(timeout=60)

    def call(payload, path):
        uploaded = session.post(url + "gradio_api/upload", files={
            "files": (path.name, path.read_bytes(), "image/png")})
        uploaded.raise_for_status()
        value = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
        started = session.post(url + "gradio_api/call/classify_sketch", json={"data": [value]})
        started.raise_for_status()
        answer = session.get(url + f"gradio_api/call/classify_sketch/"
                             f"{started.json()['event_id']}").text
        assert "event: complete" in answer and "confidences" in answer, answer[-300:]
    return call


def run_clients(url, payloads, paths, clients, calls, make_caller=gradio_call):
    """(latencies, wall seconds, failures) of `calls` calls spread over `clients`
    threads, each with its own client."""
    tally = Tally()
    per_client = [calls // clients + (1 if i < calls % clients else 0) for i in range(clients)]
    connected = [make_caller(url) for _ in range(clients)]

    def worker(index):
        for n in range(per_client[index]):
            k = (index * 7 + n) % len(payloads)
            tally.call(connected[index], payloads[k], paths[k])
    wall = run_threads(clients, worker)
    return tally.seconds(), wall, tally.errors + tally.busy


def in_process(db_path, paths, calls):
    """Latencies of Classifier.classify on the same files, without HTTP or Gradio
    (KERAS_HOME is already the demo's: running_demo set it)."""
    from PIL import Image
    from db import Store
    from model.classifier import Classifier
    classifier = Classifier(Store(db_path))
    images = [Image.open(p).convert("RGB") for p in paths]
    for image in images[:5]:
        classifier.classify(image)
    latencies = []
    started = time.perf_counter()
    for n in range(calls):
        t = time.perf_counter()
        classifier.classify(images[n % len(images)])
        latencies.append(time.perf_counter() - t)
    return latencies, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.demo_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with running_demo("sketchlab-bench-demo-") as demo:
        url, paths, payloads = demo.url, demo.paths, demo.payloads
        print(f"demo ready (fresh database: seeded, trained, served) in "
              f"{demo.startup_s:.1f} s", flush=True)
        run_clients(url, payloads, paths, 1, args.warmup)
        one, one_wall, one_errors = run_clients(url, payloads, paths, 1, args.calls)
        many, many_wall, many_errors = run_clients(url, payloads, paths, args.clients,
                                                   args.calls)
        raw_one, raw_one_wall, raw_errors = run_clients(url, payloads, paths, 1, args.calls,
                                                        raw_http_call)
        raw_many, raw_many_wall, raw_many_errors = run_clients(
            url, payloads, paths, args.clients, args.calls, raw_http_call)
        one_errors += raw_errors
        many_errors += raw_many_errors
    load_after = os.getloadavg()[0]
    local, local_wall = in_process(demo.db, paths, args.calls)
    result = {"endpoint": "/classify_sketch", "alpha": ALPHA, "host": "127.0.0.1",
              "one_client": summary(one, one_wall),
              f"{args.clients}_clients": summary(many, many_wall),
              "raw_http_one_client": summary(raw_one, raw_one_wall),
              f"raw_http_{args.clients}_clients": summary(raw_many, raw_many_wall),
              "in_process_classify": summary(local, local_wall),
              "errors": len(one_errors) + len(many_errors),
              "load_average_1min": [round(load_before, 2), round(load_after, 2)],
              "startup_to_ready_s": round(demo.startup_s, 1), "machine": machine()}
    for name in ("one_client", f"{args.clients}_clients", "raw_http_one_client",
                 f"raw_http_{args.clients}_clients", "in_process_classify"):
        r = result[name]
        print(f"{name:>20}: {r['calls']} calls  p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms"
              f"  mean {r['mean_ms']:.1f} ms  max {r['max_ms']:.1f} ms  "
              f"{r['throughput_per_s']:.1f} calls/s")
    print(f"load average (1 min) before/after the HTTP runs: {load_before:.2f} / "
          f"{load_after:.2f} on {os.cpu_count()} CPUs")
    if one_errors or many_errors:
        print(f"errors: {(one_errors + many_errors)[:3]}")
    print(json.dumps(result))
    return 0 if not (one_errors or many_errors) else 1


if __name__ == "__main__":
    sys.exit(main())
