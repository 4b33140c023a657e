"""Time-domain simulation of the linearized Langevin equations du = A u dt + dW, E[dW dWᵀ] = D dt.

The Python face of the Numba kernels (``kernels.py``): it validates settings, builds the one-step maps of
Euler–Maruyama or of the exact discretization (``linear.py``), runs trajectory ensembles in chunks, and
turns per-trajectory sums into estimates with standard errors, compared entry by entry with their
references (PHYSICS.md, "The stochastic picture"). Times are in units of 1/ω_m unless a name says seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from . import kernels
from .gaussian import logneg
from .linear import (
    discrete_moment_covariance,
    discrete_stationary_covariance,
    euler_maruyama_max_dt,
    euler_maruyama_step,
    exact_step,
    lyapunov_covariance_reference,
    moment_covariance,
)

METHODS = ("em", "exact")
INITIAL_STATES = ("steady", "thermal", "zero")
N_JACKKNIFE_GROUPS = 32  # leave-one-group-out jackknife; more groups cost time, not accuracy


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
        ``save_every`` is given, else at every step.
    allow_unstable: run a transient at an operating point without steady state.
    chunk: trajectories per kernel call (results do not depend on it).
    """

    method: str = "exact"
    dt: float = 0.1
    burn_in: float = 0.0
    duration: float = 100.0
    trajectories: int = 100
    seed: int = 0
    initial: str | np.ndarray = "steady"
    save_times: tuple[float, ...] | None = None
    save_every: float | None = None
    traces: int = 0
    allow_unstable: bool = False
    chunk: int = 512

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("dt", "duration"):
            v = getattr(self, name)
            if not _is_real(v) or not v > 0 or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number > 0 (in units of 1/ω_m), got {v!r}")
        if not _is_real(self.burn_in) or not math.isfinite(self.burn_in) or self.burn_in < 0:
            raise ValueError(f"burn_in must be a finite number >= 0 (in units of 1/ω_m), got {self.burn_in!r}")
        for name, low in (("trajectories", 1), ("seed", 0), ("traces", 0), ("chunk", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.seed >= 2**63:
            raise ValueError(f"seed must be < 2**63, got {self.seed!r}")
        if self.traces > self.trajectories:
            raise ValueError(f"traces must be <= trajectories ({self.trajectories}), got {self.traces}")
        if isinstance(self.initial, str):
            if self.initial not in INITIAL_STATES:
                raise ValueError(f"initial must be one of {INITIAL_STATES} or a 6x6 covariance, got {self.initial!r}")
        else:
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
            if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) < 0):
                raise ValueError("save_times must be a non-empty ascending list of times >= 0 (units of 1/ω_m)")
            if t[-1] > self.total_time * (1 + 1e-12):
                raise ValueError(f"save_times must lie within burn_in + duration = {self.total_time:g}")
            object.__setattr__(self, "save_times", tuple(float(x) for x in t))
        if self.save_every is not None:
            v = self.save_every
            if not _is_real(v) or not math.isfinite(v) or not v >= self.dt:
                raise ValueError(f"save_every must be a number >= dt = {self.dt:g} (units of 1/ω_m), got {v!r}")
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


