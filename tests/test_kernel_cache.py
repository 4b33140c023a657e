"""The kernel cache lives outside the package (a reinstall cannot shadow sde_com with a stray __pycache__),
a first run says it is compiling, and the CLI shows and clears the cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sde_com
from sde_com import kernel_cache
from sde_com.cli import main

PACKAGE = Path(sde_com.__file__).resolve().parent


def test_cache_dir_precedence(monkeypatch, tmp_path):
    for var in ("SDE_COM_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert kernel_cache.configured_dir() == tmp_path / "home" / ".cache" / "sde_com" / "numba"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kernel_cache.configured_dir() == tmp_path / "xdg" / "sde_com" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert kernel_cache.configured_dir() == tmp_path / "numba"
    monkeypatch.setenv("SDE_COM_CACHE_DIR", str(tmp_path / "ours"))
    assert kernel_cache.configured_dir() == tmp_path / "ours"


def test_kernels_cache_outside_the_package_and_numba_keeps_its_setting():
    cache = kernel_cache.cache_dir().resolve()
    assert PACKAGE not in cache.parents and cache != PACKAGE
    from sde_com.kernels.ensemble import _run_blocks6 as run_ensemble  # the compiled 6-D kernel
    from sde_com.physics.resonator.chain import steady_chain

    for kernel in (steady_chain, run_ensemble):  # where Numba writes and looks for them
        assert Path(kernel._cache._cache_path).resolve().parent == cache
    # the process-wide setting is the user's again once sde_com's kernels are defined
    check = ("import numba; before = numba.config.CACHE_DIR; import sde_com; "
             "assert numba.config.CACHE_DIR == before, (before, numba.config.CACHE_DIR)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=120)


def test_only_sde_com_functions_use_its_cache(tmp_path):
    """Another project's cache=True function, defined after `import sde_com`, caches where Numba would put it
    without sde_com (here: beside its source), and sde_com's kernels use sde_com's folder whatever the order
    of the imports."""
    (tmp_path / "other.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    check = ("import sde_com, other, numba; from pathlib import Path; from sde_com import kernel_cache; "
             "from sde_com.physics.gaussian import logneg_from_blocks as k; "
             "theirs = Path(other.f._cache._cache_path).resolve(); ours = kernel_cache.cache_dir().resolve(); "
             "assert ours not in theirs.parents, (theirs, ours); "
             "assert Path(k._cache._cache_path).resolve().parent == ours; "
             "assert numba.config.CACHE_DIR == ''")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(SDE_COM_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, check=True, timeout=120)


SCENARIO = """title = "tiny"
[model]
detuning = [0.5, 1.0]
"""


def test_first_run_says_it_compiles_and_caches_outside_the_package(tmp_path):
    """A cold cache: the run says it is compiling, and fills the configured folder; a second run is silent."""
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    env = {**os.environ, "SDE_COM_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    run = [sys.executable, "-m", "sde_com.cli", "run", "tiny.toml", "-o", "tiny.nc", "--force"]
    first = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "compiling the numba kernels" in first.stderr and "first run only" in first.stderr
    assert list((tmp_path / "cache").rglob("chain.*.nbi"))
    second = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "compiling" not in second.stderr


def test_cache_command_clears_only_sde_com_kernels(monkeypatch, tmp_path, capsys):
    from sde_com.kernels.ensemble import _run_blocks6
    from sde_com.physics.resonator.chain import steady_chain

    cache = tmp_path / "cache"
    monkeypatch.setattr(kernel_cache, "_active", cache)
    # the folders Numba really uses for two kernels of this installation, and one of the old flat layout
    ours = [cache / Path(k._cache._cache_path).name for k in (steady_chain, _run_blocks6)]
    ours.append(cache / "sde_com_0123abcd")
    for folder in ours:
        folder.mkdir(parents=True)
        (folder / "x.nbi").write_bytes(b"")
    foreign = cache / "someone_else_4567" / "kernel.nbi"  # another project sharing NUMBA_CACHE_DIR
    foreign.parent.mkdir()
    foreign.write_bytes(b"")
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.strip() == str(cache)
    assert main(["cache", "--clear"]) == 0
    assert not any(folder.exists() for folder in ours) and foreign.exists() and cache.exists()
    assert "removed 3 folder" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0  # argparse's version action exits; main returns its status
    assert capsys.readouterr().out.strip() == f"sde-com {sde_com.__version__}"


def _worker_cache_dir() -> str:
    from sde_com import kernel_cache
    from sde_com.kernels.ensemble import _run_blocks6 as run_ensemble  # the compiled 6-D kernel

    return str(Path(run_ensemble._cache._cache_path).parent), str(kernel_cache.cache_dir())


def test_dask_workers_use_the_same_cache():
    pytest.importorskip("dask.distributed")
    from sde_com.runs.engine import connect

    client = connect(workers=1, scheduler=None)
    try:
        ours = str(kernel_cache.cache_dir())
        assert set(client.run(_worker_cache_dir).values()) == {(ours, ours)}
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def test_quiet_silences_the_compile_notice_of_every_layer(tmp_path):
    """`--quiet` on a cold cache: no notice, though the Python API under the run would give one (a system
    whose steady state is run whole, through ``sweep``); the notice's variable does not outlive the run."""
    (tmp_path / "pair.toml").write_text('[system]\nmodes = ["a", "b"]\ndrift = [[-0.5, 0.0, 0.0, 0.2], '
                                        '[0.0, -0.5, -0.2, 0.0], [0.0, 0.2, -0.5, 0.0], [-0.2, 0.0, 0.0, -0.5]]\n'
                                        'diffusion = [[0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 0.5, 0], '
                                        '[0, 0, 0, 0.5]]\n')
    env = {**os.environ, "SDE_COM_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop(kernel_cache.QUIET_VARIABLE, None)
    run = [sys.executable, "-m", "sde_com.cli", "run", "pair.toml", "-o", "pair.nc", "--force"]
    quiet = subprocess.run([*run, "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert kernel_cache.QUIET_VARIABLE not in os.environ


def test_a_second_process_compiles_the_chains_callees_into_the_same_cache(tmp_path, monkeypatch):
    """``compile_aside`` (a first run's second core): the resonator's callees land in the cache the run reads,
    the chain itself is left to the run (`sde-com bench --only compile` measures what the run saves by it)."""
    from sde_com.results.sweep import as_system

    monkeypatch.setattr(kernel_cache, "_active", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    aside = kernel_cache.compile_aside(as_system().compile_aside)
    assert aside.wait(timeout=300) == 0
    for module in ("physics.gaussian", "physics.linear", "physics.resonator.drift"):
        assert kernel_cache.is_cached(module), module
    assert not kernel_cache.is_cached("physics.resonator.chain")  # the chain itself: the run's own
    assert kernel_cache.compile_aside(None) is None
