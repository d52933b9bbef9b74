"""The benchmarks as command-line tools: each explains itself with --help, and
bad arguments are refused before any work starts."""
import pytest

from tests.helpers.common import ROOT, run_cli

# common, browsers and webcam_photos are libraries of the benches, not benches.
BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py")
                 if p.stem not in ("__init__", "common", "browsers", "webcam_photos"))
# The options each bench's --help must name.
OPTIONS = {
    "accuracy": ("--views", "--per-class", "--seeds", "--plot"),
    "alpha": ("--frames", "--per-class", "--skip-first-run"),
    "call_profile": ("--calls",),
    "ceiling": ("--port",),
    "demo_latency": ("--calls", "--clients", "--warmup"),
    "features": ("--images", "--seconds"),
    "foundation": ("--views",),
    "growth": ("--sizes", "--plot"),
    "ink_latency": ("--strokes", "--turns", "--browsers", "--breakdown", "--plain-canvas"),
    "labeler_grid": ("--images", "--db"),
    "latency": ("--calls",),
    "load": ("--clients", "--webcams", "--seconds", "--stroke-every", "--workers",
             "--retrain", "--capacity-rounds"),
    "openset": ("--per-class", "--non-sketches", "--seed"),
    "retrain": ("--skip-reference",),
    "webcam": ("--per-class", "--seed", "--streams", "--alpha", "--breakdown", "--head-seeds"),
    "webcam_oracle": ("--per-class", "--seed", "--pairs", "--fresh", "--plot"),
}


def test_every_bench_has_its_options_listed_here():
    assert sorted(OPTIONS) == BENCHES


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_describes_itself_with_help(name):
    result = run_cli("-m", f"bench.{name}", "--help")
    assert result.stdout.startswith(f"usage: python -m bench.{name}")
    for option in OPTIONS[name]:
        assert option in result.stdout


@pytest.mark.parametrize("name", ["accuracy", "growth"])
def test_plots_go_to_the_git_ignored_artifacts_unless_told_otherwise(name):
    from bench.common import ARTIFACTS
    assert ARTIFACTS == ROOT / "artifacts"
    assert "artifacts/" in (ROOT / ".gitignore").read_text().split()
    words = run_cli("-m", f"bench.{name}", "--help").stdout.split()
    assert f"artifacts/{name}.png)" in words


@pytest.mark.parametrize("arguments", [["--per-class", "300,{most_plus_one}"],
                                       ["--per-class", "300,ten"], ["--per-class", ""],
                                       ["--seeds", "0"]])
def test_accuracy_bench_refuses_bad_sizes_and_seeds(arguments):
    from bench.accuracy import DEV_PER_CLASS
    from bench.common import TEST_PER_CLASS
    most = DEV_PER_CLASS - TEST_PER_CLASS
    arguments = [a.format(most_plus_one=most + 1) for a in arguments]
    result = run_cli("-m", "bench.accuracy", *arguments, check=False)
    assert result.returncode == 2 and f"1..{most}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("arguments", [["--images", "10"], ["--seconds", "0"]])
def test_features_bench_refuses_too_few_images_or_no_time(arguments):
    from bench.features import MIN_IMAGES, PIPELINE_WARMUP
    from model.features import POOL_MIN_FEATURES
    # Enough images that both the untimed warm-up and the timed part use the pool.
    assert min(PIPELINE_WARMUP, MIN_IMAGES - PIPELINE_WARMUP) >= POOL_MIN_FEATURES
    result = run_cli("-m", "bench.features", *arguments, check=False)
    assert result.returncode == 2 and f"at least {MIN_IMAGES}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("arguments,says", [(["--frames", "5"], "at least 10"),
                                            (["--per-class", "0"], "1..300")])
def test_alpha_bench_refuses_too_few_frames_or_drawings(arguments, says):
    result = run_cli("-m", "bench.alpha", *arguments, check=False)
    assert result.returncode == 2 and says in result.stderr
    assert result.stdout == ""


def test_benches_load_each_alphas_shared_file_under_the_name_keras_loads():
    import filecmp
    import os
    import shutil
    from bench.common import SHARED_WEIGHTS, keras_home
    from model.backbone import weights_filename
    missing = [str(p) for p in SHARED_WEIGHTS.values() if not p.exists()]
    if missing:
        pytest.skip(f"shared weights not found: {', '.join(missing)}")
    before = os.environ.get("KERAS_HOME")
    home = keras_home(tuple(SHARED_WEIGHTS))
    try:
        assert os.environ.get("KERAS_HOME") == before  # left to the caller
        for alpha, source in SHARED_WEIGHTS.items():
            assert filecmp.cmp(source, home / "models" / weights_filename(alpha, 224),
                               shallow=False)
    finally:
        shutil.rmtree(home)


