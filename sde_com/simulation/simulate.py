"""Time-domain simulation of the linearized Langevin equations du = A u dt + dW, E[dW dWᵀ] = D dt.

The Python face of the Numba kernels (``kernels.py``): it validates settings, builds the one-step maps of
Euler–Maruyama or of the exact discretization (``linear.py``), runs trajectory ensembles in chunks, and
turns per-trajectory sums into estimates with standard errors, compared entry by entry with their
references (docs/physics.md, "The stochastic picture"). Times are in units of 1/ω_m unless a name says seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from sde_com.kernels import ensemble as kernels
from sde_com.physics.gaussian import logneg
from sde_com.physics.linear import (
    QUADRATURES,
    discrete_moment_covariance,
    discrete_stationary_covariance,
    euler_maruyama_max_dt,
    euler_maruyama_step,
    exact_step,
    lyapunov_covariance_reference,
    moment_covariance,
)
from sde_com.results.catalogue import apply_catalogue, set_time_reference, time_coordinates, variables_of
from sde_com.runs.schema import SCHEMA, check_fields, default

METHODS = SCHEMA["simulate"].keys["method"].choices
INITIAL_STATES = SCHEMA["simulate"].keys["initial"].choices
N_JACKKNIFE_GROUPS = 32  # leave-one-group-out jackknife; more groups cost time, not accuracy
# Default unit of work: ≥ 5e7 trajectory-steps (≈ 0.4 s of kernel time on 2 threads, so a Dask unit's ~20 ms of
# scheduling is < 5 %), and ≥ 64 trajectories so that every numba thread gets whole 16-lane SIMD blocks.
STEPS_PER_UNIT = 50_000_000
MIN_TRAJECTORIES_PER_UNIT = 64
N_BATCHES = 32  # batch means for a single trajectory: each batch should span many relaxation times


@dataclass(frozen=True, kw_only=True)
class SimulationSettings:
    """What a time-domain run does (every time in units of 1/ω_m).

    method: "em" (Euler–Maruyama) or "exact" (Φ = e^{A dt}, Van Loan noise; no time-step bias).
    dt: time step ω_m·dt > 0.   burn_in: discarded first, ≥ 0.   duration: simulated after the burn-in, > 0.
    trajectories: ensemble size ≥ 1.   seed: integer ≥ 0; with the trajectory index it keys every random number.
    initial: "steady" (N(0, V)), "thermal" (optical vacuum, thermal mechanics), "zero", or a 6×6 covariance.
    save_times / save_every: ensemble snapshots (a transient run) at these times from t = 0, or every so
        often; without either, the run estimates the steady state from time averages after the burn-in.
    traces: record u(t) and its noise increments for this many trajectories, at the snapshot times when
        ``save_every`` is given, else at every step; with a decimation of k steps the recorded noise is the
        accumulated innovation u_n − F^k u_{n−k} that drove the trace between records.
    allow_unstable: run a transient at an operating point without steady state.
    chunk: trajectories per unit of work (results do not depend on it; default: about STEPS_PER_UNIT
        trajectory-steps per unit).
    """

    # defaults, types and ranges: the [simulate] table of sde_com.schema
    method: str = default("simulate", "method")
    dt: float = default("simulate", "dt")
    burn_in: float = default("simulate", "burn_in")
    duration: float = default("simulate", "duration")
    trajectories: int = default("simulate", "trajectories")
    seed: int = default("simulate", "seed")
    initial: str | np.ndarray = default("simulate", "initial")
    save_times: tuple[float, ...] | None = default("simulate", "save_times")
    save_every: float | None = default("simulate", "save_every")
    traces: int = default("simulate", "traces")
    allow_unstable: bool = default("simulate", "allow_unstable")
    chunk: int | None = default("simulate", "chunk")

    def __post_init__(self):
        check_fields(self, "simulate")  # each field's type, range, choices; below: the checks across fields
        if self.n_steps - self.burn_in_steps < (N_BATCHES if self.trajectories == 1 else 1) and not (
                self.save_times is not None or self.save_every is not None):
            raise ValueError("duration must span at least one step after the burn-in "
                             f"({N_BATCHES} with a single trajectory, for batch means)")
        if self.traces > self.trajectories:
            raise ValueError(f"traces must be <= trajectories ({self.trajectories}), got {self.traces}")
        if not isinstance(self.initial, str):
            V0 = np.asarray(self.initial, dtype=float)
            if V0.shape != (6, 6) or not np.all(np.isfinite(V0)) or not np.allclose(V0, V0.T):
                raise ValueError("initial covariance must be a finite symmetric 6x6 matrix")
            if np.linalg.eigvalsh(V0).min() < -1e-12 * max(1.0, np.abs(V0).max()):
                raise ValueError("initial covariance must be positive semidefinite")
            object.__setattr__(self, "initial", V0)
        if self.save_times is not None and self.save_every is not None:
            raise ValueError("give save_times or save_every, not both")
        if self.save_times is not None:
            t = np.asarray(self.save_times, dtype=float)
            if np.any(np.diff(t) < 0):
                raise ValueError(f"save_times must be ascending, got {list(self.save_times)}")
            if t[-1] > self.total_time * (1 + 1e-12):
                raise ValueError(f"save_times must lie within burn_in + duration = {self.total_time:g}")
            object.__setattr__(self, "save_times", tuple(float(x) for x in t))
        if self.save_every is not None:
            if not self.save_every >= self.dt:
                raise ValueError(f"save_every must be >= dt = {self.dt:g} (unit: 1/ω_ref), got {self.save_every!r}")
        if self.traces and self.save_times is not None:
            raise ValueError("traces are recorded on a regular grid: use save_every, not save_times")

    @property
    def total_time(self) -> float:
        return self.burn_in + self.duration

    @property
    def n_steps(self) -> int:
        return max(1, int(round(self.total_time / self.dt)))

    @property
    def burn_in_steps(self) -> int:
        return int(round(self.burn_in / self.dt))

    @property
    def transient(self) -> bool:
        return self.save_times is not None or self.save_every is not None

    @property
    def snapshot_steps(self) -> np.ndarray:
        if self.save_times is not None:
            return np.array([int(round(t / self.dt)) for t in self.save_times], dtype=np.int64)
        if self.save_every is not None:
            return np.arange(0, self.n_steps + 1, self.trace_every, dtype=np.int64)
        return np.zeros(0, dtype=np.int64)

    @property
    def trace_every(self) -> int:
        return max(1, int(round(self.save_every / self.dt))) if self.save_every is not None else 1


def _is_real(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def initial_covariance(initial, V_steady: np.ndarray | None, n_thermal: float) -> np.ndarray:
    """Covariance of the initial state: steady N(0, V), thermal (optical vacuum, mechanics at n_m), zero."""
    if not isinstance(initial, str):
        return np.asarray(initial, dtype=float)
    if initial == "steady":
        if V_steady is None:
            raise ValueError("initial = 'steady' needs a stable operating point (no steady state here)")
        return V_steady
    if initial == "thermal":
        return np.diag([0.5, 0.5, 0.5, 0.5, n_thermal + 0.5, n_thermal + 0.5])
    return np.zeros((6, 6))


def _factor(V: np.ndarray) -> np.ndarray:
    """C with C Cᵀ = V for a positive semidefinite V (eigen-decomposition: singular V is fine)."""
    w, U = np.linalg.eigh(0.5 * (V + V.T))
    return U * np.sqrt(np.clip(w, 0.0, None))


def step_maps(A: np.ndarray, D: np.ndarray, dt: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(F, L) of the chosen scheme for a step dt (A, D, dt in the same time unit); EM is checked first."""
    if method == "em":
        max_dt = euler_maruyama_max_dt(A)
        if not dt < max_dt:
            raise ValueError(
                f"dt = {dt:g} is unstable for Euler–Maruyama here (|1 + λ dt| < 1 needs dt < {max_dt:.4g} "
                "in units of 1/ω_m); use a smaller dt or method = 'exact', which has no stability limit")
        return euler_maruyama_step(A, D, dt)
    return exact_step(A, D, dt)


