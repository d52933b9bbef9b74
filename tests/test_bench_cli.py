"""The benchmarks as command-line tools: each explains itself with --help, and
bad arguments are refused before any work starts."""
import pytest

from tests.conftest import ROOT, run_cli

BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py")
                 if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_describes_itself_with_help(name):
    result = run_cli("-m", f"bench.{name}", "--help")
    assert result.stdout.startswith(f"usage: python -m bench.{name}")


def test_accuracy_bench_refuses_more_training_drawings_than_the_dev_set_leaves():
    from bench.accuracy import DEV_PER_CLASS
    from bench.common import TEST_PER_CLASS
    most = DEV_PER_CLASS - TEST_PER_CLASS
    result = run_cli("-m", "bench.accuracy", "--per-class", f"300,{most + 1}", check=False)
    assert result.returncode == 2 and f"1..{most}" in result.stderr
    assert result.stdout == ""