def test_accuracy_bench_judges_the_head_against_the_better_baseline_at_few_shot_sizes():
    from bench.accuracy import FEW_SHOT_SIZES, compare, comparison_table
    baselines = {"logistic regression (CV)": 0.890, "nearest class mean": 0.838}
    behind, level, ahead = (compare(head, baselines, 30) for head in (0.872, 0.890, 0.9))
    assert behind["met"] is False and level["met"] is True and ahead["met"] is True
    assert behind["better_baseline"] == "logistic regression (CV)"
    assert behind["head_minus"] == {"logistic regression (CV)": -0.018, "nearest class mean": 0.034}
    # Beating the nearest class mean alone is not enough; other sizes are compared, not judged.
    assert compare(0.85, baselines, 5)["met"] is False
    assert compare(0.85, baselines, 300)["met"] is None and 300 not in FEW_SHOT_SIZES
    table = comparison_table({30: behind, 300: compare(0.95, baselines, 300)})
    assert "NOT met" in table and "-0.0180" in table and "(not judged) ahead" in table


def test_ink_bench_splits_the_pages_main_thread_time_per_pointer_event():
    import json
    from bench.ink_latency import GPU_WAIT, TASK, main_thread_split
    page, gpu = (1, 10), (2, 20)
    trace = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 10,
              "args": {"name": "CrRendererMain"}},
             {"ph": "M", "name": "thread_name", "pid": 2, "tid": 20,
              "args": {"name": "CrGpuMain"}}]
    for (pid, tid), name, dur in [(page, TASK, 400_000), (page, GPU_WAIT, 300_000),
                                  (page, TASK, 200_000), (gpu, TASK, 900_000),
                                  (gpu, GPU_WAIT, 50_000)]:
        trace.append({"ph": "X", "name": name, "pid": pid, "tid": tid, "dur": dur})
    split = main_thread_split(json.dumps({"traceEvents": trace}).encode(), events=3)
    assert split == {"main_thread_ms": 200.0, "gpu_wait_ms": 100.0}


def test_simulated_browsers_send_again_a_request_the_server_closed_unanswered():
    """As Chromium and Firefox do when a kept-alive connection was closed
    by the server as the request went out; anything else stays an error."""
    import socket
    import threading
    import httpx
    from bench.browsers import BrowserTransport
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        for answer in (None, ok, None, None):
            connection, _ = listener.accept()
            connection.recv(65536)
            if answer:
                connection.sendall(answer)
            connection.close()
    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    with httpx.Client(transport=BrowserTransport(), timeout=10) as browser:
        assert browser.get(url).text == "ok"
        # Closed unanswered twice in a row: the server's fault, reported.
        with pytest.raises(httpx.RemoteProtocolError):
            browser.get(url)
    listener.close()


def test_the_load_benchs_capacity_ratio_is_the_median_of_side_by_side_rounds(monkeypatch):
    from argparse import Namespace
    from types import SimpleNamespace
    from bench import load
    # Each run's throughput, in the order run: the machine's other work
    # slows the trivial app's second run and the whole third round.
    speeds = iter([40, 80, 60, 50, 20, 40])
    order = []

    def capacity(url, sketches, clients, seconds, pids):
        order.append(url)
        return {"throughput_per_s": next(speeds), "errors": 0, "busy": 1}, []
    monkeypatch.setattr(load, "capacity", capacity)
    demo, trivial = SimpleNamespace(url="demo", pids=()), SimpleNamespace(url="trivial", pids=())
    args = Namespace(capacity_rounds=3, capacity=16, capacity_seconds=1)
    d, t, ratio, errors = load.capacities(demo, trivial, [], args)
    assert order == ["demo", "trivial", "trivial", "demo", "demo", "trivial"]
    # The rounds' ratios are 0.5, 0.83 and 0.5; the medians' ratio would be 0.67.
    assert ratio == 0.5 and errors == []
    assert d["rounds_per_s"] == [40, 50, 20] and d["throughput_per_s"] == 40
    assert t["rounds_per_s"] == [80, 60, 40] and t["throughput_per_s"] == 60
    assert d["busy"] == t["busy"] == 3


def test_the_load_bench_refuses_fewer_than_one_capacity_round():
    result = run_cli("-m", "bench.load", "--capacity-rounds", "0", check=False)
    assert result.returncode == 2
    assert "--capacity-rounds must be at least 1" in result.stderr


def test_the_webcam_bench_refuses_fewer_than_one_head_seed():
    result = run_cli("-m", "bench.webcam", "--head-seeds", "0", check=False)
    assert result.returncode == 2
    assert "--head-seeds takes 1 or more" in result.stderr
