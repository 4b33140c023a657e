"""Running a scenario as units of work: in-process or on Dask, with progress, checkpoints and resume.

A run is split into units that carry everything they need: blocks of sweep points (``sweep.sweep_block``)
and blocks of trajectories at one operating point (``simulate.SimulationUnit``). Each finished unit is
checkpointed atomically in ``OUT.parts/`` beside the output; the results are merged in unit order, so the
file is bitwise the same whatever the executor, the number of workers, the completion order, or how often
the run was interrupted and resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sde_com._version import __version__
from sde_com.physics.resonator.device import Device
from sde_com.results.catalogue import VARIABLES, apply_catalogue
from sde_com.results.io import StreamedNetCDF, check_writable, write_dataset
from sde_com.results.sweep import parameter_grid, sweep_block, sweep_from_blocks
from sde_com.runs.scenario import Scenario, finish_dataset
from sde_com.simulation.simulate import (
    SimulationUnit,
    assemble_simulation,
    plan_units,
    point_model,
    prepare_simulation,
    run_unit,
    time_coordinate,
    trace_coordinates,
)

SWEEP_POINTS_PER_UNIT = 50_000  # ≈ 0.1–0.2 s of chain work per unit


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C); finished units are checkpointed and ``--resume`` continues."""


class UnitFailed(RuntimeError):
    """One or more units raised; the others' results are kept in the checkpoint."""


@dataclass(frozen=True, order=True)
class SweepUnit:
    """Flat sweep points [start, stop)."""

    start: int
    stop: int


def plan(scenario: Scenario) -> list:
    """Every unit of the scenario, in merge order."""
    sim = scenario.simulation
    if scenario.drive or scenario.wigner is not None or scenario.detect is not None:  # one point: one unit
        return [SweepUnit(0, 1)]
    if sim is None or scenario.dt_study:
        n = math.prod(parameter_grid(scenario.parameters)[2])
        if sim is not None:  # a dt study runs whole (one unit per dt would be the next refinement)
            skeleton = prepare_simulation(sim, scenario.parameters)
            for dt in scenario.dt_study:  # bad settings fail here, before any work
                for u in plan_units(replace(sim, dt=dt), skeleton):
                    if u.first == 0:
                        point_model(replace(sim, dt=dt), scenario.parameters, u.point, u.branch)
            return [SweepUnit(0, n)]
        return [SweepUnit(a, min(a + SWEEP_POINTS_PER_UNIT, n)) for a in range(0, n, SWEEP_POINTS_PER_UNIT)]
    return plan_units(sim, prepare_simulation(sim, scenario.parameters))


def point_models(scenario: Scenario, units: list) -> dict:
    """The prepared model of every (point, branch) the units touch, built here on the client (bad settings
    fail now, before any work) and shipped with the units, so that workers with another CPU or LAPACK
    cannot change a bit of e^{A dt}, L or the initial-state factor."""
    sim = scenario.simulation
    pairs = sorted({(u.point, u.branch) for u in units if isinstance(u, SimulationUnit)})
    return {pb: point_model(sim, scenario.parameters, *pb) for pb in pairs}


def run_one(scenario: Scenario, unit, model=None) -> dict:
    """Compute one unit (this is what a worker runs); ``model``: its point's prepared model."""
    if isinstance(unit, SweepUnit):
        if scenario.simulation is not None:  # a whole dt study or driven run in one unit
            from sde_com.runs.scenario import run_scenario

            return {"dataset": run_scenario(scenario)}
        return sweep_block(scenario.parameters, unit.start, unit.stop, _store_cov(scenario))
    return run_unit(scenario.simulation, scenario.parameters, unit, model)


def _store_cov(scenario: Scenario) -> bool:
    return scenario.variables is None or "cov" in scenario.variables


def fingerprint(scenario: Scenario) -> str:
    """What a checkpoint belongs to: the scenario text and the package version."""
    return hashlib.sha256(f"{__version__}\n{scenario.text}".encode()).hexdigest()


