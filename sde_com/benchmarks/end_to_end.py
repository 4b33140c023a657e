"""End-to-end benchmarks: what a user's ``sde-com run`` costs against the kernels alone, measured in one run.

Each job runs in a fresh Python process (``_child``), which first loads the job's kernels (``warm_up``: from
the cache; startup is not counted), then times the whole run through ``runs.engine.execute`` (planning,
units, merging, checkpoints, estimators, the file) and reports its wall time, its peak memory (ru_maxrss,
the whole process) and the output's size. The baselines are measured in the same run: the kernels alone
over the same units, in the job's process right after it (time-domain jobs), or netCDF4 writing the same
arrays (every variable of the job's file with more than 1000 values, at its shape), in a fresh process after
each job's (noise traces: in the job's process a job's heap and HDF5 state moved it by 2x). Every timed part
starts after ``os.sync()``. BLAS is pinned to one thread in every child (``BLAS_ENV``). Medians of ``repeat``
runs.

Files go to the system's temporary folder (``TMPDIR``). On a virtual machine, writing a file's page cache
into memory the guest has not touched lately costs a host fault per page: the same 960 MB netCDF4 write was
measured at 0.18 s to 2.3 s on this machine depending on it. ``TMPDIR=/dev/shm`` (memory) gives steady
figures.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sde_com.benchmarks import BLAS_ENV

# the jobs of issue-sized scale: a 500k-point sweep, ~1e9 trajectory-steps time-averaged and transient,
# 200 noise traces x 50,001 samples (960 MB of float64)
SWEEP_500K = """[model]
detuning = { start = -1.0, stop = 2.5, num = 2500 }
Omega = { start = 0.0, stop = 1e4, num = 100 }
direction = ["ccw", "cw"]
"""
TIME_AVERAGED = """[model]
detuning = 0.75
[simulate]
method = "exact"
dt = 0.5
burn_in = 50.0
duration = 2000.0
trajectories = 262144
seed = 1
initial = "steady"
"""
TRANSIENT = """[model]
detuning = 0.75
[simulate]
method = "exact"
dt = 0.25
duration = 120.0
trajectories = 2097152
seed = 2
initial = "thermal"
save_every = 2.0
[output]
variables = ["logneg", "stable", "cov", "cov_sim", "cov_sim_err", "cov_moment", "zscore_max", "logneg_sim",
             "logneg_sim_err", "logneg_ref"]
"""
TRACES = """[model]
detuning = 0.75
[simulate]
method = "exact"
dt = 0.1
duration = 5000.0
trajectories = 200
traces = 200
seed = 4
initial = "steady"
save_every = 0.1
"""

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
from sde_com.benchmarks.end_to_end import _child
print(json.dumps(_child(args)))
"""


def _child(args: dict) -> dict:
    """Run one job in this (fresh) process; see the module docstring."""
    import resource
    import time

    from sde_com.runs.engine import execute, plan
    from sde_com.runs.scenario import parse_scenario

    scenario = parse_scenario(args["text"])
    if args.get("baseline") == "netcdf4":  # a process of its own: a job's heap and HDF5 state moved it 2x
        return _netcdf4_alone(args["arrays"], Path(args["dir"]) / "direct.nc")
    kind = scenario.kind
    units = plan(scenario)
    models = kind.models(scenario, units)
    warm = kind.warm_up(scenario, units, models)
    if warm is not None:
        warm()
    out = Path(args["dir"]) / "out.nc"
    os.sync()  # every timed part starts with nothing left to write back from the one before
    t0 = time.perf_counter()
    execute(scenario, out, force=True, quiet=True, workers=args.get("workers"))
    result = {"wall": time.perf_counter() - t0, "units": len(units), "output_mb": out.stat().st_size / 1e6}
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.get("baseline") is None and scenario.simulation is not None and scenario.simulation.traces:
        result["arrays"] = _arrays_of(out)  # what the netCDF4 baseline writes, in a process of its own
    out.unlink()
    if args.get("baseline") == "kernels":
        result["kernels"] = _kernels_alone(scenario, units, models)
    return result


