"""Conditional trajectories and the Kalman filter of records (``physics.measurement``, Eqs. (M1)–(M6)).

``conditional_simulate`` evolves, per trajectory, the true state, its detectors' record and the filter's
estimate (the exact discretization of the system and its record, ``record_step``), and checks the ensemble's
estimation error against the filter's covariance and the innovations' whiteness. ``kalman_filter`` runs the same
filter over a given record (a run's own, or a laboratory's in the documented normalisation). Times are in units
of 1/ω_ref (the time rule); the record is that of the scaled time τ = ω_ref t (its noise has variance dτ).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.physics.linear import psd_sqrt
from sde_com.physics.measurement import (
    at_step,
    channels,
    check_measures,
    filter_gains,
    measurement_matrices,
    record_step,
)
from sde_com.physics.model import points
from sde_com.physics.system import LinearSystem, require
from sde_com.results.catalogue import apply_catalogue, set_time_reference, time_coordinates
from sde_com.results.sweep import DEFAULT_SYSTEM, as_system
from sde_com.simulation.ensemble import initial_covariance

MAX_STEPS = 10_000_000  # steps of one conditional run (its gains are kept per step: d·m floats each)


def _model(measures, system: LinearSystem, params: Mapping, dt: float, initial, branch: int):
    """The discretized model of ``system`` at ``params`` (one point), its detectors and the filter's start."""
    require(system, "output_ports", "conditional trajectories")
    if any(isinstance(v, (list, tuple)) for v in params.values()):
        raise UserError("conditional trajectories run at one operating point: give every parameter as a scalar")
    params = system.resolve(params)
    ports = system.output_ports(params)
    measures = check_measures(measures, system.modes, ports)
    chans = channels(measures, system.modes)
    ops = points(system, params)
    if not 0 <= branch < len(ops):
        raise UserError(f"branch = {branch} does not exist: this operating point has {len(ops)} branch(es)")
    op = ops[branch]
    w = system.reference_rate(params)
    C, G = measurement_matrices(chans, [ports[system.modes[c.mode]] for c in chans], len(system.modes))
    A, D, C, G = op.drift / w, op.diffusion / w, C / math.sqrt(w), G / math.sqrt(w)  # the scaled time τ = ω_ref t
    V0 = initial_covariance(initial, op.cov, lambda: system.thermal_covariance(params), system.dimension)
    Phi, H, Q = record_step(A, D, C, G, dt)
    return dict(Phi=Phi, H=H, Q=Q, V0=np.asarray(V0, dtype=float), omega_ref=w, chans=chans, system=system)


def _check_times(dt: float, duration: float, save_every: float | None) -> tuple[int, int]:
    for name, value in (("dt", dt), ("duration", duration)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} must be a finite time > 0 (in 1/ω_ref), got {value!r}")
    n_steps = round(duration / dt)
    if not 1 <= n_steps <= MAX_STEPS:
        raise UserError(f"duration/dt = {duration / dt:g} steps; at least 1 and at most {MAX_STEPS}")
    if save_every is not None and (isinstance(save_every, bool) or not isinstance(save_every, (int, float))
                                   or not math.isfinite(save_every)):
        raise UserError(f"save_every must be a finite time (in 1/ω_ref), got {save_every!r}")
    stride = 1 if save_every is None else round(save_every / dt)
    if stride < 1:
        raise UserError(f"save_every must be at least dt, got {save_every!r}")
    return n_steps, stride


UNIT_TRAJECTORIES = 256  # trajectories of one unit of work of a scenario's conditional run (Dask, resume)


