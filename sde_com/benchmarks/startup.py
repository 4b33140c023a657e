"""Benchmarks of what a user waits for before any work: the start-up of ``import sde_com`` and of the
``sde-com`` command, and the first run's kernel compilation (empty cache against warm).

Each measurement is a fresh subprocess of ``sys.executable`` with BLAS pinned to one thread
(``OPENBLAS_NUM_THREADS`` = ``OMP_NUM_THREADS`` = ``MKL_NUM_THREADS`` = 1), so that a shared, noisy machine
gives comparable figures; the commands are interleaved within each repeat and the medians reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sde_com.benchmarks import BLAS_ENV, BLAS_THREADS

# the baseline: the heavy dependencies that every sde_com run needs anyway
BASELINE_IMPORT = "import numpy, numba, xarray"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BLAS_ENV)
    env.update(extra)
    return env


def _wall(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    """Wall time (s) of one subprocess; raises CalledProcessError (with its stderr) if it fails."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def benchmark_startup(repeat: int = 7) -> dict:
    """Median wall times (s) of ``python -c "import numpy, numba, xarray"`` (the baseline),
    ``python -c "import sde_com"`` and ``python -m sde_com.cli --help`` (what the ``sde-com`` console script
    runs), and the ratios of the latter two to the baseline (the target is ≤ 1.3).

    One untimed run of each first (file-system cache, bytecode); then ``repeat`` rounds, the three commands
    interleaved in each so that load on the machine hits them alike.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    commands = {
        "baseline": [sys.executable, "-c", BASELINE_IMPORT],
        "import": [sys.executable, "-c", "import sde_com"],
        "help": [sys.executable, "-m", "sde_com.cli", "--help"],
    }
    env = _env()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # untimed
        _wall(cmd, env)
    for _ in range(repeat):
        for name, cmd in commands.items():
            times[name].append(_wall(cmd, env))
    med = {name: statistics.median(t) for name, t in times.items()}
    return dict(repeat=repeat, blas_threads=BLAS_THREADS, baseline_command=BASELINE_IMPORT,
                baseline_s=med["baseline"], import_s=med["import"], help_s=med["help"],
                import_ratio=med["import"] / med["baseline"], help_ratio=med["help"] / med["baseline"],
                runs=times)


def _scenario_path(scenario: str | os.PathLike) -> Path:
    """The scenario file as given, or else under the ``scenarios/`` folder of the source tree."""
    path = Path(scenario)
    if path.exists():
        return path.resolve()
    shipped = Path(__file__).resolve().parents[2] / "scenarios" / path.name
    if shipped.exists():
        return shipped
    raise FileNotFoundError(f"scenario {str(scenario)!r} not found (nor in {shipped.parent})")


def benchmark_compile(scenario: str | os.PathLike | list = "scenarios/fig2a.toml", repeat: int = 3) -> dict:
    """Cold against warm wall time (s) of ``sde-com run SCENARIO -o TMP --force --quiet``, per scenario.

    Each repeat runs the job once on a fresh, empty kernel cache (``SDE_COM_CACHE_DIR`` = a new temporary
    folder: everything it needs is compiled) and then once more on that cache (warm: everything is loaded).
    ``scenario`` is one path or a list of paths. Returns, per scenario (keyed by the path as given), the
    medians ``cold_s``, ``warm_s``, their difference ``added_s`` (the first run's compile time) and the
    single runs; ``max_added_s`` over the scenarios; for a single scenario its figures at the top level too.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    many = isinstance(scenario, (list, tuple))
    scenarios = list(scenario) if many else [scenario]
    results = {}
    with tempfile.TemporaryDirectory(prefix="sde_com-bench-") as tmp:
        out = str(Path(tmp) / "out.nc")
        for item in scenarios:
            path = _scenario_path(item)
            cmd = [sys.executable, "-m", "sde_com.cli", "run", str(path), "-o", out, "--force", "--quiet"]
            cold, warm = [], []
            for k in range(repeat):
                cache = tempfile.mkdtemp(prefix=f"cache{k}-", dir=tmp)
                env = _env(SDE_COM_CACHE_DIR=cache)
                cold.append(_wall(cmd, env, cwd=tmp))
                warm.append(_wall(cmd, env, cwd=tmp))
            c, w = statistics.median(cold), statistics.median(warm)
            results[str(item)] = dict(cold_s=c, warm_s=w, added_s=c - w, cold_runs=cold, warm_runs=warm)
    report = dict(repeat=repeat, blas_threads=BLAS_THREADS, scenarios=results,
                  max_added_s=max(r["added_s"] for r in results.values()))
    if not many:
        report.update(scenario=str(scenario), **{k: v for k, v in results[str(scenario)].items()})
    return report
