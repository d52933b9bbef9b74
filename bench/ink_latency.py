"""python -m bench.ink_latency: how soon a stroke's ink shows on the sketchpad.

Starts `python demo.py` on a fresh database (bench.demo_latency's
`running_demo`), opens the Draw tab in Debian's Chromium (Playwright) and in
Firefox ESR (Marionette, on a virtual display), on a desk-sized window with
a mouse and on a 390x844 phone-sized one with a finger, and draws strokes
across the pad. For every pointer event the page records the time from the
event to the end of the second animation frame after it (the frame in which
the pad draws the ink has then been produced): an upper bound of
input-to-ink latency, by one frame. Prints p50/p95/max per browser and
screen, the machine's load, and, as its last line, one JSON object.

The pad draws on a 2D canvas (demo_pad.js); the browsers here have no GPU
and composite the page in software. With --breakdown, Chromium's strokes
are traced (which adds its own cost) and, per pointer event, the page's
main thread's busy time is split into the time it waited for the GPU
process (SwiftShader without a GPU) and the rest (the pad's script,
layout, input handling). With --plain-canvas, the same strokes are also
measured on a page holding nothing but a 2D canvas of the pad's size that
draws each pointer move: what the rest of the demo's page adds.
"""
import argparse
import json
import os
import statistics
from urllib.parse import quote

from bench.common import machine
from bench.demo_latency import percentile, running_demo

# In the page: for each pointer event on a pad, event -> end of the second
# animation frame after it, in ms (performance.now's clock, which
# event.timeStamp shares).
RECORD_JS = """
() => {
  window.sketchlabInk = [];
  for (const pad of document.querySelectorAll("#sketchpad, #teach-pad")) {
    for (const type of ["pointerdown", "pointermove"]) {
      pad.addEventListener(type, (event) => {
        // The pad's canvas, or the area around it that holds the pointer.
        if (!event.target.matches("canvas, .pad-area")) return;
        const start = event.timeStamp;
        requestAnimationFrame(() => requestAnimationFrame(() =>
          window.sketchlabInk.push(performance.now() - start)));
      }, {capture: true, passive: true});
    }
  }
  return true;
}
"""
READ_JS = "return window.sketchlabInk || []"
# What each browser waits for before drawing: the pad taking strokes.
PAD_READY = "#sketchpad canvas[data-ready]"
# A plain 2D canvas under the same id, drawing a line at each pointer move.
PLAIN_CANVAS = "data:text/html," + quote("""<!doctype html>
<meta name="viewport" content="width=device-width, initial-scale=1">
<div id="sketchpad"><canvas width="480" height="480"
  style="width: min(480px, 96vw); touch-action: none; border: 1px solid #ccc"></canvas></div>
<script>
const canvas = document.querySelector("canvas"), pen = canvas.getContext("2d");
pen.fillStyle = "#fff"; pen.fillRect(0, 0, 480, 480);
pen.lineWidth = 6; pen.lineCap = pen.lineJoin = "round";
let last = null;
const at = (e) => { const box = canvas.getBoundingClientRect();
  return [(e.clientX - box.left) * 480 / box.width, (e.clientY - box.top) * 480 / box.height]; };
canvas.addEventListener("pointerdown", (e) => { last = at(e); });
canvas.addEventListener("pointermove", (e) => { if (!last) return;
  const next = at(e); pen.beginPath(); pen.moveTo(...last); pen.lineTo(...next); pen.stroke();
  last = next; });
canvas.addEventListener("pointerup", () => { last = null; });
</script>""")