def prepare_conditional(measures: Sequence[Mapping], system: LinearSystem, params: Mapping, *, dt: float,
                        duration: float, initial="steady", save_every: float | None = None, branch: int = 0) -> dict:
    """Everything the units of a conditional run share (made once, on the client): the discretized system and
    record (``record_step``), the filter's gains, whitening and covariance (``filter_gains``), the saved steps."""
    n_steps, stride = _check_times(dt, duration, save_every)
    model = _model(measures, system, params, float(dt), initial, branch)
    Phi, H, Q, V0 = model["Phi"], model["H"], model["Q"], model["V0"]
    K, Om, P = filter_gains(Phi, H, Q, V0, n_steps)
    W = np.array([np.linalg.inv(psd_sqrt(o)) for o in Om])  # whitening: Ω_n^(−1/2)
    saved = np.unique(np.r_[np.arange(0, n_steps + 1, stride), n_steps])
    return {**model, "K": K, "W": W, "P": P, "L": psd_sqrt(Q), "V0_factor": psd_sqrt(V0), "saved": saved,
            "stride": stride, "n_steps": n_steps, "dt": float(dt)}


CHUNKS = 16  # a unit's trajectories in this many chunks, run on threads and summed in chunk order: the same
# sums (bitwise) whatever the number of threads


def run_conditional_unit(model: dict, seed: int, first: int, n: int, traces: int) -> dict:
    """Trajectories first .. first + n − 1 (``kernels.filtering.conditional_chunk`` in CHUNKS chunks on the
    Numba thread count's threads): their sums, and the trace, estimate and record of those among the first
    ``traces`` of the run."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from sde_com.kernels.filtering import conditional_chunk
    from sde_com.random.normals import INITIAL_STREAM, sample_gaussian

    d, m = model["Phi"].shape[0], model["H"].shape[0]
    n_snap = model["saved"].size
    traced = max(0, min(traces - first, n))
    out = {"trace": np.zeros((traced, n_snap, d)), "estimate": np.zeros((traced, n_snap, d)),
           "record": np.zeros((traced, n_snap - 1, m))}
    u0 = sample_gaussian(model["V0_factor"], np.int64(seed), np.int64(first), np.int64(n), INITIAL_STREAM)
    chunks = min(CHUNKS, n)
    sums, squares, innovations = (np.zeros((chunks, n_snap, d, d)), np.zeros((chunks, n_snap, d, d)),
                                  np.zeros((chunks, m, 3)))

    def chunk(c: int) -> None:
        conditional_chunk(np.int64(seed), np.int64(first), np.int64(c * n // chunks), np.int64((c + 1) * n // chunks),
                          u0, model["Phi"], model["H"], model["L"], model["K"], model["W"], np.int64(model["n_steps"]),
                          np.int64(model["stride"]), np.int64(traced), sums[c], squares[c], innovations[c],
                          out["trace"], out["estimate"], out["record"])

    with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as pool:
        list(pool.map(chunk, range(chunks)))
    out["err_sum"], out["err_sq"], out["innovation"] = (np.zeros((n_snap, d, d)), np.zeros((n_snap, d, d)),
                                                        np.zeros((m, 3)))
    for c in range(chunks):  # in chunk order
        out["err_sum"] += sums[c]
        out["err_sq"] += squares[c]
        out["innovation"] += innovations[c]
    return out


def conditional_dataset(model: dict, system: LinearSystem, trajectories: int, sums: dict) -> xr.Dataset:
    """The Dataset of a conditional run from its units' summed results (``run_conditional_unit``, added in unit
    order; traces concatenated)."""
    n, n_steps, saved, m = trajectories, model["n_steps"], model["saved"], model["H"].shape[0]
    mean = sums["err_sum"] / n
    err = np.sqrt(np.maximum(sums["err_sq"] / n - mean**2, 0.0) / (n - 1))
    filt = at_step(model["P"], saved)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, (mean - filt) / err, 0.0)
    innovation, count = sums["innovation"], n * n_steps
    var = innovation[:, 1] / count - (innovation[:, 0] / count) ** 2
    lag1 = innovation[:, 2] / (n * (n_steps - 1)) if n_steps > 1 else np.full(m, np.nan)
    quad, traces = list(system.quadratures), sums["trace"].shape[0]
    data = {"cov_filter": (("time", "row", "col"), filt), "cov_error": (("time", "row", "col"), mean),
            "cov_error_err": (("time", "row", "col"), err), "zscore_filter": (("time", "row", "col"), z),
            "innovation_variance": ("channel", var),
            "innovation_variance_err": ("channel", np.full(m, math.sqrt(2 / count))),
            "innovation_lag1": ("channel", lag1),
            "innovation_lag1_err": ("channel", np.full(m, 1 / math.sqrt(max(n * (n_steps - 1), 1))))}
    if traces:
        data |= {"trace": (("trajectory", "time", "quadrature"), sums["trace"]),
                 "estimate": (("trajectory", "time", "quadrature"), sums["estimate"]),
                 "record": (("trajectory", "interval", "channel"), sums["record"])}
    chans = model["chans"]
    ds = xr.Dataset(data, coords={
        **time_coordinates(saved * model["dt"], model["omega_ref"]), "row": quad, "col": quad, "quadrature": quad,
        "channel": np.arange(m, dtype=np.int32), "channel_mode": ("channel", [system.modes[c.mode] for c in chans]),
        "channel_theta": ("channel", [c.theta for c in chans]),
        "channel_efficiency": ("channel", [c.efficiency for c in chans]),
        **({"trajectory": np.arange(traces, dtype=np.int32), "interval": np.arange(saved.size - 1, dtype=np.int32)}
           if traces else {})})
    set_time_reference(ds, model["omega_ref"])
    ds = apply_catalogue(ds, title=f"sde_com conditional trajectories of {system.name}", system=system)
    ds.attrs.update(dt=model["dt"], trajectories=int(trajectories), save_stride=int(model["stride"]))
    return ds


def add_unit(sums: dict | None, unit: dict) -> dict:
    """Units' results added in order (sums) and their traces concatenated."""
    if sums is None:
        return {k: np.array(v) for k, v in unit.items()}
    out = {k: sums[k] + unit[k] for k in ("err_sum", "err_sq", "innovation")}
    out.update({k: np.concatenate([sums[k], unit[k]]) for k in ("trace", "estimate", "record")})
    return out


