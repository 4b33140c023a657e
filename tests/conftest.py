"""Shared test helpers and fixtures.

``assert_identical_output``: the identity promise of written outputs (regeneration, resume, workers,
chunking) covers data, coordinates and every attribute except ``history``, which records when and by which
command a file was made. ``scenario_outputs``: every shipped scenario run once per session, in memory and
written to netCDF. And the helpers and constants that several test files share: ``ROOT``, ``DATA``,
``SCENARIO_FILES``, ``PNG_MAGIC``, ``PEAK``, ``write_scenario``, ``run_text``, ``run_cli``, ``assert_refused``.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"  # the committed outputs
SCENARIO_FILES = {p.stem: p for p in sorted((ROOT / "scenarios").glob("*.toml"))}
RUN_DEPENDENT_ATTRS = ("history",)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PEAK = 0.75  # Δ_c/ω_m of the paper's Fig. 2 peak (Ω = 0, J = 0)


def resonator_thermal():
    """The spinning resonator's thermal state at its default parameters (those of ``Device()``)."""
    from sde_com.physics.system import get_system

    return get_system("spinning_resonator").thermal_covariance({})


def write_scenario(folder: Path, text: str, name: str = "scenario.toml") -> Path:
    """Scenario ``text`` written to ``folder/name``; → its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run_text(text: str, name: str = "") -> xr.Dataset:
    """A scenario given as text, parsed (as file ``name``) and run in memory."""
    from sde_com.runs.scenario import parse_scenario, run_scenario

    return run_scenario(parse_scenario(text, name))


def run_cli(folder: Path, text: str, out: Path, *extra: str) -> int:
    """``sde-com run scenario.toml -o OUT --quiet [extra]`` in-process, ``text`` written to ``folder``;
    → the exit status."""
    from sde_com.cli import main

    return main(["run", str(write_scenario(folder, text)), "-o", str(out), "--quiet", *extra])


def assert_refused(folder: Path, capsys, text: str, message: str) -> str:
    """``run_cli`` of ``text`` exits 2 with one ``sde-com: error:`` line matching the regex ``message``, no
    traceback and no output file; → the error text."""
    import re

    out = folder / "refused.nc"
    assert run_cli(folder, text, out) == 2
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not out.exists()
    return err


# long enough to be interrupted part-way: 24 units of ≈ 0.1–0.3 s each (2.4e7 trajectory-steps)
LONG = """
[model]
detuning = [0.7, 0.75, 0.8]
[simulate]
method = "exact"
dt = 0.05
burn_in = 20.0
duration = 20000.0
trajectories = 64
chunk = 8
seed = 5
"""


def start_cli(*args, **kw):
    """The CLI in a subprocess that saves its checkpoint after every unit (the default waits 30 s)."""
    env = {**os.environ, "SDE_COM_CHECKPOINT_SECONDS": "0"}
    return subprocess.Popen([sys.executable, "-m", "sde_com.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def wait_for_units(parts: Path, n: int, proc, timeout=120.0):
    """Wait until the run ``proc`` (``start_cli``) has saved ``n`` units in its checkpoint folder ``parts``."""
    from sde_com.runs.engine import saved_units

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if parts.exists() and saved_units(parts) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {n} units: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for units")


def killed_then_resumed(folder: Path, text: str, units: int = 3) -> tuple[Path, Path, int]:
    """``text`` run whole to ``ref.nc``, then again to ``out.nc`` in a subprocess killed (SIGKILL) once ``units``
    units are in its checkpoint, and resumed in-process; → (ref, out, the units saved at the kill)."""
    import signal

    from sde_com.cli import main
    from sde_com.runs.engine import saved_units

    scenario = write_scenario(folder, text)
    ref, out = folder / "ref.nc", folder / "out.nc"
    assert run_cli(folder, text, ref) == 0
    proc = start_cli("run", str(scenario), "-o", str(out), "--quiet")
    wait_for_units(folder / "out.nc.parts", units, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = saved_units(folder / "out.nc.parts")
    assert not out.exists()
    assert main(["run", str(scenario), "-o", str(out), "--quiet", "--resume"]) == 0
    return ref, out, saved


def without_history(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without the attributes that differ from run to run (``history``)."""
    ds = ds.copy(deep=False)
    for name in RUN_DEPENDENT_ATTRS:
        ds.attrs.pop(name, None)
    return ds


def assert_identical_output(a: xr.Dataset, b: xr.Dataset) -> None:
    """``xr.testing.assert_identical`` on everything but ``history``."""
    xr.testing.assert_identical(without_history(a), without_history(b))


@pytest.fixture(scope="session")
def scenario_outputs(tmp_path_factory):
    """name -> (Dataset from run_scenario, path of the same written with write_dataset), for every
    scenarios/*.toml; each scenario runs once per session, on first use."""
    from sde_com.results.io import write_dataset
    from sde_com.runs.scenario import load_scenario, run_scenario

    folder = tmp_path_factory.mktemp("scenario_outputs")
    cache = {}

    class Outputs:
        names = tuple(SCENARIO_FILES)

        def __getitem__(self, name):
            if name not in cache:
                ds = run_scenario(load_scenario(SCENARIO_FILES[name]))
                cache[name] = ds, write_dataset(ds, folder / f"{name}.nc")
            return cache[name]

    return Outputs()