def _kernels_alone(scenario, units, models) -> float:
    """Wall time of the kernels alone over the job's units: initial states and the stepper (with its snapshots
    and traces), no statistics and nothing kept."""
    import time

    from sde_com.kernels import ensemble as kernels
    from sde_com.random import INITIAL_STREAM, sample_gaussian

    s = scenario.simulation
    t0 = time.perf_counter()
    for unit, model in zip(units, models, strict=True):
        u0 = sample_gaussian(model.C0, s.seed, unit.first, unit.count, INITIAL_STREAM)
        n_rec = max(0, min(s.traces - unit.first, unit.count))
        burn_in = s.n_steps if s.transient else s.burn_in_steps  # a transient sums no time averages
        kernels.run_ensemble(model.F, model.L, u0, s.seed, unit.first, s.n_steps, burn_in, s.snapshot_steps, n_rec,
                             s.trace_every)
    return time.perf_counter() - t0


def _arrays_of(path: Path) -> list:
    """[name, dimensions, shape] of every variable of a netCDF file with more than 1000 values, its largest
    first (the arrays a direct write of the same file would have to write)."""
    import netCDF4

    with netCDF4.Dataset(str(path)) as nc:
        arrays = [[name, list(v.dimensions), list(v.shape)] for name, v in nc.variables.items() if v.size > 1000]
    return sorted(arrays, key=lambda a: -int(np.prod(a[2])))


def _netcdf4_alone(arrays: list, path: Path) -> dict:
    """Wall time of netCDF4 writing float64 arrays of the job's variables' shapes (``_arrays_of``: the traces
    and noises, and with snapshots the estimates at every sample; distinct data made before the clock
    starts), uncompressed and contiguous: the fastest way to put them in a netCDF file."""
    import time

    import netCDF4

    rng = np.random.default_rng(0)
    data = [rng.standard_normal(shape) for _, _, shape in arrays]
    os.sync()
    t0 = time.perf_counter()
    with netCDF4.Dataset(str(path), "w") as nc:
        for (name, dims, shape), values in zip(arrays, data, strict=True):
            for dim, size in zip(dims, shape, strict=True):
                if dim not in nc.dimensions:
                    nc.createDimension(dim, size)
            var = nc.createVariable(name, "f8", dims, contiguous=True, fill_value=False)
            var[:] = values
    wall = time.perf_counter() - t0
    path.unlink()
    return {"netcdf4": wall, "netcdf4_mb": sum(8 * int(np.prod(shape)) for _, _, shape in arrays) / 1e6}


_PINNED = r"""
import json, sys
from importlib import import_module
module, name, kwargs = json.loads(sys.argv[1])
print(json.dumps(getattr(import_module(module), name)(**kwargs)))
"""