def _jackknife(values_by_group: np.ndarray, weights: np.ndarray, fn: Callable[[np.ndarray], float]):
    """Delete-one-group jackknife of fn(weighted mean) → (estimate on all data, standard error)."""
    total = np.tensordot(weights, values_by_group, axes=1) / weights.sum()
    full = fn(total)
    g = len(weights)
    if g < 2:
        return full, math.nan
    loo = np.array([fn((total * weights.sum() - weights[i] * values_by_group[i]) / (weights.sum() - weights[i]))
                    for i in range(g)])
    if not np.all(np.isfinite(loo)):
        return full, math.nan
    return full, float(math.sqrt((g - 1) / g * np.sum((loo - loo.mean()) ** 2)))


def _group_means(per_traj: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of per-trajectory values over contiguous groups (fixed by trajectory index), with sizes."""
    n = per_traj.shape[0]
    g = min(n_groups, n)
    edges = np.linspace(0, n, g + 1).astype(int)
    means = np.stack([per_traj[a:b].mean(axis=0) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return means, np.diff(edges).astype(float)


def _zscores(estimate, error, reference):
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (estimate - reference) / error
    iu = np.triu_indices(6)
    zu = np.abs(z[..., iu[0], iu[1]])
    # entries with zero error (e.g. the exactly known state at t = 0) carry no test: NaN, skipped
    zu = np.where(np.isfinite(zu), zu, -np.inf).max(axis=-1)
    return z, np.where(np.isfinite(zu), zu, np.nan)


@dataclass(frozen=True)
class PointModel:
    """One operating point and branch prepared for the kernels; times in units of 1/ω_m.

    A, D: drift and diffusion / ω_m.  F, L: the scheme's one-step map u ← F u + L ξ.  C0: C0 C0ᵀ = V0, the
    initial covariance.  V_inf: Lyapunov V (None where unstable).
    """

    A: np.ndarray
    D: np.ndarray
    F: np.ndarray
    L: np.ndarray
    V0: np.ndarray
    C0: np.ndarray
    V_inf: np.ndarray | None
    stable: bool
    max_dt_em: float


def prepare_point(A: np.ndarray, D: np.ndarray, omega_m: float, n_thermal: float,
                  settings: SimulationSettings) -> PointModel:
    """Check the run against the operating point (stability, EM step) and build the kernels' inputs."""
    s = settings
    A_s, D_s = A / omega_m, D / omega_m  # time in units of 1/ω_m: V is unchanged
    stable = bool(np.max(np.linalg.eigvals(A_s).real) < 0)
    if not stable and not (s.transient and s.allow_unstable):
        raise ValueError("the operating point is unstable (no steady state): steady-state estimates are refused; "
                         "a transient (save_times/save_every) may run with allow_unstable = true")
    V_inf = lyapunov_covariance_reference(A_s, D_s) if stable else None
    F, L = (np.ascontiguousarray(m) for m in step_maps(A_s, D_s, s.dt, s.method))
    # "steady" means the scheme's own stationary state: V_dt for EM (V for exact), so no burn-in is needed
    V_start = discrete_stationary_covariance(F, L) if (s.method == "em" and stable) else V_inf
    V0 = initial_covariance(s.initial, V_start, n_thermal)
    if s.snapshot_steps.size and s.snapshot_steps.max() > s.n_steps:
        raise ValueError("snapshot times beyond the simulated time")
    return PointModel(A_s, D_s, F, L, V0, np.ascontiguousarray(_factor(V0)), V_inf, stable,
                      euler_maruyama_max_dt(A_s))


def trajectory_blocks(settings: SimulationSettings) -> list[tuple[int, int]]:
    """(first trajectory, count) of each block of ``chunk`` trajectories, in order."""
    n = settings.trajectories
    c = settings.chunk or min(n, max(MIN_TRAJECTORIES_PER_UNIT, STEPS_PER_UNIT // settings.n_steps))
    return [(first, min(c, n - first)) for first in range(0, n, c)]


def run_block(model: PointModel, settings: SimulationSettings, first: int, count: int) -> dict:
    """Trajectories [first, first + count) of one point: everything the estimators need from them.

    ``samples`` (steady runs): per-trajectory time averages of u uᵀ after the burn-in, or, for a single
    trajectory, the averages over N_BATCHES consecutive batches (batch means). ``snapshots`` (transient
    runs): u at the snapshot steps. ``trace``, ``noise``: recorded paths of the block's traced trajectories.
    A block's result depends only on the seed and its trajectory indices, never on the block size.
    """
    s = settings
    u0 = kernels.sample_gaussian(model.C0, s.seed, first, count, kernels.INITIAL_STREAM)
    n_rec = max(0, min(s.traces - first, count))
    steps = s.snapshot_steps
    out = {}
    if not s.transient and s.trajectories == 1:
        _, batch_uu, batch_len = kernels.run_batch_means(model.F, model.L, u0, s.seed, first, s.n_steps,
                                                         s.burn_in_steps, N_BATCHES)
        if batch_len < 1:
            raise ValueError(f"duration must span at least {N_BATCHES} steps for batch means with one trajectory")
        out["samples"] = batch_uu[0] / batch_len
        if not n_rec:
            return out
    _, sum_uu, n_avg, snaps, traces, noises = kernels.run_ensemble(
        model.F, model.L, u0, s.seed, first, s.n_steps, s.burn_in_steps, steps, n_rec, s.trace_every)
    if s.transient:
        out["snapshots"] = snaps
    elif "samples" not in out:
        out["samples"] = sum_uu / n_avg
    if n_rec:
        if s.trace_every > 1:  # the innovation between recorded states: u_k − F^k u_{k−1}, k = trace_every
            Fk = np.linalg.matrix_power(model.F, s.trace_every)
            noises = np.zeros_like(traces)
            noises[:, 1:] = traces[:, 1:] - traces[:, :-1] @ Fk.T
        out["trace"], out["noise"] = traces, noises
    return out


def estimate_point(model: PointModel, settings: SimulationSettings, blocks) -> dict:
    """Estimates with errors and their references from the blocks of one point, an iterable in
    trajectory order (it may load them one at a time)."""
    out: dict = {"stable": model.stable, "cov": model.V_inf, "max_dt_em": model.max_dt_em}
    if settings.transient:
        out.update(_transient_estimates(blocks, model, settings.snapshot_steps, settings))
    else:
        out.update(_steady_estimates(np.concatenate([b["samples"] for b in blocks]), model, settings))
    return out


def simulate_point(A: np.ndarray, D: np.ndarray, omega_m: float, n_thermal: float, settings: SimulationSettings,
                   trace_sink: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> dict:
    """Run an ensemble at one operating point (A, D in rad/s) and return estimates beside their references.

    Steady-state mode (no snapshots): ``cov_sim`` from time averages after the burn-in, ``cov_sim_err`` from
    the spread of the per-trajectory averages over independent trajectories (batch means over 32
    consecutive batches when there is one trajectory), ``cov_ref`` the covariance the scheme samples
    (Lyapunov V for exact, the discrete-Lyapunov V_dt for EM), ``cov`` the continuous V, z-scores against
    ``cov_ref``, E_N with jackknife errors. Transient mode: the same per snapshot time, with the moment
    solution as reference. ``trace_sink(first_trajectory, traces, noises)`` receives recorded paths block
    by block (else they are returned in memory).
    """
    model = prepare_point(A, D, omega_m, n_thermal, settings)
    blocks = []
    for first, count in trajectory_blocks(settings):
        block = run_block(model, settings, first, count)
        if "trace" in block and trace_sink is not None:
            trace_sink(first, block.pop("trace"), block.pop("noise"))
        blocks.append(block)
    out = estimate_point(model, settings, blocks)
    if settings.traces and trace_sink is None:
        out["trace"] = np.concatenate([b["trace"] for b in blocks if "trace" in b])
        out["noise"] = np.concatenate([b["noise"] for b in blocks if "noise" in b])
    return out


def _steady_estimates(per_traj: np.ndarray, model: PointModel, s: SimulationSettings) -> dict:
    """V from per-trajectory (or per-batch) time averages of u uᵀ (the mean of u is zero), errors from their
    spread over the independent trajectories (batches)."""
    n = per_traj.shape[0]
    V_sim = per_traj.mean(axis=0)
    err = per_traj.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full((6, 6), np.nan)
    V_inf = model.V_inf
    V_ref = discrete_stationary_covariance(model.F, model.L) if s.method == "em" else V_inf
    z, zmax = _zscores(V_sim, err, V_ref)
    _, zmax_continuous = _zscores(V_sim, err, V_inf)  # for EM this shows the time-step bias
    groups, weights = _group_means(per_traj, N_JACKKNIFE_GROUPS)
    en, en_err = _jackknife(groups, weights, logneg)
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, zscore=z, zscore_max=zmax,
                zscore_max_continuous=zmax_continuous, logneg_sim=en, logneg_sim_err=en_err,
                logneg_ref=logneg(V_ref), logneg=logneg(V_inf))


def _transient_estimates(blocks, model: PointModel, steps, s: SimulationSettings) -> dict:
    """V(t) at each snapshot from the ensemble of u(t) uᵀ(t), streamed block by block through running
    sums (memory of the sums, not of the ensemble); references: the moment solution."""
    n = s.trajectories
    n_t = steps.size
    g = min(N_JACKKNIFE_GROUPS, n)
    total, total_sq = np.zeros((n_t, 6, 6)), np.zeros((n_t, 6, 6))
    group_sum, group_count = np.zeros((g, n_t, 6, 6)), np.zeros(g)
    first = 0
    for block in blocks:
        snaps = block["snapshots"]
        kernels.accumulate_outer_products(snaps, first, n, g, total, total_sq, group_sum, group_count)
        first += snaps.shape[0]
    V_sim = total / n
    with np.errstate(invalid="ignore"):
        var = np.clip(total_sq / n - V_sim**2, 0.0, None) * n / (n - 1) if n > 1 else np.full(V_sim.shape, np.nan)
    err = np.sqrt(var / n)
    times = steps * s.dt
    V_moment = np.stack([moment_covariance(model.A, model.D, model.V0, t) for t in times])
    V_ref = discrete_moment_covariance(model.F, model.L, model.V0, steps) if s.method == "em" else V_moment
    z, zmax = _zscores(V_sim, err, V_ref)
    groups, weights = group_sum / group_count[:, None, None, None], group_count
    en = np.empty(times.size)
    en_err = np.empty(times.size)
    for k in range(times.size):
        en[k], en_err[k] = _jackknife(groups[:, k], weights, logneg)
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, cov_moment=V_moment, zscore=z, zscore_max=zmax,
                logneg_sim=en, logneg_sim_err=en_err, logneg_ref=np.array([logneg(V) for V in V_moment]),
                time_steps=steps)


# Sweeps ---------------------------------------------------------------------------------------------------

# the time-domain data variables (their units and meaning: sde_com.catalogue)
SIM_VARIABLE_INFO: tuple[str, ...] = variables_of("simulate")

SIMULATION_KEYS = tuple(SCHEMA["simulate"].keys)  # == the SimulationSettings fields


def _point_parameters(values: dict, dims: list[str], index: tuple[int, ...]) -> dict:
    return {k: (v[index[dims.index(k)]] if k in dims else v[0]) for k, v in values.items()}


@dataclass(frozen=True, order=True)
class SimulationUnit:
    """A piece of a sweep's time-domain work: trajectories [first, first + count) at the flat sweep point
    ``point``, mean-field branch ``branch``. With the sweep parameters and the settings it is all a worker
    needs; its result depends on nothing else (seed and trajectory indices key the random numbers)."""

    point: int
    branch: int
    first: int
    count: int


def point_model(settings: SimulationSettings, params: dict, point: int, branch: int) -> PointModel:
    """The prepared model of flat sweep point ``point``, branch ``branch`` (validates the settings there)."""
    from sde_com.physics.model import operating_points
    from sde_com.physics.resonator.device import Device
    from sde_com.results.sweep import parameter_grid

    values, dims, shape, _ = parameter_grid(params)
    p = _point_parameters(values, dims, np.unravel_index(point, shape))
    device = Device(**{k: float(v) for k, v in p.items() if k not in ("detuning", "direction")})
    op = operating_points(device, float(p["detuning"]), str(p["direction"]))[branch]
    return prepare_point(op.drift, op.diffusion, device.omega_m, device.n_thermal, settings)


def plan_units(settings: SimulationSettings, sweep_ds: xr.Dataset) -> list[SimulationUnit]:
    """Every unit of a run, in a fixed order: points (C order), branches, trajectory blocks."""
    stable = sweep_ds["stable"].values.reshape(-1, sweep_ds.sizes["branch"])
    n_branches = sweep_ds["n_branches"].values.reshape(-1)
    units = []
    for point in range(stable.shape[0]):
        for b in range(int(n_branches[point])):
            if stable[point, b] or (settings.transient and settings.allow_unstable):
                units += [SimulationUnit(point, b, f, c) for f, c in trajectory_blocks(settings)]
    return units


def run_unit(settings: SimulationSettings, params: dict, unit: SimulationUnit, model: PointModel | None = None) -> dict:
    """Run one unit (see ``run_block`` for what it returns); ``model``: its point's, if already prepared."""
    model = model if model is not None else point_model(settings, params, unit.point, unit.branch)
    return run_block(model, settings, unit.first, unit.count)


def simulate(settings: SimulationSettings, *, trace_sink: Callable | None = None, **params) -> xr.Dataset:
    """Steady-state sweep (``sde_com.sweep``) plus a time-domain ensemble at every point and stable branch.

    ``params`` are sweep parameters as in ``sweep``. The same seed is used at every point (common random
    numbers: differences between points are not blurred by independent noise). Unstable branches get NaN
    unless the run is a transient with ``allow_unstable``. Recorded traces are returned in the Dataset, or,
    with ``trace_sink(point_index, branch, first_trajectory, traces, noises)``, handed over block by block
    (``scenario.run_scenario_to_file`` streams them to disk this way).
    """
    ds = prepare_simulation(settings, params)
    results = {}
    for unit in plan_units(settings, ds):
        results[unit] = block = run_unit(settings, params, unit)
        if trace_sink is not None and "trace" in block:
            trace_sink(unit.point, unit.branch, unit.first, block.pop("trace"), block.pop("noise"))
    return assemble_simulation(settings, params, ds, results)


def prepare_simulation(settings: SimulationSettings, params: dict) -> xr.Dataset:
    """Validate a sweep-wide run and return its steady-state sweep (the skeleton the results fill)."""
    from sde_com.results.sweep import parameter_grid, sweep

    _, dims, _, _ = parameter_grid(params)
    if (settings.transient or settings.traces) and "omega_m" in dims:
        raise ValueError("omega_m cannot be swept in a run with snapshots or traces: their time axis is in seconds")
    return sweep(store_cov=True, revival=False, **params)


def assemble_simulation(settings: SimulationSettings, params: dict, ds: xr.Dataset, results,
                        traces_in_results: bool = True) -> xr.Dataset:
    """Merge unit results into the Dataset, in unit order whatever order they finished in.

    ``results`` maps each SimulationUnit to its ``run_block`` output; it may load them lazily (one point's
    blocks are read one after the other). ``traces_in_results``: the blocks carry their recorded traces.
    """
    from sde_com.results.sweep import parameter_grid

    s = settings
    values, dims, shape, _ = parameter_grid(params)
    n_b = ds.sizes["branch"]
    n_t = s.snapshot_steps.size
    tail = (n_t,) if s.transient else ()
    res = {name: np.full((*shape, n_b, *tail, 6, 6), np.nan)
           for name in ("cov_sim", "cov_sim_err", "cov_ref", "zscore")}
    if s.transient:
        res["cov_moment"] = np.full((*shape, n_b, n_t, 6, 6), np.nan)
    for name in ("zscore_max", "logneg_sim", "logneg_sim_err", "logneg_ref"):
        res[name] = np.full((*shape, n_b, *tail), np.nan)
    if not s.transient:
        res["zscore_max_continuous"] = np.full((*shape, n_b), np.nan)
    res["max_dt_em"] = np.full((*shape, n_b), np.nan)
    keep_traces = s.traces and traces_in_results
    if keep_traces:
        n_trace_t = s.n_steps // s.trace_every + 1
        res["trace"] = np.full((*shape, n_b, s.traces, n_trace_t, 6), np.nan)
        res["noise"] = np.full((*shape, n_b, s.traces, n_trace_t, 6), np.nan)
    by_point: dict[tuple[int, int], list[SimulationUnit]] = {}
    for unit in sorted(results.keys()):
        by_point.setdefault((unit.point, unit.branch), []).append(unit)
    for (point, b), units in by_point.items():
        at = (*np.unravel_index(point, shape), b)
        model = point_model(s, params, point, b)
        out = estimate_point(model, s, (results[u] for u in units))
        for name in res:
            if name in out:
                res[name][at] = out[name]
        if keep_traces:
            for u in units:
                if "trace" in results[u]:
                    n = results[u]["trace"].shape[0]
                    res["trace"][at][u.first:u.first + n] = results[u]["trace"]
                    res["noise"][at][u.first:u.first + n] = results[u]["noise"]
    bdims = (*dims, "branch")
    tdims = ("time",) if s.transient else ()
    for name, arr in res.items():
        if name in ("trace", "noise"):
            ds[name] = ((*bdims, "trajectory", "time", "quadrature"), arr)
            continue
        t = tdims if name not in ("max_dt_em", "zscore_max_continuous") else ()
        matrix = name.startswith(("cov", "zscore")) and not name.startswith("zscore_max")
        ds[name] = ((*bdims, *t, "row", "col") if matrix else (*bdims, *t), arr)
    omega_m = float(values["omega_m"][0])
    if s.transient or s.traces:
        ds = ds.assign_coords(time_coordinate(s, omega_m))
    if len(values["omega_m"]) == 1:  # the unit of dt, burn_in, duration (swept: the omega_m coordinate)
        set_time_reference(ds, omega_m)
    if s.traces:
        ds = ds.assign_coords(trace_coordinates(s))
    ds.attrs["simulation"] = json.dumps(settings_to_dict(s))
    return apply_catalogue(ds, title="sde_com time-domain simulation")


def time_coordinate(s: SimulationSettings, omega_m: float) -> dict[str, xr.DataArray]:
    """Snapshot / trace times: ``time`` in seconds (steps × dt / ω_m) and ``time_scaled`` (steps × dt)."""
    steps = s.snapshot_steps if s.transient else np.arange(0, s.n_steps + 1, s.trace_every)
    return time_coordinates(steps * s.dt, omega_m)


def trace_coordinates(s: SimulationSettings) -> dict[str, xr.DataArray]:
    """The ``trajectory`` and ``quadrature`` coordinates of recorded traces (attrs: sde_com.catalogue)."""
    return dict(trajectory=xr.DataArray(np.arange(s.traces, dtype=np.int32), dims="trajectory"),
                quadrature=xr.DataArray(list(QUADRATURES), dims="quadrature"))


def settings_to_dict(s: SimulationSettings) -> dict:
    """The settings as plain JSON-able values (provenance)."""
    out = {}
    for k in SIMULATION_KEYS:
        if k == "chunk":  # results do not depend on it
            continue
        v = getattr(s, k)
        out[k] = v.tolist() if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple) else v)
    return out


def simulate_time_steps(settings: SimulationSettings, dts, **params) -> xr.Dataset:
    """A time-step study: ``simulate`` once per dt (units of 1/ω_m), time-domain results along a ``dt``
    dimension beside the (dt-independent) steady-state variables. Same seed for every dt."""
    runs = [simulate(replace(settings, dt=float(dt)), **params) for dt in dts]
    sim_names = [n for n in runs[0].data_vars if n in SIM_VARIABLE_INFO]
    ds = runs[0].drop_vars(sim_names)
    dt = xr.DataArray(np.asarray(dts, dtype=float), dims="dt")
    for name in sim_names:
        ds[name] = xr.concat([r[name] for r in runs], dim=dt)
    ds = ds.assign_coords(dt=dt)
    sim = settings_to_dict(settings)
    sim["dt"] = [float(x) for x in dts]
    ds.attrs["simulation"] = json.dumps(sim)
    return apply_catalogue(ds, title="sde_com time-step study")
