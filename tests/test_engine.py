"""Units of work: in-process vs Dask vs chunk sizes, interruption and resume, faults."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    LONG,
    assert_identical_output,
    killed_then_resumed,
    run_cli,
    start_cli,
    wait_for_units,
    write_scenario,
)

from sde_com.cli import main
from sde_com.results.io import read_dataset
from sde_com.runs.engine import execute, saved_units
from sde_com.runs.scenario import parse_scenario

SIM = """
[model]
detuning = [0.7, 0.8]
[simulate]
method = "exact"
dt = 0.5
duration = 200.0
trajectories = 40
chunk = 7
traces = 9
save_every = 1.0
seed = 3
"""


def test_in_process_dask_and_chunk_sizes_give_identical_files(tmp_path):
    sc = parse_scenario(SIM)
    execute(sc, tmp_path / "a.nc", quiet=True)
    execute(replace(sc, simulation=replace(sc.simulation, chunk=40)), tmp_path / "b.nc", quiet=True)
    execute(replace(sc, simulation=replace(sc.simulation, chunk=3)), tmp_path / "c.nc", quiet=True, workers=2)
    a = read_dataset(tmp_path / "a.nc")
    assert_identical_output(a, read_dataset(tmp_path / "b.nc"))
    assert_identical_output(a, read_dataset(tmp_path / "c.nc"))
    assert a.trace.shape == (2, 1, 9, 201, 6)  # 2 points, 1 branch, 9 traces, 200/1.0 + 1 times
    assert not any(p.name.endswith(".parts") for p in tmp_path.iterdir())


def test_steady_sweep_on_dask_is_identical(tmp_path):
    text = "[model]\ndetuning = { start = -1.0, stop = 2.0, num = 61 }\nJ = [0.0, 4e7]\n"
    assert run_cli(tmp_path, text, tmp_path / "a.nc") == 0
    assert run_cli(tmp_path, text, tmp_path / "b.nc", "--workers", "2") == 0
    assert_identical_output(read_dataset(tmp_path / "a.nc"), read_dataset(tmp_path / "b.nc"))


def test_sigkill_then_resume_is_identical(tmp_path):
    ref, out, saved = killed_then_resumed(tmp_path, LONG)
    assert 3 <= saved < 24
    assert_identical_output(read_dataset(ref), read_dataset(out))


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path):
    f = write_scenario(tmp_path, LONG)
    out = tmp_path / "out.nc"
    proc = start_cli("run", str(f), "-o", str(out))
    wait_for_units(tmp_path / "out.nc.parts", 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in err and not out.exists()


def test_a_killed_worker_does_not_change_the_result(tmp_path):
    f = write_scenario(tmp_path, LONG)
    ref = tmp_path / "ref.nc"
    assert run_cli(tmp_path, LONG, ref) == 0
    out = tmp_path / "out.nc"
    proc = start_cli("run", str(f), "-o", str(out), "--quiet", "--workers", "2")
    wait_for_units(tmp_path / "out.nc.parts", 2, proc)
    workers = [pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid) or b"forkserver" in _cmdline(pid)]
    assert workers, "no worker processes found"
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert_identical_output(read_dataset(ref), read_dataset(out))


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_resume_with_a_changed_scenario_is_refused(tmp_path, capsys):
    f = write_scenario(tmp_path, LONG)
    out = tmp_path / "out.nc"
    proc = start_cli("run", str(f), "-o", str(out), "--quiet")
    wait_for_units(tmp_path / "out.nc.parts", 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    f.write_text(LONG.replace("seed = 5", "seed = 6"))
    assert main(["run", str(f), "-o", str(out), "--resume"]) == 2
    assert "different scenario" in capsys.readouterr().err
    # and a fresh start without --resume or --force is refused too: it would discard the checkpoint
    assert main(["run", str(f), "-o", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_unreachable_scheduler_fails_fast(tmp_path, capsys):
    t0 = time.monotonic()
    assert run_cli(tmp_path, SIM, tmp_path / "out.nc", "--scheduler", "tcp://127.0.0.1:9") == 2
    assert time.monotonic() - t0 < 30
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "out.nc").exists()


def test_progress_goes_to_stderr_as_a_summary_when_not_a_terminal(tmp_path):
    f = write_scenario(tmp_path, SIM)
    done = subprocess.run([sys.executable, "-m", "sde_com.cli", "run", str(f), "-o", str(tmp_path / "a.nc")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"wrote {tmp_path / 'a.nc'}"
    plan, summary = done.stderr.strip().splitlines()  # the plan before any work, the summary at the end
    assert plan.startswith("estimated: 12 units, 3.2e+04 trajectory-steps, ") and "peak memory" in plan
    assert summary == "done: 12/12 units in " + summary.split(" in ")[1].strip()
    quiet = subprocess.run([sys.executable, "-m", "sde_com.cli", "run", str(f), "-o", str(tmp_path / "b.nc"),
                            "--quiet"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


@pytest.mark.parametrize("args, fragment", [(["--workers", "0"], "--workers: must be an integer from 1"),
                                            (["--workers", "2", "--scheduler", "tcp://x:1"], "not both")])
def test_bad_execution_options(tmp_path, capsys, args, fragment):
    assert run_cli(tmp_path, SIM, tmp_path / "out.nc", *args) == 2
    assert fragment in capsys.readouterr().err


def test_existing_scheduler_gives_the_identical_file(tmp_path):
    from dask.distributed import LocalCluster

    sc = parse_scenario(SIM)
    execute(sc, tmp_path / "a.nc", quiet=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        execute(sc, tmp_path / "b.nc", quiet=True, scheduler=cluster.scheduler_address)
    assert_identical_output(read_dataset(tmp_path / "a.nc"), read_dataset(tmp_path / "b.nc"))


def test_a_unit_that_raises_is_reported_and_the_others_are_kept(tmp_path, capsys, monkeypatch):
    import sde_com.runs.kinds as kinds  # where the simulate kind runs its units

    real = kinds.run_unit

    def flaky(settings, params, unit, *model):
        if unit.point == 1 and unit.first == 7:
            raise RuntimeError("boom")
        return real(settings, params, unit, *model)

    monkeypatch.setattr(kinds, "run_unit", flaky)
    out = tmp_path / "out.nc"
    assert run_cli(tmp_path, SIM, out) == 1
    err = capsys.readouterr().err
    assert "boom" in err and "'detuning': 0.8" in err and "trajectories 7..13" in err
    assert not out.exists()
    assert saved_units(tmp_path / "out.nc.parts") == 11  # 12 units, one failed
    monkeypatch.setattr(kinds, "run_unit", real)
    assert run_cli(tmp_path, SIM, out, "--resume") == 0  # only the failed unit runs again
    ref = tmp_path / "ref.nc"
    assert run_cli(tmp_path, SIM, ref) == 0
    assert_identical_output(read_dataset(ref), read_dataset(out))


def test_missing_dask_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name in ("dask.distributed", "distributed"):  # what the engine imports (xarray probes dask itself)
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    assert run_cli(tmp_path, SIM, tmp_path / "out.nc", "--workers", "2") == 2
    assert "pip install '.[dask]'" in capsys.readouterr().err


# a bistable stretch: 3 branches above detuning ≈ 2.3 at power 0.3 W, 1 below, so blocks of 7 points have
# 1 or 3 branches and the file's (unlimited) branch axis grows while the blocks stream in
RAGGED = """
[model]
detuning = { start = -1.0, stop = 3.0, num = 41 }
power = [0.2, 0.3]
direction = ["ccw", "cw"]
[output]
variables = ["logneg", "photons", "stable", "n_branches", "cov", "sagnac_shift", "logneg_max", "revival"]
"""


def test_streamed_sweep_equals_the_in_memory_sweep(tmp_path, monkeypatch):
    import sde_com.runs.kinds as kinds
    from sde_com import sweep

    monkeypatch.setattr(kinds, "SWEEP_POINTS_PER_UNIT", 7)
    sc = parse_scenario(RAGGED)
    execute(sc, tmp_path / "a.nc", quiet=True)
    a = read_dataset(tmp_path / "a.nc")
    ref = sweep(detuning=np.linspace(-1.0, 3.0, 41), power=[0.2, 0.3], direction=["ccw", "cw"])
    assert a.sizes["branch"] == 3 and int(a.n_branches.min()) == 1  # ragged: the padding is exercised
    for name in a.data_vars:
        assert np.array_equal(a[name].values, ref[name].values, equal_nan=a[name].dtype.kind == "f"), name
    assert a.stable.dtype == bool and not a.stable.values[a.n_branches.values == 1][:, 1:].any()


class _Killed(BaseException):
    """Stands for a SIGKILL inside the run: no handler runs, nothing is saved on the way out."""


def _sweep_killed_at_unit(tmp_path, monkeypatch, k: int):
    """The RAGGED sweep in units of 20 points, its checkpoint saved after every unit, killed as unit ``k``
    starts (written to out.nc), after a reference run (ref.nc); → the scenario."""
    import sde_com.runs.kinds as kinds

    monkeypatch.setattr(kinds, "SWEEP_POINTS_PER_UNIT", 20)
    monkeypatch.setenv("SDE_COM_CHECKPOINT_SECONDS", "0")
    sc = parse_scenario(RAGGED)
    execute(sc, tmp_path / "ref.nc", quiet=True)
    real, calls = kinds.sweep_block, []

    def dies_at_unit_k(*args, **kw):
        if args[0] is not sc.parameters:  # the plan's check of the grid's corners, not a unit
            return real(*args, **kw)
        calls.append(1)
        if len(calls) == k:
            raise _Killed
        return real(*args, **kw)

    monkeypatch.setattr(kinds, "sweep_block", dies_at_unit_k)
    with pytest.raises(_Killed):
        execute(sc, tmp_path / "out.nc", quiet=True)
    monkeypatch.setattr(kinds, "sweep_block", real)
    return sc


def test_a_sweep_killed_mid_run_resumes_to_the_same_file(tmp_path, monkeypatch):
    sc = _sweep_killed_at_unit(tmp_path, monkeypatch, 4)
    assert saved_units(tmp_path / "out.nc.parts") == 3 and not (tmp_path / "out.nc").exists()
    execute(sc, tmp_path / "out.nc", quiet=True, resume=True)
    assert_identical_output(read_dataset(tmp_path / "ref.nc"), read_dataset(tmp_path / "out.nc"))
    assert not (tmp_path / "out.nc.parts").exists()


def test_a_short_run_saves_no_checkpoint(tmp_path, monkeypatch):
    from sde_com.runs import engine

    saves = []
    monkeypatch.setattr(engine.Checkpoint, "save", lambda self, merger: saves.append(1))
    execute(parse_scenario(RAGGED), tmp_path / "a.nc", quiet=True)
    execute(parse_scenario(SIM), tmp_path / "b.nc", quiet=True)
    assert saves == []  # the default interval is 30 s: checkpoints cost nothing in a short in-process run


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_bad_checkpoint_interval_is_a_user_error(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv("SDE_COM_CHECKPOINT_SECONDS", value)
    assert run_cli(tmp_path, RAGGED, tmp_path / "out.nc") == 2
    err = capsys.readouterr().err
    assert "SDE_COM_CHECKPOINT_SECONDS" in err and repr(value) in err
    assert not (tmp_path / "out.nc").exists()


def test_the_plan_says_when_a_local_cluster_cannot_pay():
    from sde_com.runs.engine import cluster_note

    assert "1 unit of work" in cluster_note(1, 2)
    cores = os.cpu_count()
    assert f"{cores} cores" in cluster_note(10, cores) and "start-up" in cluster_note(10, cores)
    assert cluster_note(10, cores + 1) is None


@pytest.mark.parametrize("text", [
    "[model]\ndetuning = 0.75\n",
    "[model]\nOmega = [0.0, 8e3]\n",
    "[model]\ndetuning = [0.5, 1.0, 1.5]\ndirection = [\"cw\", \"ccw\"]\nJ = [0.0, 4e7]\n",
    "[model]\ndetuning = [0.5, 1.0]\n[output]\nvariables = [\"cov\", \"revival\"]\n",
    "[model]\npower = [0.2, 0.3]\ndetuning = [2.5, 2.9]\n[output]\nvariables = [\"stable\", \"logneg_max\"]\n",
])
def test_the_streamed_file_equals_the_run_in_memory(tmp_path, text):
    from sde_com.runs.scenario import run_scenario

    sc = parse_scenario(text)
    execute(sc, tmp_path / "a.nc", quiet=True)
    streamed, memory = read_dataset(tmp_path / "a.nc"), run_scenario(sc)
    assert set(streamed.variables) == set(memory.variables)
    for name in memory.variables:
        a, b = streamed[name].values, memory[name].values
        assert streamed[name].dims == memory[name].dims, name
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def test_streamed_writes_land_in_order_and_a_failed_one_is_raised(tmp_path):
    """``StreamedNetCDF.write`` writes in a background thread: ``sync`` waits for every write, in the order
    given; a write that fails there is raised by a later call."""
    import netCDF4

    from sde_com.results.io import StreamedNetCDF

    f = StreamedNetCDF(tmp_path / "a.nc", {"x": 4}, {"v": (("x",), "f8", {}, np.nan)})
    for k in range(8):
        f.write("v", slice(k % 4, k % 4 + 1), np.array([float(k)]))
    f.sync()
    with netCDF4.Dataset(tmp_path / "a.nc") as nc:
        assert nc["v"][:].tolist() == [4.0, 5.0, 6.0, 7.0]
    f.write("v", slice(0, 2), np.ones(3))  # the wrong shape: fails in the writer
    with pytest.raises((ValueError, IndexError)):
        for _ in range(3):
            f.write("v", slice(0, 1), np.zeros(1))
        f.sync()
    f.abort()
    assert not (tmp_path / "a.nc").exists()


TRACED_UNSTABLE = """
[model]
detuning = [0.8, 2.5]
power = 0.3
[simulate]
method = "exact"
dt = 0.5
duration = 20.0
trajectories = 4
traces = 2
seed = 1
save_every = 1.0
"""


def test_traces_of_branches_that_do_not_run_are_nan_in_the_streamed_file(tmp_path):
    from sde_com.runs.scenario import run_scenario

    sc = parse_scenario(TRACED_UNSTABLE)
    execute(sc, tmp_path / "a.nc", quiet=True)
    streamed, memory = read_dataset(tmp_path / "a.nc"), run_scenario(sc)
    assert np.isnan(memory.trace.values).any() and not np.isnan(memory.trace.values).all()
    for name in ("trace", "noise", "cov_sim", "logneg_sim"):
        assert np.array_equal(streamed[name].values, memory[name].values, equal_nan=True), name


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_resume_whose_streamed_file_is_lost_runs_every_unit_again(tmp_path, monkeypatch, capsys, damage):
    sc = _sweep_killed_at_unit(tmp_path, monkeypatch, 3)
    data = tmp_path / "out.nc.parts" / "data.nc"
    data.unlink() if damage == "missing" else data.write_bytes(b"\x89HDF\r\n\x1a\n not a file any more")
    execute(sc, tmp_path / "out.nc", quiet=True, resume=True)
    assert_identical_output(read_dataset(tmp_path / "ref.nc"), read_dataset(tmp_path / "out.nc"))
    if damage == "garbage":
        assert "running every unit again" in capsys.readouterr().err


def test_a_whole_run_stopped_before_its_file_resumes_by_running_again(tmp_path, monkeypatch):
    from sde_com.runs.mergers import Merger

    text = (SIM.replace("dt = 0.5", "dt = [0.5, 0.25]").replace("traces = 9\n", "").replace("chunk = 7\n", "")
            .replace("save_every = 1.0\n", ""))
    sc = parse_scenario(text)
    monkeypatch.setenv("SDE_COM_CHECKPOINT_SECONDS", "0")
    real = Merger.tail

    def killed(self, scenario):
        raise _Killed

    monkeypatch.setattr(Merger, "tail", killed)
    with pytest.raises(_Killed):
        execute(sc, tmp_path / "out.nc", quiet=True)
    assert saved_units(tmp_path / "out.nc.parts") == 0  # its Dataset is not kept: nothing is claimed saved
    monkeypatch.setattr(Merger, "tail", real)
    execute(sc, tmp_path / "out.nc", quiet=True, resume=True)
    execute(sc, tmp_path / "ref.nc", quiet=True)
    assert_identical_output(read_dataset(tmp_path / "ref.nc"), read_dataset(tmp_path / "out.nc"))
