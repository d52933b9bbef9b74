"""The benchmarks as command-line tools: each explains itself with --help, and
bad arguments are refused before any work starts."""
import pytest

from tests.helpers.common import ROOT, run_cli

BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py")
                 if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_describes_itself_with_help(name):
    result = run_cli("-m", f"bench.{name}", "--help")
    assert result.stdout.startswith(f"usage: python -m bench.{name}")


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
