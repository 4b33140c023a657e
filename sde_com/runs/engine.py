"""Running a scenario as units of work: in-process or on Dask, with progress, checkpoints and resume.

A run is split into units that carry everything they need, as its kind says (``sde_com.runs.kinds``): blocks
of sweep points, blocks of trajectories at one operating point, or the whole run. Each finished unit is
checkpointed atomically in ``OUT.parts/`` beside the output; the results are merged in unit order, so the
file is bitwise the same whatever the executor, the number of workers, the completion order, or how often
the run was interrupted and resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sde_com._version import __version__
from sde_com.errors import NumericalError, UnitFailed, UserError
from sde_com.results.io import atomic_output, check_writable, write_dataset
from sde_com.runs.kinds import SWEEP_POINTS_PER_UNIT, SweepUnit, WholeRun  # noqa: F401 (re-exported)
from sde_com.runs.scenario import Scenario


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C); finished units are checkpointed and ``--resume`` continues."""


def plan(scenario: Scenario) -> list:
    """Every unit of the scenario, in merge order (its kind's ``plan``)."""
    return scenario.kind.plan(scenario)


def run_one(scenario: Scenario, unit, model=None) -> dict:
    """Compute one unit (this is what a worker runs); ``model``: what its kind prepared for it."""
    return scenario.kind.run_unit(scenario, unit, model)


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
                    raise UserError(f"--resume refused: the checkpoint in {str(self.folder)!r} belongs to a different "
                                     "scenario (or package version); rerun without --resume and with --force")
            elif force:
                shutil.rmtree(self.folder)
            else:
                raise FileExistsError(f"an interrupted run left {str(self.folder)!r}; continue it with --resume, "
                                      "or start again with --force")
        elif resume:
            raise UserError(f"--resume: no checkpoint {str(self.folder)!r} to resume from")
        self.folder.mkdir(exist_ok=True)
        if not path.exists():
            _atomic_write_bytes(path, json.dumps(manifest).encode())

    def _file(self, index: int) -> Path:
        return self.folder / f"unit-{index:07d}.npz"

    def done(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("unit-*.npz")}

    def save(self, index: int, result: dict) -> None:
        with atomic_output(self._file(index), force=True, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: v for k, v in result.items() if k != "dataset"})

    def load(self, index: int) -> dict:
        with np.load(self._file(index)) as z:
            return {k: z[k] for k in z.files}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path, force=True) as tmp:
        tmp.write_bytes(data)


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
        raise UserError("running on Dask needs the dask extra: from a clone of sde_com, "
                         "pip install '.[dask]'") from exc
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from exc
    # one numba thread per worker process: the processes are the parallelism
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env={"NUMBA_NUM_THREADS": "1"})
    client = Client(cluster)
    client.run(_warm_up)  # load the compiled kernels in every worker once, not inside the first units
    return client


def _warm_up() -> None:
    from sde_com.kernels import ensemble as kernels
    from sde_com.random import INITIAL_STREAM, sample_gaussian

    z = np.zeros((1, 6))
    eye = np.eye(6)
    sample_gaussian(eye, 0, 0, 1, INITIAL_STREAM)
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
    """Yield (index, result or exception) as units finish; ``models``: what each unit was prepared with."""
    if client is None:
        for i in todo:
            try:
                yield i, run_one(scenario, units[i], models[i])
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # reported with the unit's parameters, the rest go on
                yield i, exc
        return
    from dask.distributed import as_completed

    futures = {client.submit(run_one, scenario, units[i], models[i], pure=False, retries=3): i for i in todo}
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
    kind = scenario.kind
    units = kind.plan(scenario)
    models = kind.models(scenario, units)
    ckpt = Checkpoint(output, scenario, len(units), resume, force)
    done = ckpt.done()
    todo = [i for i in range(len(units)) if i not in done]
    progress = Progress(len(units), quiet, already=len(done))
    client = connect(workers, scheduler) if (workers or scheduler) else None
    stop = _StopRequest()
    try:
        failures = _run_units(scenario, units, todo, client, models, (ckpt, progress, stop), output, history)
    except KeyboardInterrupt:
        progress.close("interrupted")
        raise RunInterrupted(f"{progress.done} of {len(units)} units are saved in {str(ckpt.folder)!r}; "
                             "continue with the same command and --resume") from None
    finally:
        stop.restore()
        _close(client)
    if failures is None:  # written whole by its one unit
        return
    if failures:
        progress.close("failed")
        raise _failure(scenario, units, failures, ckpt)
    kind.write(scenario, units, ckpt, output, history)
    ckpt.remove()
    progress.close("done")


def _run_units(scenario, units, todo, client, models, tracking, output, history) -> dict | None:
    """Run the units still to do, checkpointing each result; → {index: exception} of the units that raised,
    or None when a whole-run unit wrote the output itself."""
    ckpt, progress, stop = tracking
    failures = {}
    for i, result in _completed(scenario, units, todo, client, models):
        if isinstance(result, Exception):
            failures[i] = result
            continue
        if "dataset" in result:  # a whole-run unit (dt study, single point): nothing to merge
            write_dataset(result["dataset"], output, force=True, history=history)
            ckpt.remove()
            progress.step()
            progress.close("done")
            return None
        ckpt.save(i, result)
        progress.step()
        stop.check()
    return failures


def _close(client) -> None:
    if client is not None:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def _failure(scenario: Scenario, units: list, failures: dict, ckpt: Checkpoint) -> Exception:
    """The error for units that raised, each named with its parameters: a NumericalError (or UserError) when
    every one is, else UnitFailed."""
    message = "; ".join(f"unit {i} ({scenario.kind.describe(scenario, units[i])}): {type(exc).__name__}: {exc}"
                        for i, exc in failures.items())
    if ckpt.done():
        message += f". The other units are saved in {str(ckpt.folder)!r}: --resume reruns only the failed ones"
    else:  # nothing finished: leave nothing behind that would block the corrected run
        ckpt.remove()
    for cls in (NumericalError, UserError):
        if all(isinstance(exc, cls) for exc in failures.values()):
            return cls(message)
    return UnitFailed(message)


def run_scenario_to_file(scenario: Scenario, path, force: bool = False, **options) -> None:
    """Run a scenario and write its netCDF file (see ``execute``: in-process by default, checkpointed; recorded
    traces are streamed to the file unit by unit, so a trace dataset larger than memory can be written)."""
    execute(scenario, path, force=force, quiet=options.pop("quiet", True), **options)