def summary(latencies):
    if not latencies:
        return {"events": 0}
    return {"events": len(latencies), "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(percentile(latencies, 95), 1), "max_ms": round(max(latencies), 1)}


def stroke_points(x, y, width, height, turns):
    """A zigzag across the middle of a box, `turns` corners."""
    return [(x + width * (0.2 + 0.6 * i / turns), y + height * (0.3 if i % 2 else 0.7))
            for i in range(turns + 1)]


# Chromium trace events: a task on a thread, and the page's main thread
# blocked until the GPU process has run the commands sent to it.
TASK, GPU_WAIT = "ThreadControllerImpl::RunTask", "CommandBufferProxyImpl::WaitForGetOffset"
TRACE_CATEGORIES = ["toplevel", "gpu", "cc", "devtools.timeline"]


def main_thread_split(trace, events):
    """{"main_thread_ms", "gpu_wait_ms"} per pointer event, from a Chromium
    trace (JSON bytes) of the page's renderer."""
    records = json.loads(trace)
    records = records["traceEvents"] if isinstance(records, dict) else records
    main = {(r["pid"], r["tid"]) for r in records if r.get("ph") == "M"
            and r.get("name") == "thread_name" and r["args"].get("name") == "CrRendererMain"}
    busy = {TASK: 0, GPU_WAIT: 0}
    for r in records:
        if r.get("ph") == "X" and r.get("name") in busy and (r["pid"], r["tid"]) in main:
            busy[r["name"]] += r.get("dur", 0)
    per = max(1, events) * 1000
    return {"main_thread_ms": round(busy[TASK] / per, 1),
            "gpu_wait_ms": round(busy[GPU_WAIT] / per, 1)}


def chromium(url, phone, strokes, turns, breakdown=False, ready=PAD_READY):
    """Latencies (ms) of `strokes` strokes in Chromium, desk or phone; with
    `breakdown`, (latencies, `main_thread_split`)."""
    from playwright.sync_api import sync_playwright
    from tests.helpers.browser import open_browser
    with sync_playwright() as playwright:
        browser = open_browser(playwright)
        try:
            options = (dict(viewport={"width": 390, "height": 844}, is_mobile=True,
                            has_touch=True, device_scale_factor=2) if phone
                       else dict(viewport={"width": 1280, "height": 1000}))
            page = browser.new_context(**options).new_page()
            page.goto(url)
            page.locator(ready).first.wait_for(state="attached", timeout=60_000)
            page.evaluate(RECORD_JS)
            if breakdown:
                browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
            box = page.locator("#sketchpad canvas").first.bounding_box()
            points = stroke_points(box["x"], box["y"], box["width"], box["height"], turns)
            if phone:
                touch_strokes(page, points, strokes)
            else:
                for _ in range(strokes):
                    page.mouse.move(*points[0])
                    page.mouse.down()
                    for point in points[1:]:
                        page.mouse.move(*point, steps=2)
                    page.mouse.up()
            page.wait_for_timeout(1000)
            latencies = page.evaluate("window.sketchlabInk")
            if breakdown:
                return latencies, main_thread_split(browser.stop_tracing(), len(latencies))
            return latencies
        finally:
            browser.close()


def touch_strokes(page, points, strokes):
    """Finger strokes through the DevTools protocol (Playwright's touchscreen
    only taps)."""
    session = page.context.new_cdp_session(page)

    def touch(kind, x, y):
        session.send("Input.dispatchTouchEvent", {
            "type": kind, "touchPoints": [] if kind == "touchEnd" else [{"x": x, "y": y}]})
    for _ in range(strokes):
        touch("touchStart", *points[0])
        for point in points[1:]:
            touch("touchMove", *point)
        touch("touchEnd", *points[-1])


def firefox(url, phone, strokes, turns, ready=PAD_READY):
    """Latencies (ms) of `strokes` strokes in Firefox, desk or phone."""
    from tests.helpers.firefox import css, firefox as open_firefox, in_view, stroke, wait_for
    width, height = (390, 844) if phone else (1280, 1000)
    with open_firefox(width=width, height=height) as driver:
        driver.navigate(url)
        wait_for(driver, lambda d: css(d, ready), "the pad", timeout=120)
        # In the page's own scope (sandbox=None), where the recorded list lives.
        driver.execute_script("return (" + RECORD_JS + ")()", sandbox=None)
        canvas = [c for c in css(driver, "#sketchpad canvas") if c.is_displayed()][0]
        points = stroke_points(*in_view(driver, canvas), turns)
        for _ in range(strokes):
            stroke(driver, points, pointer="touch" if phone else "mouse")
        driver.execute_script("return new Promise((done) => setTimeout(done, 1000))",
                              sandbox=None)
        return driver.execute_script(READ_JS, sandbox=None)


def parser():
    p = argparse.ArgumentParser(prog="python -m bench.ink_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strokes", type=int, default=5, help="strokes per browser and screen "
                   "(default: 5)")
    p.add_argument("--turns", type=int, default=8, help="corners per stroke (default: 8)")
    p.add_argument("--browsers", nargs="+", default=["chromium", "firefox"],
                   choices=["chromium", "firefox"], help="browsers to measure (default: both)")
    p.add_argument("--breakdown", action="store_true",
                   help="trace Chromium's strokes and split its main thread's time per "
                   "pointer event: waiting for the GPU process, and the rest")
    p.add_argument("--plain-canvas", action="store_true",
                   help="also measure a plain 2D canvas that draws each pointer move")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    results = {"machine": machine(), "load_before": os.getloadavg()}
    with running_demo("sketchlab-ink-") as demo:
        pads = [("", demo.url, PAD_READY)]
        if args.plain_canvas:
            pads.append((" plain canvas", PLAIN_CANVAS, "#sketchpad canvas"))
        for name in args.browsers:
            for screen in ("desk", "phone"):
                phone = screen == "phone"
                for pad, url, ready in pads:
                    if name == "chromium" and args.breakdown:
                        latencies, split = chromium(url, phone, args.strokes, args.turns, True,
                                                    ready)
                        figures = {**summary(latencies), **split}
                    elif name == "chromium":
                        figures = summary(chromium(url, phone, args.strokes, args.turns,
                                                   ready=ready))
                    else:
                        figures = summary(firefox(url, phone, args.strokes, args.turns, ready))
                    results[f"{name} {screen}{pad}"] = figures
                    print(f"{name:8} {screen:5}{pad} " + ", ".join(
                        f"{k} {v}" for k, v in figures.items()), flush=True)
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before'][0]:.1f}, after "
          f"{results['load_after'][0]:.1f} (2 cores)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