class Checkpoint:
    """Finished units as .npz files in a folder beside the output, each written atomically."""

    def __init__(self, output: Path, scenario: Scenario, n_units: int, resume: bool, force: bool):
        self.folder = output.with_name(output.name + ".parts")
        manifest = dict(fingerprint=fingerprint(scenario), units=n_units, scenario=scenario.name)
        path = self.folder / "manifest.json"
        if self.folder.exists():
            if resume:
                old = json.loads(path.read_text()) if path.exists() else {}
                if old.get("fingerprint") != manifest["fingerprint"] or old.get("units") != n_units:
                    raise ValueError(f"--resume refused: the checkpoint in {str(self.folder)!r} belongs to a different "
                                     "scenario (or package version); rerun without --resume and with --force")
            elif force:
                shutil.rmtree(self.folder)
            else:
                raise FileExistsError(f"an interrupted run left {str(self.folder)!r}; continue it with --resume, "
                                      "or start again with --force")
        elif resume:
            raise ValueError(f"--resume: no checkpoint {str(self.folder)!r} to resume from")
        self.folder.mkdir(exist_ok=True)
        if not path.exists():
            _atomic_write_bytes(path, json.dumps(manifest).encode())

    def _file(self, index: int) -> Path:
        return self.folder / f"unit-{index:07d}.npz"

    def done(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("unit-*.npz")}

    def save(self, index: int, result: dict) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".unit-", suffix=".npz", dir=self.folder)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: v for k, v in result.items() if k != "dataset"})
        os.replace(tmp, self._file(index))

    def load(self, index: int) -> dict:
        with np.load(self._file(index)) as z:
            return {k: z[k] for k in z.files}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Progress:
    """done/total units, rate and time left on stderr when it is a terminal; a summary line at the end."""

    def __init__(self, total: int, quiet: bool, already: int = 0):
        self.total, self.done, self.start_done = total, already, already
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self._show()

    def step(self) -> None:
        self.done += 1
        self._show()

    def _show(self) -> None:
        if not self.live:
            return
        elapsed = time.monotonic() - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        eta = f"{left:.0f} s left" if math.isfinite(left) else "time left unknown"
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} units, "
                         f"{rate:.2f} units/s, {eta}   ")
        sys.stderr.flush()

    def close(self, what: str) -> None:
        if self.live:
            sys.stderr.write("\n")
        if not self.quiet:
            print(f"{what}: {self.done}/{self.total} units in {time.monotonic() - self.t0:.1f} s", file=sys.stderr)


def connect(workers: int | None, scheduler: str | None):
    """A dask.distributed Client: a LocalCluster of ``workers`` processes, or the cluster at ``scheduler``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ValueError("running on Dask needs the dask extra: from a clone of sde_com, "
                         "pip install '.[dask]'") from exc
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from exc
    # one numba thread per worker process: the processes are the parallelism
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env={"NUMBA_NUM_THREADS": "1"})
    client = Client(cluster)
    client.run(_warm_up)  # load the compiled kernels in every worker once, not inside the first units
    return client


def _warm_up() -> None:
    from sde_com.kernels import ensemble as kernels

    z = np.zeros((1, 6))
    eye = np.eye(6)
    kernels.sample_gaussian(eye, 0, 0, 1, kernels.INITIAL_STREAM)
    kernels.run_ensemble(eye, eye, z, 0, 0, 1, 0, np.zeros(0, dtype=np.int64), 0, 1)
    kernels.run_batch_means(eye, eye, z, 0, 0, 2, 0, 1)


class _StopRequest:
    """Ctrl-C sets a flag instead of raising inside a kernel; the run stops after the unit in progress
    (a second Ctrl-C stops at once)."""

    def __init__(self):
        self.requested = False
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def _completed(scenario, units, todo, client, models):
    """Yield (index, result or exception) as units finish."""
    def model(unit):
        return models.get((unit.point, unit.branch)) if isinstance(unit, SimulationUnit) else None

    if client is None:
        for i in todo:
            try:
                yield i, run_one(scenario, units[i], model(units[i]))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # reported with the unit's parameters, the rest go on
                yield i, exc
        return
    from dask.distributed import as_completed

    futures = {client.submit(run_one, scenario, units[i], model(units[i]), pure=False, retries=3): i
               for i in todo}
    for fut in as_completed(futures):
        i = futures[fut]
        try:
            yield i, fut.result()
        except Exception as exc:
            yield i, exc


def execute(scenario: Scenario, output, *, force: bool = False, resume: bool = False, workers: int | None = None,
            scheduler: str | None = None, quiet: bool = False, history: str | None = None):
    """Run ``scenario`` to ``output`` unit by unit with checkpoints; in-process unless workers/scheduler.

    ``history``: the command recorded in the file's ``history`` attribute (default: the API call)."""
    output = Path(output)
    check_writable(output, force or resume)
    units = plan(scenario)
    models = point_models(scenario, units) if scenario.simulation is not None and not (
        scenario.dt_study or scenario.drive or scenario.wigner is not None or scenario.detect is not None) else {}
    ckpt = Checkpoint(output, scenario, len(units), resume, force)
    done = ckpt.done()
    todo = [i for i in range(len(units)) if i not in done]
    progress = Progress(len(units), quiet, already=len(done))
    client = connect(workers, scheduler) if (workers or scheduler) else None
    failures = []
    stop = _StopRequest()
    try:
        for i, result in _completed(scenario, units, todo, client, models):
            if isinstance(result, Exception):
                failures.append(f"unit {i} ({_describe(scenario, units[i])}): {type(result).__name__}: {result}")
                continue
            if "dataset" in result:  # a whole-run unit (dt study): nothing to merge
                write_dataset(result["dataset"], output, force=True, history=history)
                ckpt.remove()
                progress.step()
                progress.close("done")
                return
            ckpt.save(i, result)
            progress.step()
            stop.check()
    except KeyboardInterrupt:
        progress.close("interrupted")
        raise RunInterrupted(f"{progress.done} of {len(units)} units are saved in {str(ckpt.folder)!r}; "
                             "continue with the same command and --resume") from None
    finally:
        stop.restore()
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    if failures:
        progress.close("failed")
        raise UnitFailed("; ".join(failures) + f". The other units are saved in {str(ckpt.folder)!r}")
    _merge_and_write(scenario, units, ckpt, output, history)
    ckpt.remove()
    progress.close("done")


