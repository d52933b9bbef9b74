"""python -m bench.load: a classroom on one demo, and the framework's ceiling.

Starts `python demo.py` on 127.0.0.1 on a fresh database (starter set seeded
and trained with the shared alpha 0.25 weights) and, beside it, the trivial
app of bench.ceiling (the same components, fixed answers). Each simulated
client is a browser of its own (its own cookies, hence its own upload and
rate limits in the demo's guard, and its own Gradio session; see
bench.browsers). Then, for --seconds:

  * --clients students draw: a stroke every --stroke-every seconds on average
    (uniformly 0.5 s to twice that less 0.5 s), each sent as the page sends
    it; after about one stroke in --correct-every, a correction;
  * --webcams browsers send a webcam frame every stream_every seconds (the
    page's setting, 0.3 s) through /classify_photo (the API: an upload and a
    call; the guard allows a browser uploads_per_minute uploads).

It reports, per kind of request, the calls, throughput, p50 and p95; the
errors and the busy answers (Gradio's full queue); the demo's memory (RSS)
at the start, its peak, and at the end; the CPU (in cores) the demo's
processes and the simulated browsers used, which share the machine. Then it
measures capacity: --capacity browsers stroking back to back for
--capacity-seconds, against the demo and against the trivial app, in
--capacity-rounds rounds that alternate which app goes first (the machine's
other work moves one round by up to a fifth). It reports each app's rounds
and the round of median throughput, and the ratio of the two apps'
throughputs as the median of the rounds' ratios, each taken between two
runs side by side in time.

With --workers N (e.g. 1,2) it runs all of this once per N, against N demo
processes behind nginx (deploy/serve.py, the `make serve` recipe) sharing
one database, with the ceiling as N trivial processes behind the same kind
of proxy. With --retrain, a third of the way into the classroom,
`python -m model.train --views 4 --force` runs in another process.

Prints figures and, as its last line, one JSON object; exits 1 on any error.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

from bench.common import ALPHA, ROOT, Tally, machine, run_threads
from bench.demo_latency import summary

MAX_CALLS_PER_CLIENT = 5_000
CORRECTION_LABELS = ("house", "ring", "cloud")


def cpu_seconds(pids):
    """CPU seconds (user and system) the processes `pids` used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pids):
    """Resident memory of the processes `pids`, in MB (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status
                              if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


class Memory:
    """RSS of the server processes sampled every half second in a thread."""

    def __init__(self, pids):
        self.pids, self.samples = pids, [rss_mb(pids)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.5):
            self.samples.append(rss_mb(self.pids))

    def stop(self):
        """Start, peak, end, and at the middle and three quarters of the run
        (once every browser has its session: growth after it is a leak)."""
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb(self.pids))
        at = lambda share: round(self.samples[int(share * (len(self.samples) - 1))])  # noqa: E731
        return {"start_mb": round(self.samples[0]), "half_mb": at(0.5),
                "three_quarters_mb": at(0.75), "peak_mb": round(max(self.samples)),
                "end_mb": round(self.samples[-1])}


def classroom(url, sketches, args, pids=()):
    """{kind: Tally}, the wall seconds of the students and webcams, and the
    CPU cores the server processes `pids` and the simulated browsers used."""
    from bench.browsers import Browser, Page, wait_until
    from demo_handlers import settings
    page = Page(url)
    tallies = {"stroke": Tally(), "correction": Tally(), "webcam": Tally()}
    clients = args.clients + args.webcams
    browsers = [Browser(page) for _ in range(clients)]
    deadline = time.monotonic() + args.seconds

    def student(index, browser):
        rng = random.Random(index)
        # Students start at different moments, as a class does.
        wait_until(time.monotonic() + rng.uniform(0, args.stroke_every))
        for n in range(MAX_CALLS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            tallies["stroke"].call(browser.stroke, sketches[(index * 7 + n) % len(sketches)])
            if rng.random() < 1 / args.correct_every:
                tallies["correction"].call(browser.correct, rng.choice(CORRECTION_LABELS))
            wait_until(time.monotonic() + rng.uniform(0.5, 2 * args.stroke_every - 0.5))

    every = settings.stream_every

    def webcam(index, browser):
        next_frame = time.monotonic() + random.Random(index).uniform(0, every)
        for n in range(MAX_CALLS_PER_CLIENT):
            wait_until(next_frame)
            if time.monotonic() >= deadline:
                return
            tallies["webcam"].call(browser.classify_photo, "frame.png",
                                   sketches[(index + n) % len(sketches)])
            next_frame += every

    def worker(index):
        role = student if index < args.clients else webcam
        role(index, browsers[index])
    # The simulated browsers run on the same cores as the demo: what each
    # side used tells a busy server from a crowded machine.
    server_cpu, own_cpu = cpu_seconds(pids), sum(os.times()[:2])
    wall = run_threads(clients, worker)
    cores = {"demo": round((cpu_seconds(pids) - server_cpu) / wall, 2),
             "browsers": round((sum(os.times()[:2]) - own_cpu) / wall, 2)}
    for browser in browsers:
        browser.close()
    return tallies, wall, cores


def capacity(url, sketches, clients, seconds, pids=()):
    """Throughput (calls/s), latencies, errors, busy answers and the CPU
    milliseconds the server processes `pids` spent per stroke, of `clients`
    browsers stroking back to back for `seconds`."""
    from bench.browsers import Browser, Page
    page = Page(url)
    tally = Tally()
    browsers = [Browser(page) for _ in range(clients)]
    deadline = time.monotonic() + seconds
    cpu_before = cpu_seconds(pids)

    def worker(index):
        for n in range(MAX_CALLS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            tally.call(browsers[index].stroke, sketches[(index * 7 + n) % len(sketches)])
    wall = run_threads(clients, worker)
    cpu = cpu_seconds(pids) - cpu_before
    for browser in browsers:
        browser.close()
    return {**summary(tally.seconds(), wall), "errors": len(tally.errors),
            "busy": len(tally.busy),
            "server_cpu_ms_per_call": round(1000 * cpu / max(1, len(tally.latencies)), 1)
            }, tally.errors


def one_setup(workers, sketches, keras_home, args):
    """The classroom and both capacities against `workers` processes."""
    from deploy.serve import served
    result = {"workers": workers}
    with served(workers, keras_home=keras_home, alpha=ALPHA) as demo, \
            served(workers, app="bench.ceiling") as trivial:
        retrain = []
        if args.retrain:
            timer = threading.Timer(args.seconds / 3,
                                    lambda: retrain.append(_retrain(demo.db, keras_home)))
            timer.start()
        memory = Memory(demo.pids)
        load_before = os.getloadavg()[0]
        tallies, wall, result["cpu_cores"] = classroom(demo.url, sketches, args, demo.pids)
        if args.retrain:
            timer.join()
        result["memory"] = memory.stop()
        result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        result["seconds"] = round(wall, 1)
        errors = []
        for kind, tally in tallies.items():
            if tally.latencies:
                result[kind] = summary(tally.seconds(), wall)
            result[f"{kind}_errors"] = len(tally.errors)
            result[f"{kind}_busy"] = len(tally.busy)
            errors += tally.errors
        if retrain:
            began, ended, code = retrain[0]
            during = [s for start, s in tallies["stroke"].latencies if began <= start < ended]
            result["retrain"] = {"seconds": round(ended - began, 1), "exit": code,
                                 **(summary(during, ended - began) if during else {})}
            if code:
                errors.append(f"retrain exited with {code}")
        (result["demo_capacity"], result["trivial_capacity"], result["capacity_ratio"],
         failed) = capacities(demo, trivial, sketches, args)
        result["alive_after"] = demo.alive()
        errors += failed
    return result, errors


def capacities(demo, trivial, sketches, args):
    """(the demo's capacity, the trivial app's, the median ratio of their
    throughputs, errors) over --capacity-rounds rounds: each app's figures
    are those of its round of median throughput, with every round's
    throughput and the errors and busy answers of all rounds."""
    apps = {"demo": demo, "trivial": trivial}
    rounds, errors = {"demo": [], "trivial": []}, []
    for n in range(args.capacity_rounds):
        for name in ("demo", "trivial") if n % 2 == 0 else ("trivial", "demo"):
            found, failed = capacity(apps[name].url, sketches, args.capacity,
                                     args.capacity_seconds, apps[name].pids)
            rounds[name].append(found)
            errors += failed

    def median_round(results):
        middle = sorted(results, key=lambda r: r["throughput_per_s"])[len(results) // 2]
        return {**middle, "rounds_per_s": [r["throughput_per_s"] for r in results],
                "errors": sum(r["errors"] for r in results),
                "busy": sum(r["busy"] for r in results)}
    ratio = statistics.median(d["throughput_per_s"] / t["throughput_per_s"]
                              for d, t in zip(rounds["demo"], rounds["trivial"]))
    return median_round(rounds["demo"]), median_round(rounds["trivial"]), round(ratio, 2), errors


def report(r, args):
    print(f"-- {r['workers']} worker{'s' if r['workers'] > 1 else ''}: {args.clients} students "
          f"+ {args.webcams} webcams for {r['seconds']:.0f} s "
          f"(load average {r['load_average_1min'][0]} -> {r['load_average_1min'][1]})")
    for kind in ("stroke", "correction", "webcam"):
        if kind in r:
            s = r[kind]
            print(f"  {kind:<11} {s['calls']:>6} calls {s['throughput_per_s']:>6} /s  "
                  f"p50 {s['p50_ms']:>7} ms  p95 {s['p95_ms']:>7} ms  "
                  f"errors {r[f'{kind}_errors']}  busy {r[f'{kind}_busy']}")
    m = r["memory"]
    print(f"  demo memory: {m['start_mb']} MB at the start, {m['half_mb']} MB half-way, "
          f"{m['three_quarters_mb']} MB at three quarters, peak {m['peak_mb']} MB, "
          f"{m['end_mb']} MB at the end")
    print(f"  CPU in use: the demo's processes {r['cpu_cores']['demo']} cores, the simulated "
          f"browsers {r['cpu_cores']['browsers']} (of {os.cpu_count()})")
    if "retrain" in r:
        t = r["retrain"]
        print(f"  during the {t['seconds']} s retrain (exit {t['exit']}): "
              f"{t.get('calls', 0)} strokes, p95 {t.get('p95_ms')} ms")
    d, t = r["demo_capacity"], r["trivial_capacity"]
    print(f"  capacity, {args.capacity} browsers back to back, {args.capacity_rounds} rounds "
          f"(median round): demo {d['throughput_per_s']} strokes/s (rounds {d['rounds_per_s']}; "
          f"p50 {d['p50_ms']} ms, {d['server_cpu_ms_per_call']} ms of server CPU a stroke), "
          f"trivial app {t['throughput_per_s']} /s (rounds {t['rounds_per_s']}; p50 "
          f"{t['p50_ms']} ms, {t['server_cpu_ms_per_call']} ms): ratio {r['capacity_ratio']} "
          f"(median of the rounds' ratios)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64, help="students drawing")
    parser.add_argument("--webcams", type=int, default=4, help="webcam streams")
    parser.add_argument("--seconds", type=float, default=60, help="length of the classroom")
    parser.add_argument("--stroke-every", type=float, default=3.0,
                        help="mean seconds between two strokes of a student")
    parser.add_argument("--correct-every", type=float, default=15,
                        help="strokes per correction, on average")
    parser.add_argument("--capacity", type=int, default=16,
                        help="browsers stroking back to back in the capacity runs")
    parser.add_argument("--capacity-seconds", type=float, default=15,
                        help="length of one capacity run")
    parser.add_argument("--capacity-rounds", type=int, default=3,
                        help="capacity runs of each app, alternating which goes first")
    parser.add_argument("--workers", default="1",
                        help="comma-separated numbers of demo processes, each run in turn "
                        "(more than 1 needs nginx)")
    parser.add_argument("--retrain", action="store_true",
                        help="retrain in another process during the classroom")
    args = parser.parse_args(argv)
    try:
        workers = [int(n) for n in args.workers.split(",")]
    except ValueError:
        parser.error("--workers is a comma-separated list of numbers, e.g. 1,2")
    if min(workers) < 1 or args.clients < 1 or args.stroke_every < 1 or args.seconds <= 0 \
            or args.capacity_rounds < 1:
        parser.error("--workers, --clients, --capacity-rounds must be at least 1, "
                     "--stroke-every at least 1 s, --seconds positive")
    from bench.common import setup
    from bench.demo_latency import make_sketches
    import tempfile
    from pathlib import Path
    keras_home = setup(dataset=False)
    folder = Path(tempfile.mkdtemp(prefix="sketchlab-bench-load-"))
    sketches = [path.read_bytes() for path in make_sketches(folder)]
    results, errors = [], []
    for n in workers:
        result, failed = one_setup(n, sketches, keras_home, args)
        report(result, args)
        results.append(result)
        errors += failed
    if len(results) > 1:
        base = results[0]["demo_capacity"]["throughput_per_s"]
        for r in results[1:]:
            r["capacity_vs_first"] = round(r["demo_capacity"]["throughput_per_s"] / base, 2)
            print(f"{r['workers']} workers give {r['capacity_vs_first']}x the capacity of "
                  f"{results[0]['workers']}")
    if errors:
        print(f"errors ({len(errors)}): {errors[:3]}")
    print(json.dumps({"clients": args.clients, "webcams": args.webcams,
                      "stroke_every_s": args.stroke_every, "alpha": ALPHA,
                      "runs": results, "errors": len(errors), "machine": machine()}))
    return 1 if errors or not all(r["alive_after"] for r in results) else 0


def _retrain(db, keras_home):
    """(start, end, exit status) of a retrain of the demo's database in another process."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "model.train", "--db", str(db), "--alpha", str(ALPHA),
         "--views", "4", "--force"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "KERAS_HOME": str(keras_home)})
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
    return began, time.perf_counter(), done.returncode


if __name__ == "__main__":
    sys.exit(main())
