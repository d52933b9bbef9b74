"""python -m bench.call_profile: where the time of one /classify_sketch call goes.

Starts `python demo.py` on a fresh database (starter set, alpha 0.25 shared
weights) and, beside it, the trivial app of bench.ceiling (the same
components, fixed answers), both timing their own steps (GRADIO_PROFILING=1:
the queue wait, preprocessing, the handler, postprocessing, the upload
route). Against each, one client makes --calls calls one after another:

  * /classify_sketch over the API: the upload (the PNG written to Gradio's
    upload folder), the POST that queues the call, the event stream read
    until the answer; a new browser (cookie) every CALLS_PER_BROWSER calls,
    within the guard's upload rate;
  * a stroke as the page sends it (bench.browsers): the pad's change event
    queued with the drawing in it, the session's event stream read until the
    answer.

What the client waits for beyond the server's steps is the web stack:
routing, the guard, the event stream. Prints tables and, as its last line,
one JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time

from bench.common import ALPHA, machine

PHASES = ("upload", "queue_call", "event_stream")
STROKE_PHASES = ("join", "stream")
SERVER_PHASES = ("queue_wait", "preprocess", "fn_call", "postprocess", "total")
CALLS_PER_BROWSER = 40


def phased_call(session, url, path, endpoint="classify_sketch"):
    """One plain-HTTP call of `endpoint` on the sketch file at `path`, as any
    API user makes it; returns {phase: seconds}."""
    times = {}
    t0 = time.perf_counter()
    uploaded = session.post(url + "gradio_api/upload", files={
        "files": (path.name, path.read_bytes(), "image/png")})
    uploaded.raise_for_status()
    t1 = time.perf_counter()
    file = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
    started = session.post(url + f"gradio_api/call/{endpoint}", json={"data": [file]})
    started.raise_for_status()
    t2 = time.perf_counter()
    answer = session.get(url + f"gradio_api/call/{endpoint}/{started.json()['event_id']}").text
    t3 = time.perf_counter()
    if "event: complete" not in answer:
        raise RuntimeError(f"no answer: {answer[-300:]}")
    times.update(upload=t1 - t0, queue_call=t2 - t1, event_stream=t3 - t2)
    return times


def http_phases(url, paths, calls, warmup=10):
    """Median seconds of each phase; a new browser (its own cookie) every
    CALLS_PER_BROWSER calls, as the guard allows a browser `uploads_per_minute`."""
    import httpx
    rows = []
    for start in range(0, warmup + calls, CALLS_PER_BROWSER):
        with httpx.Client(timeout=60) as session:
            for n in range(start, min(start + CALLS_PER_BROWSER, warmup + calls)):
                times = phased_call(session, url, paths[n % len(paths)])
                if n >= warmup:
                    rows.append(times)
    return {phase: statistics.median(r[phase] for r in rows) for phase in PHASES} | {
        "total": statistics.median(sum(r.values()) for r in rows)}


def stroke_phases(url, pngs, calls, warmup=10):
    """Median seconds of each request of a stroke sent as the page sends it
    (one browser, one session)."""
    from bench.browsers import Browser, Page
    browser = Browser(Page(url))
    rows = []
    for n in range(warmup + calls):
        times = {}
        browser.stroke(pngs[n % len(pngs)], times)
        if n >= warmup:
            rows.append(times)
    browser.close()
    return {phase: statistics.median(r[phase] for r in rows) for phase in STROKE_PHASES} | {
        "total": statistics.median(sum(r.values()) for r in rows)}


def server_phases(url):
    """Gradio's own timing of the calls since the last clear (GRADIO_PROFILING=1):
    median ms of the queue wait, preprocessing, the handler, postprocessing,
    and of the upload route."""
    import httpx
    summary = httpx.get(url + "gradio_api/profiling/summary", timeout=30).json()
    phases = {name: round(values["p50"], 2) for name, values in summary["phases"].items()
              if name in SERVER_PHASES}
    return {**phases, "upload": round(summary.get("upload", {}).get("p50", 0.0), 2)}


def clear_profile(url):
    import httpx
    httpx.post(url + "gradio_api/profiling/clear", timeout=30).raise_for_status()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.call_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls timed per app")
    args = parser.parse_args(argv)
    if args.calls < 10:
        parser.error("--calls must be at least 10")
    from bench.demo_latency import running_demo
    from deploy.serve import served
    load_before = os.getloadavg()[0]
    # Both servers time their own steps (Gradio's profiling routes).
    os.environ["GRADIO_PROFILING"] = "1"
    with running_demo("sketchlab-bench-profile-") as demo_app:
        with served(1, app="bench.ceiling") as ceiling:
            ceiling_url = ceiling.url
            measured, strokes = {}, {}
            pngs = [path.read_bytes() for path in demo_app.paths]
            for name, url in (("demo", demo_app.url), ("trivial", ceiling_url)):
                clear_profile(url)
                measured[name] = (http_phases(url, demo_app.paths, args.calls),
                                  server_phases(url))
                clear_profile(url)
                strokes[name] = (stroke_phases(url, pngs, args.calls), server_phases(url))
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    result = {"endpoint": "/classify_sketch", "calls": args.calls, "alpha": ALPHA,
              **{f"{name}_client_ms": {k: ms(v) for k, v in client.items()}
                 for name, (client, _) in measured.items()},
              **{f"{name}_server_ms": server for name, (_, server) in measured.items()},
              **{f"{name}_stroke_client_ms": {k: ms(v) for k, v in client.items()}
                 for name, (client, _) in strokes.items()},
              **{f"{name}_stroke_server_ms": server for name, (_, server) in strokes.items()},
              "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "machine": machine()}
    print("/classify_sketch over the API (upload, POST /call, event stream):")
    print(f"{'phase (median of ' + str(args.calls) + ' calls, one client)':<44}"
          f"{'demo ms':>10}{'trivial ms':>12}")
    (demo_client, demo_server), (trivial_client, trivial_server) = measured.values()
    for phase in (*PHASES, "total"):
        print(f"client: {phase:<36}{ms(demo_client[phase]):>10}{ms(trivial_client[phase]):>12}")
    for phase in demo_server:
        print(f"server: {phase:<36}{demo_server[phase]:>10}{trivial_server[phase]:>12}")
    (demo_client, demo_server), (trivial_client, trivial_server) = strokes.values()
    print("a stroke, sent as the page sends it (queue/join, event stream):")
    for phase in (*STROKE_PHASES, "total"):
        print(f"client: {phase:<36}{ms(demo_client[phase]):>10}{ms(trivial_client[phase]):>12}")
    for phase in demo_server:
        if phase != "upload":
            print(f"server: {phase:<36}{demo_server[phase]:>10}{trivial_server[phase]:>12}")
    print(f"load average (1 min) before/after: {result['load_average_1min']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
