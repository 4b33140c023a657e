"""Running a scenario as units of work: in-process or on Dask, with progress, checkpoints and resume.

A run is split into units that carry everything they need, as its kind says (``sde_com.runs.kinds``): blocks
of sweep points, blocks of trajectories at one operating point, or the whole run. Each finished unit's result
goes to the kind's merger (``sde_com.runs.mergers``) at once: large data stream into the output's scratch
file, estimators keep sufficient statistics folded in a fixed order, so the file is bitwise the same
whatever the executor, the number of workers, the completion order, or how often the run was interrupted and
resumed.

The checkpoint is the folder ``OUT.parts/`` beside the output: ``manifest.json`` (what it belongs to),
``data.nc`` (the streamed output so far) and ``state.npz`` (the merger's state: which units are in, the
statistics), saved atomically every ``checkpoint_seconds()`` (``SDE_COM_CHECKPOINT_SECONDS``, default 30 s)
and whenever the run stops (Ctrl-C, a failed unit). A short run in-process never saves one; a killed run
loses at most the units since the last save, which ``--resume`` runs again (their results are the same).
"""

from __future__ import annotations

import errno
import functools
import gc
import hashlib
import json
import math
import os
import queue
import shutil
import signal
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from sde_com._version import __version__
from sde_com.errors import NumericalError, RunWarning, UnitFailed, UserError
from sde_com.results.io import PARTS_SUFFIX, atomic_output, check_writable
from sde_com.runs.estimate import Estimate, check_counts, check_resources, estimate
from sde_com.runs.kinds import SWEEP_POINTS_PER_UNIT, SweepUnit, WholeRun  # noqa: F401 (re-exported)
from sde_com.runs.scenario import Scenario


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C); finished units are checkpointed and ``--resume`` continues."""


def plan(scenario: Scenario) -> list:
    """Every unit of the scenario, in merge order (its kind's ``plan``)."""
    return scenario.kind.plan(scenario)


def run_one(scenario: Scenario, unit, model=None, threads: int | None = None) -> dict:
    """Compute one unit (this is what a worker runs); ``model``: what its kind prepared for it; ``threads``:
    the Numba threads it may use (a LocalCluster's workers: 1, the processes are the parallelism).

    The threads are set per call (``numba.set_num_threads``, which holds for the calling thread), never
    through ``NUMBA_NUM_THREADS`` in a worker's environment: Numba checks that variable again at every
    compile, and a worker whose thread pool had started before its environment was set failed there
    ("Cannot set NUMBA_NUM_THREADS to a different value once the threads have been launched")."""
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return scenario.kind.run_unit(scenario, unit, model)


def may_replace(output: Path, force: bool, resume: bool) -> bool:
    """May the run replace an existing ``output``? With ``force``; with ``resume`` only when there is a
    checkpoint to finish (its run was allowed to write there: it began over no output, or with ``force``).
    A --resume with nothing to resume is a plain run, which never overwrites."""
    return force or (resume and (output.with_name(output.name + PARTS_SUFFIX) / "manifest.json").is_file())


def fingerprint(scenario: Scenario) -> str:
    """What a checkpoint belongs to: the scenario text and the package version."""
    return hashlib.sha256(f"{__version__}\n{scenario.text}".encode()).hexdigest()


CHECKPOINT_SECONDS = 30.0  # default time between checkpoint saves (SDE_COM_CHECKPOINT_SECONDS overrides)


def checkpoint_seconds() -> float:
    """Seconds between checkpoint saves: ``SDE_COM_CHECKPOINT_SECONDS`` if set (0: after every unit), else
    CHECKPOINT_SECONDS."""
    text = os.environ.get("SDE_COM_CHECKPOINT_SECONDS")
    if text is None:
        return CHECKPOINT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0:
        raise UserError(f"SDE_COM_CHECKPOINT_SECONDS must be a number of seconds >= 0, got {text!r}")
    return value


class Checkpoint:
    """A run's checkpoint folder beside the output: the manifest, the merger's streamed ``data.nc`` and its
    ``state.npz`` (module docstring)."""

    STATE = "state.npz"

    def __init__(self, output: Path, scenario: Scenario, n_units: int, resume: bool, force: bool):
        self.folder = output.with_name(output.name + PARTS_SUFFIX)
        self.interval = checkpoint_seconds()
        self.last = time.monotonic()
        manifest = dict(fingerprint=fingerprint(scenario), units=n_units, scenario=scenario.name)
        self.manifest = manifest
        path = self.folder / "manifest.json"
        self.lock: int | None = None
        if self.folder.is_symlink() or self.folder.exists() and not self.folder.is_dir():
            # never followed: --force removes the link (or file), not what it points to
            if not force:
                raise FileExistsError(f"{str(self.folder)!r} is in the way of the run's checkpoint folder (not a "
                                      "folder); remove it, or start again with --force")
            self.folder.unlink()
        elif self.folder.exists():
            self._lock()  # another run at work in it is refused before anything is touched
            try:
                self._take_over(manifest, resume, force)
            except BaseException:
                self.release()
                raise
        elif resume:
            warnings.warn(f"--resume: no checkpoint {str(self.folder)!r}; starting afresh", RunWarning, stacklevel=3)
        if not self.folder.exists():
            try:
                self.folder.mkdir()
            except FileExistsError:  # made by another run since the check above
                self.release()
                raise FileExistsError(f"another run is writing {str(output)!r} (its checkpoint folder "
                                      f"{str(self.folder)!r} appeared meanwhile)") from None
            self.release()
            self._lock()
        if not path.exists():
            _atomic_write_bytes(path, json.dumps(manifest).encode())

    def _take_over(self, manifest: dict, resume: bool, force: bool) -> None:
        """An existing checkpoint folder (locked by this run): resumed if it belongs to this scenario, removed
        with ``force``, else refused."""
        path = self.folder / "manifest.json"
        if resume:
            try:
                old = json.loads(path.read_text()) if path.exists() else {}
            except (OSError, ValueError):
                old = {}  # unreadable: it cannot be shown to belong to this scenario
            if old.get("fingerprint") != manifest["fingerprint"] or old.get("units") != manifest["units"]:
                raise UserError(f"--resume refused: the checkpoint in {str(self.folder)!r} belongs to a different "
                                "scenario (or package version); rerun without --resume and with --force")
        elif force:
            shutil.rmtree(self.folder)
        else:
            raise FileExistsError(f"an interrupted run left {str(self.folder)!r}; continue it with --resume, or "
                                  "start again with --force")

    LOCK = "lock"

    def _lock(self) -> None:
        """Hold an exclusive ``flock`` on the folder's lock file while the run lives: a second run of the same
        output is refused, and the lock dies with its process (a SIGKILLed run never blocks --resume)."""
        import fcntl

        fd = os.open(self.folder / self.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise FileExistsError(f"another run{f' (process {holder})' if holder else ''} is writing this output: "
                                  f"its checkpoint folder {str(self.folder)!r} is locked; wait for it or stop "
                                  "it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.lock = fd

    def release(self) -> None:
        """Let go of the lock (the process's exit does it too)."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    def load(self) -> dict | None:
        """The saved merger state, or None (nothing saved yet: the run starts from its first unit). A state
        whose SHA-256 differs from the manifest's, or that cannot be read, is dropped with a warning: its units
        run again."""
        path = self.folder / self.STATE
        if not path.exists():
            return None
        try:
            recorded = json.loads((self.folder / "manifest.json").read_text()).get("state_sha256")
            if recorded is not None and _sha256(path) != recorded:
                raise ValueError("its SHA-256 differs from the manifest's: truncated or altered")
            with np.load(path) as z:  # an npz is a zip: its CRC-32 and structure are checked here too
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"the checkpoint's saved state {str(path)!r} is unreadable ({exc}); its units run again",
                          RunWarning, stacklevel=2)
            self.forget()
            return None

    def save(self, merger) -> None:
        """Sync the merger's streamed data, save its state atomically, then record the state's SHA-256 in the
        manifest (a kill in between leaves a mismatch: the state is dropped on resume, never misread)."""
        merger.sync()
        with atomic_output(self.folder / self.STATE, force=True, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **merger.state())
        self.manifest["state_sha256"] = _sha256(self.folder / self.STATE)
        _atomic_write_bytes(self.folder / "manifest.json", json.dumps(self.manifest).encode())
        self.last = time.monotonic()

    def save_if_due(self, merger) -> None:
        if time.monotonic() - self.last >= self.interval:
            self.save(merger)

    def forget(self) -> None:
        """Drop the saved state (its streamed data are gone): a resumed run starts from its first unit."""
        (self.folder / self.STATE).unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path, force=True) as tmp:
        tmp.write_bytes(data)


def saved_units(folder: str | Path) -> int:
    """How many units a checkpoint folder's saved state holds (0 when none is saved)."""
    path = Path(folder) / Checkpoint.STATE
    if not path.exists():
        return 0
    with np.load(path) as z:
        return int(z["done"].sum())


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


def connect(workers: int | None, scheduler: str | None, warm_up=None):
    """A dask.distributed Client: a LocalCluster of ``workers`` processes, or the cluster at ``scheduler``.

    ``warm_up``: a callable that runs the job's kernels on a tiny input (``RunKind.warm_up``). It runs here
    first, so that an empty kernel cache is filled once, by this process, and then in every worker, which
    loads the compiled kernels from the cache before its first unit instead of compiling them again."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise UserError("running on Dask needs the dask extra: from a clone of sde_com, "
                         "pip install '.[dask]'") from exc
    if warm_up is not None:
        warm_up()
    if scheduler is not None:
        reason = None
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address
            reason = str(exc)
        if reason is not None:  # (outside the except: the exception's frames hold the half-made Client)
            # that Client made itself dask's scheduler (dask.config) until it is collected; later writes in
            # this process would ask it for a lock
            gc.collect()
            raise UserError(f"cannot reach the Dask scheduler at {scheduler!r}: {reason}")
    else:
        # one worker thread per process (its units use one Numba thread: run_one)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    if warm_up is not None:
        client.run(warm_up)
    return client


class _StopRequest:
    """Ctrl-C sets a flag instead of raising inside a kernel; the run stops after the unit in progress
    (a second Ctrl-C stops at once: in-process units run on ``_UnitThread``, so the main thread takes it
    even while a long kernel runs)."""

    def __init__(self, quiet: bool = False):
        self.requested = False
        self.quiet = quiet
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if not self.quiet:
            print("\nsde-com: stopping after the unit in progress; Ctrl-C again stops now (--resume redoes that "
                  "unit)", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


class _Todo:
    """The indices of the units not done yet, in order, without a list of them (a run may have millions)."""

    def __init__(self, done: np.ndarray):
        self.done = done.copy()

    def __len__(self) -> int:
        return int(self.done.size - np.count_nonzero(self.done))

    def __iter__(self):
        return (i for i in range(self.done.size) if not self.done[i])


class _UnitThread:
    """Runs a run's in-process units on a daemon thread, one at a time, while the main thread waits in short,
    interruptible waits: a unit can be one long kernel (a single trajectory of 1e12 steps), and a signal
    handler runs only in the main thread between bytecodes, so a kernel on the main thread would hold off
    Ctrl-C until it returned; the parallel kernels release the GIL (``nogil``). One thread for the whole run
    (OpenMP keeps a team of threads per calling thread); abandoned after a Ctrl-C, it dies with the process.
    ``_in_process`` keeps one unit queued ahead, so that the next unit runs while the main thread merges the
    one before (its statistics, checkpoint, spilled groups and traces): measured 1.13 s → 0.95 s on the noise
    traces benchmark, for one more unit's samples in memory (units that record traces are sized for it)."""

    def __init__(self):
        import numba

        self.threads = numba.get_num_threads()  # per thread in Numba: the caller's setting holds for its units
        self.jobs = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="sde-com units", daemon=True).start()

    def _serve(self) -> None:
        import numba

        numba.set_num_threads(self.threads)
        while (job := self.jobs.get()) is not None:
            call, box, done = job
            try:
                box["result"] = call()
            except BaseException as exc:  # handed to the main thread, with its traceback
                box["error"] = exc
            done.set()

    def submit(self, call) -> tuple[dict, threading.Event]:
        """Queue ``call()`` on the thread; ``result`` waits for it."""
        box, done = {}, threading.Event()
        self.jobs.put((call, box, done))
        return box, done

    @staticmethod
    def result(job: tuple[dict, threading.Event]):
        """The return value of a submitted call, or its exception raised here."""
        box, done = job
        while not done.wait(0.5):  # a Ctrl-C's KeyboardInterrupt is raised here
            pass
        if "error" in box:
            raise box.pop("error")
        return box.pop("result")

    def close(self) -> None:
        self.jobs.put(None)


DASK_WINDOW_PER_WORKER = 4  # units in flight per Dask worker: enough to keep it busy, not the whole run


def _in_process(scenario, units, todo, models):
    """``_completed`` in this process: the units in order on a ``_UnitThread``, one at a time, the next one
    queued before a result is handed over (it runs while the caller merges)."""
    worker = _UnitThread()
    waiting = iter(todo)

    def submit():
        i = next(waiting, None)
        return None if i is None else (i, worker.submit(functools.partial(run_one, scenario, units[i], models[i])))

    try:
        ahead = submit()
        while ahead is not None:
            i, job = ahead
            try:
                result = worker.result(job)
            except Exception as exc:  # reported with the unit's parameters, the rest go on
                result = exc
            ahead = submit()
            yield i, result
    finally:
        worker.close()


def _completed(scenario, units, todo, client, models):
    """Yield (index, result or exception) as units finish; ``models``: what each unit was prepared with."""
    if client is None:
        yield from _in_process(scenario, units, todo, models)
        return
    from dask.distributed import LocalCluster, as_completed

    threads = 1 if isinstance(getattr(client, "cluster", None), LocalCluster) else None
    waiting = iter(todo)
    futures: dict = {}

    def submit() -> None:
        i = next(waiting, None)
        if i is not None:
            fut = client.submit(run_one, scenario, units[i], models[i], threads, pure=False, retries=3)
            futures[fut] = i
            finished.add(fut)

    finished = as_completed()
    window = DASK_WINDOW_PER_WORKER * max(1, len(client.scheduler_info().get("workers", {})))
    for _ in range(window):
        submit()
    for fut in finished:
        i = futures.pop(fut)
        submit()  # keep the window full: the scheduler never holds the whole run
        try:
            yield i, fut.result()
        except Exception as exc:
            yield i, exc


def execute(scenario: Scenario, output, *, force: bool = False, resume: bool = False, workers: int | None = None,
            scheduler: str | None = None, quiet: bool = False, history: str | None = None):
    """Run ``scenario`` to ``output`` unit by unit with checkpoints; in-process unless workers/scheduler.

    ``history``: the command recorded in the file's ``history`` attribute (default: the API call)."""
    output = Path(output)
    check_writable(output, may_replace(output, force, resume))
    kind = scenario.kind
    units, estimated = _planned(scenario, output)
    if not quiet:
        print(estimated.line(), file=sys.stderr)
    models = kind.models(scenario, units)
    ckpt = Checkpoint(output, scenario, len(units), resume, force)
    try:
        _execute(scenario, output, history, ckpt, units, models, (resume, workers, scheduler, quiet))
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        ckpt.remove()  # a half-written checkpoint on a full disk is worth less than the space it holds
        raise UserError(f"cannot write {str(output)!r} (or its checkpoint folder): {exc.strerror}; nothing of this "
                        "run is left behind") from exc
    finally:
        ckpt.release()


# the disk cannot take what the run writes: a user's problem (exit 2), not a bug
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _planned(scenario: Scenario, output: Path | None):
    """(units, Estimate) of a run, refused (UserError) when its counts overflow or this machine cannot hold
    it (``runs.estimate``); nothing is created."""
    check_counts(scenario)
    units = scenario.kind.plan(scenario)
    estimated = estimate(scenario, units)
    if output is not None:
        check_resources(estimated, output)
    return units, estimated


def dry_run(scenario: Scenario, output=None) -> Estimate:
    """Everything ``execute`` checks before its first unit (settings at every point included), and the
    estimate it would print; runs nothing and creates nothing (``sde-com run --dry-run``)."""
    if output is not None:
        check_writable(Path(output), force=True)
    units, estimated = _planned(scenario, None if output is None else Path(output))
    scenario.kind.models(scenario, units)
    return estimated


def _execute(scenario, output, history, ckpt, units, models, options) -> None:
    """``execute`` once its checkpoint folder is held."""
    resume, workers, scheduler, quiet = options
    kind = scenario.kind
    try:
        merger = kind.merger(scenario, units, models, ckpt.folder, ckpt.load())
    except BaseException:
        if not resume:  # nothing of this run is in it: leave nothing behind that would block the next
            ckpt.remove()
        raise
    todo = _Todo(merger.done)
    progress = Progress(len(units), quiet, already=len(units) - len(todo))
    if workers and not quiet:
        note = cluster_note(len(todo), workers)
        if note:
            print(f"note: {note}", file=sys.stderr)
    try:
        client = connect(workers, scheduler, kind.warm_up(scenario, units, models)) if (workers or scheduler) else None
    except BaseException:
        _abandon(ckpt, merger)
        raise
    stop = _StopRequest(quiet)
    try:
        failures = _run_units(scenario, units, todo, client, models, (ckpt, merger, progress, stop))
    except KeyboardInterrupt as exc:
        stop.restore()
        if isinstance(exc, _MergeInterrupted):  # the merger may be half-way: keep the last saved state
            merger.close()
        else:
            _stop(ckpt, merger)
        progress.close("interrupted")
        if not merger.done.any():  # nothing to keep: leave nothing behind that would block the next run
            ckpt.remove()
            raise RunInterrupted(f"no unit of {len(units)} had finished, so nothing is saved; run the same "
                                 "command again to start over") from None
        raise RunInterrupted(f"{saved_units(ckpt.folder)} of {len(units)} units are saved in {str(ckpt.folder)!r}; "
                             "continue with the same command and --resume") from None
    except BaseException:
        merger.close()
        stop.restore()
        raise
    finally:
        _close(client)
    if failures:
        stop.restore()
        _stop(ckpt, merger)
        progress.close("failed")
        raise _failure(scenario, units, failures, ckpt, merger)
    _finish(scenario, output, history, ckpt, merger, stop)
    ckpt.remove()
    progress.close("done")


def _finish(scenario, output, history, ckpt, merger, stop) -> None:
    """Write the output. A first Ctrl-C now only sets the flag (the output is finished all the same). What
    is computed before the file is touched may fail and leave the checkpoint as it was; once the streamed file
    is being appended to, the saved state no longer describes it, so it is dropped first."""
    try:
        try:
            tail = merger.tail(scenario)
        except BaseException:
            _stop(ckpt, merger)
            raise
        ckpt.forget()
        try:
            merger.commit(tail, output, history)
        except BaseException:  # the streamed file may be half-appended: a resumed run starts again
            merger.abort()
            raise
    finally:
        stop.restore()


class _MergeInterrupted(KeyboardInterrupt):
    """A second Ctrl-C while a result was being merged: the merger's state may be half-way."""


def _abandon(ckpt: Checkpoint, merger) -> None:
    """A run that failed before its units: close the merger; remove the checkpoint unless units are saved."""
    merger.close()
    if not merger.done.any():
        ckpt.remove()


LOCAL_CLUSTER_START_SECONDS = 2.0  # LocalCluster(2) start-up and shut-down, warm kernels (docs/performance.md)


def cluster_note(n_units: int, workers: int) -> str | None:
    """Why a LocalCluster of ``workers`` cannot pay for itself on this run, or None: a run of one unit runs
    on one worker; and the in-process run already uses every core of this machine (Numba threads), so the
    cluster's processes share the same cores and only add its start-up and shut-down (docs/performance.md).
    The cluster is started all the same: an explicit --workers is honoured."""
    if n_units <= 1:
        return (f"this run is {n_units} unit of work: a cluster runs it on one worker and adds its start-up and "
                f"shut-down (about {LOCAL_CLUSTER_START_SECONDS:.0f} s) to the in-process time")
    cores = os.cpu_count() or 1
    if workers <= cores:
        return (f"a LocalCluster of {workers} workers shares this machine's {cores} cores, which the in-process "
                f"run already uses: expect its time plus the cluster's start-up and shut-down (about "
                f"{LOCAL_CLUSTER_START_SECONDS:.0f} s); a cluster pays on more machines (--scheduler)")
    return None


def _stop(ckpt: Checkpoint, merger) -> None:
    """Save the checkpoint of a stopped run (when any unit is in) and close the merger's files."""
    if merger.done.any():
        ckpt.save(merger)
    merger.close()


def _run_units(scenario, units, todo, client, models, tracking) -> dict:
    """Run the units still to do, each result into the merger at once, the checkpoint saved when due;
    → {index: exception} of the units that raised."""
    ckpt, merger, progress, stop = tracking
    failures = {}
    left = len(todo)
    for i, result in _completed(scenario, units, todo, client, models):
        left -= 1
        if isinstance(result, Exception):
            failures[i] = result
            continue
        try:
            merger.add(i, result)
        except KeyboardInterrupt:
            raise _MergeInterrupted from None
        progress.step()
        ckpt.save_if_due(merger)
        if left:  # a Ctrl-C during the last unit: the run is finished all the same
            stop.check()
    return failures


def _close(client) -> None:
    if client is not None:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def _failure(scenario: Scenario, units: list, failures: dict, ckpt: Checkpoint, merger) -> Exception:
    """The error for units that raised, each named with its parameters: a NumericalError (or UserError) when
    every one is, else UnitFailed."""
    message = "; ".join(f"unit {i} ({scenario.kind.describe(scenario, units[i])}): {type(exc).__name__}: {exc}"
                        for i, exc in failures.items())
    if merger.done.any():
        message += (f". The other units are saved in {str(ckpt.folder)!r}: the same command with --resume keeps "
                    "them and reruns only the failed ones; --force starts over")
    else:  # nothing finished: leave nothing behind that would block the corrected run
        ckpt.remove()
    if all(isinstance(exc, ArithmeticError) for exc in failures.values()):  # overflow, division by zero
        return UserError(f"{message}. The parameters are outside the range where the model can be computed")
    for cls in (NumericalError, UserError):
        if all(isinstance(exc, cls) for exc in failures.values()):
            return cls(message)
    return UnitFailed(message)


def run_scenario_to_file(scenario: Scenario, path, force: bool = False, **options) -> None:
    """Run a scenario and write its netCDF file (see ``execute``: in-process by default, checkpointed; recorded
    traces are streamed to the file unit by unit, so a trace dataset larger than memory can be written)."""
    execute(scenario, path, force=force, quiet=options.pop("quiet", True), **options)