def simulate_point(A: np.ndarray, D: np.ndarray, omega_m: float, n_thermal: float, settings: SimulationSettings,
                   trace_sink: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> dict:
    """Run an ensemble at one operating point (A, D in rad/s) and return estimates beside their references.

    Steady-state mode (no snapshots): ``cov_sim`` from time averages after the burn-in, ``cov_sim_err`` from
    the spread of the per-trajectory averages over independent trajectories, ``cov_ref`` the covariance
    the scheme samples (Lyapunov V for exact, the discrete-Lyapunov V_dt for EM), ``cov`` the continuous V,
    z-scores against ``cov_ref``, E_N with jackknife errors. Transient mode: the same per snapshot time,
    with the moment solution as reference. ``trace_sink(first_trajectory, traces, noises)`` receives
    recorded paths chunk by chunk (else they are returned in memory).
    """
    s = settings
    A_s, D_s = A / omega_m, D / omega_m  # time in units of 1/ω_m: V is unchanged
    stable = bool(np.max(np.linalg.eigvals(A_s).real) < 0)
    if not stable and not (s.transient and s.allow_unstable):
        raise ValueError("the operating point is unstable (no steady state): steady-state estimates are refused; "
                         "a transient (save_times/save_every) may run with allow_unstable = true")
    V_inf = lyapunov_covariance_reference(A_s, D_s) if stable else None
    V0 = initial_covariance(s.initial, V_inf, n_thermal)
    F, L = (np.ascontiguousarray(m) for m in step_maps(A_s, D_s, s.dt, s.method))
    snaps = s.snapshot_steps
    if snaps.size and snaps.max() > s.n_steps:
        raise ValueError("snapshot times beyond the simulated time")
    trace_count = s.traces
    n_traj = s.trajectories
    C0 = np.ascontiguousarray(_factor(V0))
    sum_uu = np.empty((n_traj, 6, 6))
    snapshots = np.empty((n_traj, snaps.size, 6))
    traces, noises = [], []
    n_avg = 0
    for first in range(0, n_traj, s.chunk):
        count = min(s.chunk, n_traj - first)
        u0 = kernels.sample_gaussian(C0, s.seed, first, count, kernels.INITIAL_STREAM)
        n_rec = max(0, min(trace_count - first, count))
        res = kernels.run_ensemble(F, L, u0, s.seed, first, s.n_steps, s.burn_in_steps, snaps, n_rec,
                                   s.trace_every)
        _, chunk_uu, n_avg, chunk_snap, chunk_tr, chunk_noise = res
        sum_uu[first:first + count] = chunk_uu
        snapshots[first:first + count] = chunk_snap
        if n_rec:
            if trace_sink is not None:
                trace_sink(first, chunk_tr, chunk_noise)
            else:
                traces.append(chunk_tr)
                noises.append(chunk_noise)
    out: dict = {"stable": stable, "cov": V_inf, "max_dt_em": euler_maruyama_max_dt(A_s)}
    if s.transient:
        out.update(_transient_estimates(snapshots, A_s, D_s, F, L, V0, snaps, s))
    else:
        out.update(_steady_estimates(sum_uu / n_avg, F, L, V_inf, s))
    if trace_count and trace_sink is None:
        out["trace"] = np.concatenate(traces)
        out["noise"] = np.concatenate(noises)
    return out


def _steady_estimates(per_traj: np.ndarray, F, L, V_inf, s: SimulationSettings) -> dict:
    """V from per-trajectory time averages of u uᵀ (the mean of u is zero), errors from their spread."""
    n = per_traj.shape[0]
    V_sim = per_traj.mean(axis=0)
    err = per_traj.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full((6, 6), np.nan)
    V_ref = discrete_stationary_covariance(F, L) if s.method == "em" else V_inf
    z, zmax = _zscores(V_sim, err, V_ref)
    _, zmax_continuous = _zscores(V_sim, err, V_inf)  # for EM this shows the time-step bias
    groups, weights = _group_means(per_traj, N_JACKKNIFE_GROUPS)
    en, en_err = _jackknife(groups, weights, logneg)
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, zscore=z, zscore_max=zmax,
                zscore_max_continuous=zmax_continuous, logneg_sim=en, logneg_sim_err=en_err,
                logneg_ref=logneg(V_ref), logneg=logneg(V_inf))


def _transient_estimates(snapshots: np.ndarray, A_s, D_s, F, L, V0, steps, s: SimulationSettings) -> dict:
    """V(t) at each snapshot from the ensemble of u(t) uᵀ(t); references: the moment solution."""
    n = snapshots.shape[0]
    outer = snapshots[:, :, :, None] * snapshots[:, :, None, :]  # (traj, time, 6, 6)
    V_sim = outer.mean(axis=0)
    err = outer.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(V_sim.shape, np.nan)
    times = steps * s.dt
    V_moment = np.stack([moment_covariance(A_s, D_s, V0, t) for t in times])
    V_ref = discrete_moment_covariance(F, L, V0, steps) if s.method == "em" else V_moment
    z, zmax = _zscores(V_sim, err, V_ref)
    groups, weights = _group_means(outer, N_JACKKNIFE_GROUPS)
    en = np.empty(times.size)
    en_err = np.empty(times.size)
    for k in range(times.size):
        en[k], en_err[k] = _jackknife(groups[:, k], weights, logneg)
    return dict(cov_sim=V_sim, cov_sim_err=err, cov_ref=V_ref, cov_moment=V_moment, zscore=z, zscore_max=zmax,
                logneg_sim=en, logneg_sim_err=en_err, logneg_ref=np.array([logneg(V) for V in V_moment]),
                time_steps=steps)


# Sweeps ---------------------------------------------------------------------------------------------------

# name: (units, long_name) of the time-domain variables
SIM_VARIABLE_INFO: dict[str, tuple[str, str]] = {
    "cov_sim": ("1", "covariance V estimated from the simulated ensemble"),
    "cov_sim_err": ("1", "standard error of cov_sim (spread over independent trajectories)"),
    "cov_ref": ("1", "covariance the scheme samples: Lyapunov V (exact) or discrete-Lyapunov V_dt (EM)"),
    "cov_moment": ("1", "moment solution V(t) = e^{At}V(0)e^{Aᵀt} + ∫e^{As}De^{Aᵀs}ds of the continuous model"),
    "zscore": ("1", "(cov_sim − cov_ref) / cov_sim_err, entry by entry"),
    "zscore_max": ("1", "largest |zscore| over the 21 independent entries"),
    "zscore_max_continuous": ("1", "largest |cov_sim − V| / cov_sim_err: for EM, the time-step bias in units of σ"),
    "logneg_sim": ("1", "E_N of the simulated covariance (driven mode, mechanics)"),
    "logneg_sim_err": ("1", "jackknife standard error of logneg_sim (over groups of trajectories)"),
    "logneg_ref": ("1", "E_N of the reference: continuous moment solution (transient) or cov_ref (steady)"),
    "max_dt_em": ("1", "largest stable Euler–Maruyama step ω_m·dt (|1 + λ dt| < 1)"),
    "trace": ("1", "recorded quadratures u(t) (xU, yU, xV, yV, q, p), vacuum variance 1/2"),
    "noise": ("1", "noise increment L ξ that entered each recorded state (zero at t = 0)"),
}

