"""`import sde_com` and `sde-com --help` load only what every run needs; the public API loads on first use."""

import json
import subprocess
import sys

import pytest

import sde_com

# heavy modules that `import sde_com` and the CLI's start-up must not load (each is needed by some runs only)
HEAVY = ("scipy.signal", "scipy.linalg", "scipy.integrate", "dask", "distributed", "matplotlib", "xarray",
         "pandas", "netCDF4", "sde_com.runs.engine", "sde_com.physics.resonator.chain", "sde_com.kernels.ensemble")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code", ["import sde_com",
                                  "from sde_com.cli import build_parser; build_parser().format_help()"])
def test_startup_loads_no_heavy_module(code):
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_writing_a_file_loads_no_cluster_and_leaves_it_loadable(tmp_path):
    """xarray's scheduler lookup would import ``distributed`` (0.13 s) at every write; without a cluster it is
    skipped, and the module can be imported normally afterwards."""
    out = tmp_path / "a.nc"
    code = ("import xarray as xr\nfrom sde_com.results.io import write_dataset\n"
            f"write_dataset(xr.Dataset({{'a': ('x', [1.0])}}), {str(out)!r})\n"
            "assert 'distributed' not in sys.modules, 'loaded by the write'\nimport distributed")
    assert "distributed" in _loaded_after(code) and out.exists()


def test_help_runs():
    out = subprocess.run([sys.executable, "-m", "sde_com.cli", "--help"], capture_output=True, text=True,
                         check=True, timeout=120)
    assert "run" in out.stdout and "bench" in out.stdout


def test_public_api_is_listed_and_loads_on_first_use():
    assert set(sde_com.__all__) <= set(dir(sde_com))
    for name in sde_com.__all__:
        assert getattr(sde_com, name) is not None, name
    from sde_com import sweep
    from sde_com.resonator import Device  # the `from` form goes through the module's __getattr__ too

    assert callable(sweep) and Device().omega_m > 0
    assert sde_com.physics.linear.routh_hurwitz_stable is sde_com.routh_hurwitz_stable  # a subpackage
    with pytest.raises(AttributeError):
        sde_com.no_such_name  # noqa: B018


def test_lazy_names_match_the_static_imports():
    """``_API`` (what __getattr__ imports) and the TYPE_CHECKING imports (what mkdocstrings and type checkers
    read) name the same objects from the same modules, and together they are ``__all__``."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(sde_com))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    static = {alias.name: node.module for node in block.body for alias in node.names}
    modules = {name for name, module in static.items() if module == "sde_com"}  # `from sde_com import resonator`
    assert modules <= set(sde_com._SUBPACKAGES)
    assert {k: v for k, v in static.items() if k not in modules} == sde_com._API
    assert set(sde_com._API) | {"__version__"} | modules == set(sde_com.__all__)


def test_benchmark_startup_reports_medians_and_ratios():
    from sde_com.benchmarks.startup import benchmark_startup

    r = benchmark_startup(repeat=1)
    assert r["blas_threads"] == 1 and r["baseline_s"] > 0
    assert r["import_ratio"] == pytest.approx(r["import_s"] / r["baseline_s"])
    assert r["help_ratio"] == pytest.approx(r["help_s"] / r["baseline_s"])
    json.dumps(r)  # plain data, for the bench command to print or save


def test_threaded_chain_equals_serial_bitwise():
    """The steady-state chain runs blocks of points in threads (not numba's parfors, which cost compile
    time): the results do not depend on the blocks or the thread count."""
    import numba
    import numpy as np

    from sde_com.physics.resonator.chain import BLOCK_POINTS, run_chain
    from sde_com.physics.resonator.device import Device
    from sde_com.physics.resonator.system import chain_inputs

    n = 2 * BLOCK_POINTS + 7  # three blocks, the last one short
    d = Device().as_dict()
    full = {k: np.full(n, v, dtype=float) for k, v in d.items()}
    full.update(detuning=np.linspace(-1.0, 3.0, n), direction=np.full(n, "ccw"), power=np.full(n, 0.1))
    params = chain_inputs(full)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = run_chain(params)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        threaded = run_chain(params)
    finally:
        numba.set_num_threads(previous)
    assert (serial["n_branches"] > 1).any()  # the bistable region, where points cost more, is in the sweep
    for key, value in serial.items():
        assert value.tobytes() == threaded[key].tobytes(), key