def pinned(module: str, name: str, **kwargs) -> dict:
    """``module.name(**kwargs)`` (a benchmark returning a JSON-able dict) in a fresh process whose BLAS is
    pinned to one thread (``BLAS_ENV``: the thread pools are sized when numpy loads, so it cannot be done in
    this process)."""
    done = subprocess.run([sys.executable, "-c", _PINNED, json.dumps([module, name, kwargs])], capture_output=True,
                          text=True, env={**os.environ, **BLAS_ENV}, check=False)
    if done.returncode:
        raise RuntimeError(f"benchmark {name} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_job(text: str, repeat: int = 3, **args) -> dict:
    """Medians over ``repeat`` fresh processes of one job (keys of ``_child``)."""
    runs = []
    env = {**os.environ, **BLAS_ENV}
    # the job, then (with baseline "netcdf4") the baseline in a fresh process of its own, alternately
    children = [{}] if args.get("baseline") != "netcdf4" else [{"baseline": None}, {"baseline": "netcdf4"}]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            result = {}
            for child in children:
                job = json.dumps({"text": text, "dir": tmp, **args, **child, "arrays": result.pop("arrays", None)})
                done = subprocess.run([sys.executable, "-c", _CHILD, job], capture_output=True, text=True, env=env,
                                      check=False)
                if done.returncode:
                    raise RuntimeError(f"benchmark job failed: {done.stderr[-2000:]}")
                result.update(json.loads(done.stdout.strip().splitlines()[-1]))
            runs.append(result)
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def benchmark_sweep(chain: dict, repeat: int = 3) -> dict:
    """The 500k-point sweep end to end against the chain kernel (``chain``: ``benchmark_steady_chain``'s
    result, measured in the same run) and the scipy loop."""
    r = run_job(SWEEP_500K, repeat)
    points = 2500 * 100 * 2
    per_point = r["wall"] / points * 1e6
    return {**r, "points": points, "us_per_point": per_point,
            "over_chain": per_point / chain["chain_us_per_point"],
            "scipy_over_e2e": chain["scipy_loop_us_per_point"] / per_point}


def scaled(text: str, scale: float, key: str) -> str:
    """A job's scenario with ``key`` (trajectories, duration) multiplied by ``scale`` (a smaller job of the same
    shape: the bench's smoke test; 1 is the issue-sized job)."""
    def times(match):
        value = float(match.group(2)) * scale
        return f"{match.group(1)}{max(1, round(value)) if key == 'trajectories' else value!r}"

    out, n = re.subn(rf"^({key} = )([\d.]+)$", times, text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise ValueError(f"the job has no line '{key} = NUMBER' to scale")
    return out


def benchmark_time_domain(repeat: int = 3, scale: float = 1.0) -> dict:
    """Time-averaged and transient ensembles of about 1e9 trajectory-steps (``scale``: a fraction of that):
    wall time against the kernels alone; the rest (checkpoints, merging, estimators, the file, planning) as a
    fraction of the wall time."""
    out = {}
    for name, text in (("time_averaged", TIME_AVERAGED), ("transient", TRANSIENT)):
        r = run_job(scaled(text, scale, "trajectories"), repeat, baseline="kernels")
        r["overhead_fraction"] = max(0.0, (r["wall"] - r["kernels"]) / r["wall"])
        out[name] = r
    return out


def benchmark_traces(repeat: int = 3, scale: float = 1.0) -> dict:
    """200 noise traces of 50,001 samples (``scale``: a fraction of the duration) streamed to the file,
    against netCDF4 writing the same arrays: as ``sim_traces`` has it (ensemble estimates at every sample:
    50,001 snapshot times), and the traces alone (no snapshots: the estimates are time averages)."""
    out = {}
    for name, text in (("with_snapshots", TRACES), ("traces_only", TRACES.replace("save_every = 0.1\n", ""))):
        r = run_job(scaled(text, scale, "duration"), repeat, baseline="netcdf4")
        r["over_netcdf4"] = r["wall"] / r["netcdf4"]
        out[name] = r
    return out


WATCHED_CAVITY = """[system]
name = "single_cavity"
[model]
detuning = 1.0
detuning_kind = "effective"
[[measure]]
mode = "a"
efficiency = 0.8
"""
FILTER_TRAJECTORIES, FILTER_DT = 16, 0.01  # the benchmark's record: 16 trajectories, steps of 0.01/ω_ref

_FILTER_CLI = "import sys; from sde_com.cli import main; sys.exit(main(sys.argv[1:]))"
_FILTER_BASELINE = r"""
import json, sys
import netCDF4, numpy as np
src, dst, d, blocks = json.loads(sys.argv[1])
with netCDF4.Dataset(src) as nc, netCDF4.Dataset(dst, "w") as out:
    rec = nc["record"]
    rec.set_auto_maskandscale(False)
    n, steps, m = rec.shape
    for name, size in (("trajectory", n), ("time", steps + 1), ("interval", steps), ("quadrature", d),
                       ("channel", m)):
        out.createDimension(name, size)
    est = out.createVariable("estimate", "f8", ("trajectory", "time", "quadrature"), contiguous=True, fill_value=False)
    nu = out.createVariable("innovation", "f8", ("trajectory", "interval", "channel"), contiguous=True,
                            fill_value=False)
    for i0, i1, t0, t1 in blocks:
        block = rec[i0:i1, t0:t1, :]
        est[i0:i1, t0 + 1:t1 + 1, :] = np.repeat(block, d, axis=-1)
        nu[i0:i1, t0:t1, :] = block
"""


def _write_record(path: Path, n_traj: int, n_steps: int, omega_ref: float) -> None:
    """A record file as ``sde-com filter`` takes it: record (trajectory, interval, channel) of white noise of
    variance dτ (what a filter sees of a vacuum-limited record), times in seconds; written in blocks."""
    import netCDF4

    rng = np.random.default_rng(0)
    with netCDF4.Dataset(str(path), "w") as nc:
        for name, size in (("trajectory", n_traj), ("time", n_steps + 1), ("interval", n_steps), ("channel", 1)):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "s"
        t[:] = np.arange(n_steps + 1) * FILTER_DT / omega_ref
        rec = nc.createVariable("record", "f8", ("trajectory", "interval", "channel"), contiguous=True,
                                fill_value=False)
        step = 1 << 22
        for i in range(n_traj):
            for t0 in range(0, n_steps, step):
                t1 = min(t0 + step, n_steps)
                rec[i, t0:t1, 0] = rng.standard_normal(t1 - t0) * math.sqrt(FILTER_DT)


def _timed_child(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of a fresh process (its interpreter's start included), after os.sync()."""
    import time

    os.sync()
    t0 = time.perf_counter()
    child = subprocess.Popen(argv, env={**os.environ, **BLAS_ENV}, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"benchmark child failed: {child.stderr.read()[-2000:]}")
    child.stderr.close()
    return wall, usage.ru_maxrss / 1024


def benchmark_filter(record_mib: float = 1024.0, repeat: int = 3, workers: int = 1) -> dict:
    """``sde-com filter`` over a record file of ``record_mib`` MiB (16 trajectories of one homodyne channel of
    the watched single cavity, d = 4) against a plain netCDF4 read of the record and write of arrays of the
    estimate's and the innovation's shapes, in the filter's blocks (``_filter_blocks``), each in a fresh
    process: medians of wall time and peak resident memory (ru_maxrss), alternated, after one untimed baseline
    (on a virtual machine the first touch of a file's worth of page cache costs a host fault per page: the
    module docstring)."""
    from sde_com.physics.system import get_system
    from sde_com.simulation.conditional import _filter_blocks

    system = get_system("single_cavity")
    omega_ref = system.reference_rate(system.resolve({"detuning": 1.0, "detuning_kind": "effective"}))
    n_steps = max(2, round(record_mib * 2**20 / (8 * FILTER_TRAJECTORIES)))
    blocks = list(_filter_blocks(FILTER_TRAJECTORIES, n_steps, system.dimension, 1))
    times: dict[str, list] = {"filter": [], "baseline": [], "filter_mb": [], "baseline_mb": []}
    with tempfile.TemporaryDirectory() as tmp:
        scenario, record, out = Path(tmp) / "watch.toml", Path(tmp) / "record.nc", Path(tmp) / "out.nc"
        scenario.write_text(WATCHED_CAVITY)
        _write_record(Path(tmp) / "small.nc", 2, 100, omega_ref)
        cli = [sys.executable, "-c", _FILTER_CLI, "filter", str(scenario)]
        _timed_child([*cli, str(Path(tmp) / "small.nc"), "-o", str(out), "--quiet", "--force"])  # the kernel cache
        _write_record(record, FILTER_TRAJECTORIES, n_steps, omega_ref)
        jobs = {"filter": [*cli, str(record), "-o", str(out), "--quiet", "--force", "--workers", str(workers)],
                "baseline": [sys.executable, "-c", _FILTER_BASELINE,
                             json.dumps([str(record), str(out), system.dimension, blocks])]}
        _timed_child(jobs["baseline"])  # untimed: the pages of a file this size are first touched here
        out.unlink()
        for k in range(repeat):  # alternated, each first in turn: a freed file's pages are cheaper to touch again
            for name in (("filter", "baseline") if k % 2 == 0 else ("baseline", "filter")):
                wall, peak = _timed_child(jobs[name])
                times[name].append(wall)
                times[f"{name}_mb"].append(peak)
                out.unlink()
        size = record.stat().st_size
    r = {k: float(np.median(v)) for k, v in times.items()}
    return {**r, "record_mb": size / 1e6, "trajectories": FILTER_TRAJECTORIES, "steps": n_steps,
            "over_baseline": r["filter"] / r["baseline"], "workers": workers}


# A periodic state against the transient it replaces: two modulated systems written as Hamiltonians (ω_ref =
# ω_m = 1 s⁻¹). "cavity": the optomechanical cavity at Δ = ω_m (κ = ω_m, Q_m = 1e5, n̄ = 400) with its coupling
# G(1 + e cos ω_m t), which the light damps within ~20 periods; "parametric": a mechanical mode (Q = 200, n̄ = 10)
# whose spring is modulated at 2ω_m below the Mathieu threshold e = 2/Q (mechanical squeezing), which settles
# only over thousands of periods (half the threshold: 2932).
PERIODIC_SYSTEMS = {
    "cavity": ("""[system]
modes = ["a", "b"]
hamiltonian = "wm*dag(a)*a + wm*dag(b)*b + G*(1 + e*cos(W*t))*(a + dag(a))*(b + dag(b))"
parameters = { wm = 1.0, G = 0.2, e = 0.2, W = 1.0, k = 1.0, g = 1e-5, n = 400.0 }
time_scale = 1.0
[[system.dissipators]]
kind = "thermal"
mode = "a"
rate = "k"
[[system.dissipators]]
kind = "brownian"
mode = "b"
rate = "g"
n = "n"
""", 0.5),
    "parametric": ("""[system]
modes = ["m"]
hamiltonian = "wm*dag(m)*m + e*wm/4*cos(W*t)*(m + dag(m))**2"
parameters = { wm = 1.0, e = 0.005, W = 2.0, g = 0.005, n = 10.0 }
time_scale = 1.0
[[system.dissipators]]
kind = "brownian"
mode = "m"
rate = "g"
n = "n"
""", 0.009),
}
SETTLED = 1e-10  # the transient has converged when its moment solution is this close to the periodic state


def benchmark_periodic(repeat: int = 3, scale: float = 1.0) -> dict:
    """A 1000-point sweep of the periodic state (64 samples, ``[periodic]`` over the modulation depth e) against
    one transient run to convergence at e's default (``[simulate]`` from the thermal state until the moment
    solution is within SETTLED of the periodic state: the periods from the slowest Floquet rate), with 1000
    trajectories and with 2 (its moment solution alone, the cheapest transient). The six jobs run one after the
    other in one fresh process per repeat, after a small untimed run of each kind (the kernels loaded alike);
    ``scale``: a fraction of the points, periods and trajectories (the smoke test)."""
    from sde_com.physics.floquet import periodic_state
    from sde_com.runs.scenario import parse_scenario

    texts, warm, sizes = {}, [], {}
    for name, (system, top) in PERIODIC_SYSTEMS.items():
        points, trajectories = max(4, round(1000 * scale)), max(2, round(1000 * scale))
        sweep = system + f"[model]\ne = {{ start = 0.0, stop = {top}, num = {points} }}\n[periodic]\nsamples = 64\n"
        mod = parse_scenario(system + "[periodic]\n").system.periodic_modulation({})
        periods = math.ceil(math.log(1 / SETTLED) / (2 * -periodic_state(mod, 64).growth_rate * mod.period))
        periods = max(2, round(periods * scale))
        T = mod.period

        def transient(n: int, periods: int, T=T, system=system) -> str:
            return (system + f"[simulate]\ndt = {T / 64!r}\nduration = {periods * T!r}\nsave_every = {T!r}\n"
                             f"initial = 'thermal'\ntrajectories = {n}\n")

        texts.update({f"{name} sweep": sweep, f"{name} transient": transient(trajectories, periods),
                      f"{name} moments": transient(2, periods)})
        warm += [sweep.replace(f"num = {points}", "num = 2"), transient(2, 2)]
        sizes[name] = {"points": points, "periods": periods, "trajectories": trajectories}
    runs = [pinned("sde_com.benchmarks.end_to_end", "periodic_jobs", texts=texts, warm=warm) for _ in range(repeat)]
    walls = {k: float(np.median([run[k] for run in runs])) for k in texts}
    out = {}
    for name, size in sizes.items():
        r = {job: walls[f"{name} {job}"] for job in ("sweep", "transient", "moments")}
        out[name] = {**r, **size, **{f"{job}_over_sweep": r[job] / r["sweep"] for job in ("transient", "moments")}}
    return out


def periodic_jobs(texts: dict, warm: list) -> dict:
    """Wall time of each scenario text (name → text) run to a file in this process, after the ``warm`` texts
    run untimed (``benchmark_periodic``)."""
    import time

    from sde_com.runs.engine import execute
    from sde_com.runs.scenario import parse_scenario

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.nc"
        for text in warm:
            execute(parse_scenario(text), out, force=True, quiet=True)
        walls = {}
        for name, text in texts.items():
            scenario = parse_scenario(text)
            t0 = time.perf_counter()
            execute(scenario, out, force=True, quiet=True)
            walls[name] = time.perf_counter() - t0
    return walls