def conditional_simulate(measures: Sequence[Mapping], *, dt: float, duration: float, trajectories: int,
                         seed: int = 0, initial="steady", save_every: float | None = None, traces: int = 0,
                         branch: int = 0, system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> xr.Dataset:
    """Conditional trajectories of ``system`` at one operating point watched by the detectors ``measures``
    (``[[measure]]``'s keys): each trajectory's true state u, its record ΔY and the Kalman filter's estimate x̂
    (Eqs. (M5)–(M6), exact for the step dt; the filter starts from x̂ = 0 with the initial state's covariance,
    ``initial``: 'steady', 'thermal', 'zero' or a matrix). Times in 1/ω_ref. Writes ``cov_filter`` (the filter's
    P at the saved times), the ensemble's ``cov_error`` with its error and ``zscore_filter``, and the whitened
    innovations' variance and lag-1 autocorrelation with their errors; with ``traces`` ≥ 1, ``trace`` (u),
    ``estimate`` (x̂) and ``record`` (ΔY summed over each save interval) of the first ``traces`` trajectories.
    Run in units of UNIT_TRAJECTORIES trajectories added in order, as a scenario's run is: the same bits."""
    system = as_system(system)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise UserError(f"seed must be an integer from 0 to 2**63 − 1, got {seed!r}")
    if isinstance(trajectories, bool) or not isinstance(trajectories, int) or trajectories < 2:
        raise UserError(f"trajectories must be an integer >= 2 (the error bars need two), got {trajectories!r}")
    if isinstance(traces, bool) or not isinstance(traces, int) or not 0 <= traces <= trajectories:
        raise UserError(f"traces must be an integer from 0 to trajectories, got {traces!r}")
    model = prepare_conditional(measures, system, params, dt=dt, duration=duration, initial=initial,
                                save_every=save_every, branch=branch)
    sums = None
    for first in range(0, trajectories, UNIT_TRAJECTORIES):
        sums = add_unit(sums, run_conditional_unit(model, seed, first, min(UNIT_TRAJECTORIES, trajectories - first),
                                                   traces))
    ds = conditional_dataset(model, system, trajectories, sums)
    ds.attrs["seed"] = int(seed)
    return ds


def kalman_filter(record, dt: float, measures: Sequence[Mapping], *, initial="steady", branch: int = 0,
                  system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> dict[str, np.ndarray]:
    """The Kalman filter (Eq. (M6)) of ``system`` and its detectors over a given record: ``record`` (…, steps,
    channels) of ΔY per step dt (1/ω_ref) in the scaled time's normalisation (``conditional_simulate``'s record
    at save_every = dt). Returns ``estimate`` (…, steps + 1, 2N: x̂ before each step and after the last),
    ``cov_filter`` (k + 1, 2N, 2N: the filter's P until it settles at step k ≤ steps, constant after) and
    ``innovation`` (…, steps, channels): (ΔY − H x̂)/√dt, of unit variance per channel when the model is right
    (for dt small against the system's rates)."""
    from sde_com.kernels.filtering import filter_record

    system = as_system(system)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
        raise UserError(f"dt must be a finite time > 0 (in 1/ω_ref), got {dt!r}")
    record = np.asarray(record)
    if record.dtype.kind not in "fiu":
        raise UserError(f"record must hold numbers, got {record.dtype}")
    record = record.astype(float)
    if record.size == 0:
        raise UserError(f"record has no samples (shape {record.shape})")
    model = _model(measures, system, params, float(dt), initial, branch)
    Phi, H, Q, V0 = model["Phi"], model["H"], model["Q"], model["V0"]
    if record.ndim < 2 or record.shape[-1] != H.shape[0]:
        raise UserError(f"record must be (..., steps, channels) with {H.shape[0]} channel(s) (the detectors'), "
                        f"got shape {record.shape}")
    if not np.all(np.isfinite(record)):
        raise UserError("record holds NaN or infinite values")
    flat = record.reshape(-1, *record.shape[-2:])
    K, _, P = filter_gains(Phi, H, Q, V0, flat.shape[1])
    estimate, innovation = filter_record(Phi, H, K, flat)
    if not (np.all(np.isfinite(estimate)) and np.all(np.isfinite(innovation))):
        raise UserError("the record's values overflow the filter (its estimate or innovations are not finite): "
                        "check its normalisation (docs: records and their normalisation)")
    lead = record.shape[:-2]
    return {"estimate": estimate.reshape(*lead, *estimate.shape[1:]), "cov_filter": P,
            "innovation": innovation.reshape(*lead, *innovation.shape[1:]) / math.sqrt(dt)}


def filter_record_file(records: xr.Dataset, measures: Sequence[Mapping], *, initial="steady", branch: int = 0,
                       system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> xr.Dataset:
    """``kalman_filter`` over a record file's ``record`` (what ``sde-com filter`` writes): (interval, channel),
    (time, channel) or (trajectory, …, channel), in the scaled time's normalisation, with a uniform ``time``
    coordinate in seconds (for ``interval`` records, the saved times around them, as ``conditional_simulate``
    writes). Returns ``estimate`` (…, time, quadrature), ``cov_filter`` (time, row, col), ``innovation``
    (…, interval, channel) = (ΔY − H x̂)/√Δτ and the innovations' variance and lag-1 autocorrelation."""
    system = as_system(system)
    if "record" not in records:
        raise UserError(f"the record file has no variable 'record' (it has {sorted(records.data_vars)})")
    rec = records["record"]
    step = rec.dims[-2] if rec.ndim >= 2 else None
    if rec.ndim not in (2, 3) or rec.dims[-1] != "channel" or step not in ("time", "interval") or (
            rec.ndim == 3 and rec.dims[0] != "trajectory"):
        raise UserError(f"record must have the dims (time or interval, channel) or (trajectory, time or interval, "
                        f"channel), got {rec.dims}")
    if "time" not in records.coords:
        raise UserError("the record file has no 'time' coordinate (seconds)")
    if records["time"].dtype.kind not in "fiu" or records["time"].attrs.get("units", "s") not in ("s", "seconds"):
        raise UserError(f"the record file's time must be in seconds (units = 's'), got units "
                        f"{records['time'].attrs.get('units', records['time'].encoding.get('units'))!r}")
    times = np.asarray(records["time"].values, dtype=float)
    if times.size < 2 or not np.all(np.isfinite(times)):
        raise UserError("the record file's time coordinate must hold at least two finite times")
    spacing = (times[-1] - times[0]) / (times.size - 1)
    # uniform to rounding: times written as k·dt (or (k·dt)/ω) carry errors of a few ulp of the largest time
    slack = 1e-9 * abs(spacing) + 16 * np.finfo(float).eps * np.abs(times).max()
    if not (spacing > 0 and np.abs(times - (times[0] + spacing * np.arange(times.size))).max() <= slack):
        raise UserError("the record file's time axis is not uniform (a Kalman filter of one step dt needs one)")
    expected = times.size - 1 if step == "interval" else times.size
    if rec.sizes[step] != expected:
        raise UserError(f"record has {rec.sizes[step]} {step} samples for {times.size} times")
    if rec.dtype.kind not in "fiu":
        raise UserError(f"record must hold numbers, got {rec.dtype}")
    omega_ref = system.reference_rate(system.resolve(params))
    dt = float(spacing) * omega_ref
    values = np.asarray(rec.values, dtype=float)
    out = kalman_filter(values, dt, measures, initial=initial, branch=branch, system=system, **params)
    lead = ("trajectory",) if rec.ndim == 3 else ()
    start = times[0] * omega_ref
    scaled = start + dt * np.arange(values.shape[-2] + 1)
    quad = list(system.quadratures)
    nu = out["innovation"]
    settled = out["cov_filter"].shape[0]
    data = {"estimate": ((*lead, "time", "quadrature"), out["estimate"]),
            "cov_filter": (("filter_time", "row", "col"), out["cov_filter"]),
            "innovation": ((*lead, "interval", "channel"), out["innovation"]),
            "innovation_variance": ("channel", np.mean(out["innovation"] ** 2, axis=tuple(range(nu.ndim - 1)))),
            "innovation_variance_err": ("channel", np.full(nu.shape[-1], math.sqrt(2 / (nu.size / nu.shape[-1])))),
            "innovation_lag1": ("channel", np.mean(out["innovation"][..., 1:, :] * out["innovation"][..., :-1, :],
                                                   axis=tuple(range(nu.ndim - 1)))),
            "innovation_lag1_err": ("channel", np.full(nu.shape[-1], 1 / math.sqrt(nu.size / nu.shape[-1])))}
    if not all(np.all(np.isfinite(v[1])) for v in data.values()):
        raise UserError("the record's values overflow the filter's statistics (the innovations' variance is not "
                        "finite): check its normalisation (docs: records and their normalisation)")
    ds = xr.Dataset(data, coords={**time_coordinates(scaled, omega_ref), "row": quad, "col": quad,
                                  "filter_time": ("filter_time", scaled[:settled] / omega_ref),
                                  "quadrature": quad, "channel": np.arange(nu.shape[-1], dtype=np.int32),
                                  "interval": np.arange(values.shape[-2], dtype=np.int32),
                                  **({"trajectory": np.arange(values.shape[0], dtype=np.int32)} if lead else {})})
    set_time_reference(ds, omega_ref)
    ds = apply_catalogue(ds, title=f"sde_com Kalman filter of a record, {system.name}", system=system)
    ds.attrs["measure"] = json.dumps([dict(m) for m in measures])
    return ds