def _describe(scenario: Scenario, unit) -> str:
    values, dims, shape, _ = parameter_grid(scenario.parameters)
    if isinstance(unit, SweepUnit):
        return f"sweep points {unit.start}..{unit.stop - 1}"
    index = np.unravel_index(unit.point, shape)
    point = {d: values[d][i].item() for d, i in zip(dims, index, strict=True)}
    return f"{point}, branch {unit.branch}, trajectories {unit.first}..{unit.first + unit.count - 1}"


class _LazyResults:
    """unit → its checkpointed result (without traces), read from disk when asked for."""

    def __init__(self, ckpt: Checkpoint, units: list):
        self.ckpt = ckpt
        self.index = {u: i for i, u in enumerate(units)}

    def keys(self):
        return self.index.keys()

    def __getitem__(self, unit) -> dict:
        r = self.ckpt.load(self.index[unit])
        r.pop("trace", None)
        r.pop("noise", None)
        return r


def _merge_and_write(scenario: Scenario, units: list, ckpt: Checkpoint, output: Path, history: str | None) -> None:
    sim = scenario.simulation
    if sim is None:
        blocks = [ckpt.load(i) for i in range(len(units))]
        revival = None if scenario.variables is None else bool({"revival", "logneg_max"} & set(scenario.variables))
        ds = sweep_from_blocks(scenario.parameters, blocks, _store_cov(scenario), revival)
        write_dataset(finish_dataset(scenario, ds), output, force=True, history=history)
        return
    keep_traces = sim.traces and (scenario.variables is None or "trace" in scenario.variables)
    skeleton = prepare_simulation(sim, scenario.parameters)
    results = _LazyResults(ckpt, units)  # one unit in memory at a time; traces are streamed below
    ds = finish_dataset(scenario, assemble_simulation(sim, scenario.parameters, skeleton, results,
                                                      traces_in_results=False))
    if not keep_traces:
        write_dataset(ds, output, force=True, history=history)
        return
    dims = [d for d in scenario.dimensions]
    shape = tuple(skeleton.sizes[d] for d in dims)
    sizes = {**{d: skeleton.sizes[d] for d in dims}, "branch": skeleton.sizes["branch"], "trajectory": sim.traces,
             "time": sim.n_steps // sim.trace_every + 1, "quadrature": 6}
    vdims = (*dims, "branch", "trajectory", "time", "quadrature")
    streams = {name: (vdims, VARIABLES[name].attrs) for name in ("trace", "noise")}
    writer = StreamedNetCDF(output, True, sizes, streams)
    try:
        for i, unit in enumerate(units):
            if not isinstance(unit, SimulationUnit) or unit.first >= sim.traces:
                continue
            r = ckpt.load(i)
            if "trace" in r:
                index = (*np.unravel_index(unit.point, shape), unit.branch,
                         slice(unit.first, unit.first + r["trace"].shape[0]))
                writer.write("trace", index, r["trace"])
                writer.write("noise", index, r["noise"])
        omega_m = float(scenario.parameters.get("omega_m", Device().omega_m))
        ds = apply_catalogue(ds.assign_coords({**trace_coordinates(sim), **time_coordinate(sim, omega_m)}))
    except BaseException:
        writer.abort()
        raise
    writer.finish(ds, history)


def run_scenario_to_file(scenario: Scenario, path, force: bool = False, **options) -> None:
    """Run a scenario and write its netCDF file (see ``execute``: in-process by default, checkpointed; recorded
    traces are streamed to the file unit by unit, so a trace dataset larger than memory can be written)."""
    execute(scenario, path, force=force, quiet=options.pop("quiet", True), **options)