SIMULATION_KEYS = ("method", "dt", "burn_in", "duration", "trajectories", "seed", "initial", "save_times",
                   "save_every", "traces", "allow_unstable", "chunk")


def _point_parameters(values: dict, dims: list[str], index: tuple[int, ...]) -> dict:
    return {k: (v[index[dims.index(k)]] if k in dims else v[0]) for k, v in values.items()}


def simulate(settings: SimulationSettings, *, trace_sink: Callable | None = None, **params) -> xr.Dataset:
    """Steady-state sweep (``sde_com.sweep``) plus a time-domain ensemble at every point and stable branch.

    ``params`` are sweep parameters as in ``sweep``. The same seed is used at every point (common random
    numbers: differences between points are not blurred by independent noise). Unstable branches get NaN
    unless the run is a transient with ``allow_unstable``. Recorded traces are returned in the Dataset, or,
    with ``trace_sink(point_index, branch, first_trajectory, traces, noises)``, handed over chunk by chunk
    (``io.write_simulation`` uses this to stream them to disk).
    """
    from .device import Device
    from .model import operating_points
    from .sweep import _grid, sweep

    s = settings
    values, dims, shape, _ = _grid(params)
    if (s.transient or s.traces) and "omega_m" in dims:
        raise ValueError("omega_m cannot be swept in a run with snapshots or traces: their time axis is in seconds")
    ds = sweep(store_cov=True, revival=False, **params)
    n_b = ds.sizes["branch"]
    steps = s.snapshot_steps if s.transient else np.zeros(0, dtype=np.int64)
    n_t = steps.size
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
    n_trace_t = s.n_steps // s.trace_every + 1
    if s.traces and trace_sink is None:
        res["trace"] = np.full((*shape, n_b, s.traces, n_trace_t, 6), np.nan)
        res["noise"] = np.full((*shape, n_b, s.traces, n_trace_t, 6), np.nan)
    omega_m = float(values["omega_m"][0])
    for flat, index in enumerate(np.ndindex(*shape)):
        p = _point_parameters(values, dims, index)
        device = Device(**{k: float(v) for k, v in p.items() if k not in ("detuning", "direction")})
        for point in operating_points(device, float(p["detuning"]), str(p["direction"])):
            b = point.branch
            if not point.stable and not (s.transient and s.allow_unstable):
                continue
            at = (*index, b)
            sink = None
            if s.traces:
                if trace_sink is not None:
                    def sink(first, tr, nz, flat=flat, b=b):
                        trace_sink(flat, b, first, tr, nz)
                else:
                    def sink(first, tr, nz, at=at):
                        res["trace"][at][first:first + tr.shape[0]] = tr
                        res["noise"][at][first:first + tr.shape[0]] = nz
            out = simulate_point(point.drift, point.diffusion, device.omega_m, device.n_thermal, s, trace_sink=sink)
            for name in res:
                if name in out:
                    res[name][at] = out[name]
    bdims = (*dims, "branch")
    tdims = ("time",) if s.transient else ()
    for name, arr in res.items():
        if name in ("trace", "noise"):
            ds[name] = ((*bdims, "trajectory", "time", "quadrature"), arr)
            continue
        t = tdims if name not in ("max_dt_em", "zscore_max_continuous") else ()
        ds[name] = ((*bdims, *t, "row", "col") if name.startswith(("cov", "zscore")) and not name.startswith(
            "zscore_max") else (*bdims, *t), arr)
    if s.transient or s.traces:
        t_steps = steps if s.transient else np.arange(0, s.n_steps + 1, s.trace_every)
        ds = ds.assign_coords(time=("time", t_steps * s.dt / omega_m))
        ds["time"].attrs.update(units="s", long_name="time since the start of the run")
    if s.traces:
        ds = ds.assign_coords(trajectory=np.arange(s.traces), quadrature=["xU", "yU", "xV", "yV", "q", "p"])
        ds["trajectory"].attrs.update(units="1", long_name="trajectory index (keys its random stream with the seed)")
        ds["quadrature"].attrs.update(units="", long_name="quadrature, vacuum variance 1/2")
    for name, (units, long_name) in SIM_VARIABLE_INFO.items():
        if name in ds:
            ds[name].attrs.update(units=units, long_name=long_name)
    ds.attrs["simulation"] = json.dumps(settings_to_dict(s))
    return ds


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
    dt = xr.DataArray(np.asarray(dts, dtype=float), dims="dt", attrs=dict(units="1", long_name="time step ω_m·dt"))
    for name in sim_names:
        ds[name] = xr.concat([r[name] for r in runs], dim=dt)
    ds = ds.assign_coords(dt=dt)
    sim = settings_to_dict(settings)
    sim["dt"] = [float(x) for x in dts]
    ds.attrs["simulation"] = json.dumps(sim)
    return ds
