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
from sde_com.physics import feedback as fb
from sde_com.physics.linear import psd_sqrt
from sde_com.physics.measurement import (
    at_step,
    channels,
    check_measures,
    filter_gains,
    measurement_matrices,
    riccati_path,
)
from sde_com.physics.model import points
from sde_com.physics.system import LinearSystem, require
from sde_com.results.catalogue import apply_catalogue, set_time_reference, time_coordinates
from sde_com.results.sweep import DEFAULT_SYSTEM, as_system
from sde_com.simulation.ensemble import initial_covariance
from sde_com.simulation.schemes import get_scheme

MAX_STEPS = 10_000_000  # steps of one conditional run (its gains are kept per step: d·m floats each)


def _model(measures, system: LinearSystem, params: Mapping, dt: float, initial, branch: int, method: str = "exact",
           feedback: Mapping | None = None):
    """The discretized model of ``system`` at ``params`` (one point) by the scheme ``method``, its detectors, the
    filter's start and the feedback loop (a ``feedback.check_feedback`` table, or None)."""
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
    scheme = get_scheme(method)
    if feedback is None:  # a loop may stabilise what is unstable alone: checked with its gain (``_loop``)
        scheme.check_dt(A, dt)
    Phi, H, Q = scheme.record_step(A, D, C, G, dt)
    model = dict(Phi=Phi, H=H, Q=Q, V0=np.asarray(V0, dtype=float), omega_ref=w, chans=chans, system=system,
                 continuous=(A, D, C, G), method=method)
    return model | _loop(feedback, scheme, A, C, dt, system, H.shape[0])


def _loop(feedback: Mapping | None, scheme, A, C, dt: float, system: LinearSystem, m: int) -> dict:
    """The feedback force's step matrices F_u = −G_u L, F_y = −G_y L (``feedback.control_step``) and its gain L
    (the regulator of Eq. (F4), or the given one), checked for a stable loop; zeros without feedback."""
    d = A.shape[0]
    if feedback is None:
        return dict(Fu=np.zeros((d, d)), Fy=np.zeros((m, d)), closed=False)
    B = fb.force_matrix(feedback["rows"], d)
    if feedback["control"] == "lqg":
        L = fb.lqg_gain(A, B, fb.target_weight(feedback["target"], system.modes), feedback["effort"])
    else:
        L = np.asarray(feedback["gain"], dtype=float)
    rate = fb.loop_rate(A, B, L)
    if rate >= 0:
        raise UserError(f"feedback.gain destabilises the loop: A − B L grows at {rate:.4g} ω_ref (give a gain "
                        "whose closed loop is stable)")
    Gu, Gy = scheme.control_step(A, C, B, dt)
    Fu, Fy = -Gu @ L, -Gy @ L
    Phi = scheme.step(A, np.zeros_like(A), dt)[0]
    if np.abs(np.linalg.eigvals(Phi + Fu)).max() >= 1:  # the estimate's loop, one step (the error's: the filter)
        raise UserError(f"dt = {dt:g}/ω_ref is too long a step for the feedback loop (its one-step map is "
                        "unstable): give a smaller dt")
    return dict(Fu=Fu, Fy=Fy, closed=True, gain=L, forces=list(feedback["force"]))


def _check_times(dt: float, duration: float, save_every: float | None) -> tuple[int, int]:
    dt, duration = _check_time("dt", dt), _check_time("duration", duration)
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
                        duration: float, initial="steady", save_every: float | None = None, branch: int = 0,
                        method: str = "exact", feedback: Mapping | None = None) -> dict:
    """Everything the units of a conditional run share (made once, on the client): the discretized system and
    record (``record_step``), the filter's gains, whitening and covariance (``filter_gains``), the saved steps."""
    n_steps, stride = _check_times(dt, duration, save_every)
    model = _model(measures, system, params, float(dt), initial, branch, method, feedback)
    Phi, H, Q, V0 = model["Phi"], model["H"], model["Q"], model["V0"]
    K, Om, P = filter_gains(Phi, H, Q, V0, n_steps)
    W = np.array([np.linalg.inv(psd_sqrt(o)) for o in Om])  # whitening: Ω_n^(−1/2)
    saved = np.unique(np.r_[np.arange(0, n_steps + 1, stride), n_steps])
    loop = {"moments": fb.loop_moments(Phi, H, Q, K, model["Fu"], V0, saved)} if model["closed"] else {}
    return {**model, "K": K, "W": W, "P": P, "L": psd_sqrt(Q), "V0_factor": psd_sqrt(V0), "saved": saved,
            "stride": stride, "n_steps": n_steps, "dt": float(dt), **loop}


SUMMED = ("err_sum", "err_sq", "state_sum", "state_sq", "innovation")  # a unit's sums, added in unit order


def summed_shapes(d: int, m: int, n_snap: int) -> dict[str, tuple[int, ...]]:
    """The shapes of a unit's sums (``SUMMED``)."""
    return {"err_sum": (n_snap, d, d), "err_sq": (n_snap, d, d), "state_sum": (n_snap, d, d),
            "state_sq": (n_snap, d, d), "innovation": (m, 3)}


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
    shapes = summed_shapes(d, m, n_snap)
    parts = {k: np.zeros((chunks, *shape)) for k, shape in shapes.items()}

    def chunk(c: int) -> None:
        conditional_chunk(np.int64(seed), np.int64(first), np.int64(c * n // chunks), np.int64((c + 1) * n // chunks),
                          u0, model["Phi"], model["H"], model["L"], model["K"], model["W"], model["Fu"], model["Fy"],
                          bool(model["closed"]), np.int64(model["n_steps"]), np.int64(model["stride"]),
                          np.int64(traced), parts["err_sum"][c], parts["err_sq"][c], parts["state_sum"][c],
                          parts["state_sq"][c], parts["innovation"][c], out["trace"], out["estimate"], out["record"])

    with ThreadPoolExecutor(max_workers=numba.get_num_threads()) as pool:
        list(pool.map(chunk, range(chunks)))
    for k, shape in shapes.items():
        out[k] = np.zeros(shape)
        for c in range(chunks):  # in chunk order
            out[k] += parts[k][c]
    return out


def conditional_dataset(model: dict, system: LinearSystem, trajectories: int, sums: dict) -> xr.Dataset:
    """The Dataset of a conditional run from its units' summed results (``run_conditional_unit``, added in unit
    order; traces concatenated)."""
    n, n_steps, saved, m = trajectories, model["n_steps"], model["saved"], model["H"].shape[0]
    mean = sums["err_sum"] / n
    err = np.sqrt(np.maximum(sums["err_sq"] / n - mean**2, 0.0) / (n - 1))
    filt = at_step(model["P"], saved)
    continuous = riccati_path(*model["continuous"], model["V0"], saved * model["dt"])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, (mean - filt) / err, 0.0)
        z_continuous = np.where(err > 0, (mean - continuous) / err, 0.0)
    innovation, count = sums["innovation"], n * n_steps
    var = innovation[:, 1] / count - (innovation[:, 0] / count) ** 2
    lag1 = innovation[:, 2] / (n * (n_steps - 1)) if n_steps > 1 else np.full(m, np.nan)
    quad, traces = list(system.quadratures), sums["trace"].shape[0]
    data = {"cov_filter": (("time", "row", "col"), filt), "cov_error": (("time", "row", "col"), mean),
            "cov_error_err": (("time", "row", "col"), err), "zscore_filter": (("time", "row", "col"), z),
            "cov_filter_continuous": (("time", "row", "col"), continuous),
            "zscore_filter_continuous": (("time", "row", "col"), z_continuous),
            "innovation_variance": ("channel", var),
            "innovation_variance_err": ("channel", np.full(m, math.sqrt(2 / count))),
            "innovation_lag1": ("channel", lag1),
            "innovation_lag1_err": ("channel", np.full(m, 1 / math.sqrt(max(n * (n_steps - 1), 1))))}
    if traces:
        data |= {"trace": (("trajectory", "time", "quadrature"), sums["trace"]),
                 "estimate": (("trajectory", "time", "quadrature"), sums["estimate"]),
                 "record": (("trajectory", "interval", "channel"), sums["record"])}
    if model["closed"]:
        data |= _loop_variables(model, sums, n, traces)
    chans = model["chans"]
    ds = xr.Dataset(data, coords={
        **time_coordinates(saved * model["dt"], model["omega_ref"]), "row": quad, "col": quad, "quadrature": quad,
        "channel": np.arange(m, dtype=np.int32), "channel_mode": ("channel", [system.modes[c.mode] for c in chans]),
        "channel_theta": ("channel", [c.theta for c in chans]),
        "channel_efficiency": ("channel", [c.efficiency for c in chans]),
        **({"trajectory": np.arange(traces, dtype=np.int32), "interval": np.arange(saved.size - 1, dtype=np.int32)}
           if traces else {}), **({"force": model["forces"]} if model["closed"] else {})})
    set_time_reference(ds, model["omega_ref"])
    ds = apply_catalogue(ds, title=f"sde_com conditional trajectories of {system.name}", system=system)
    ds.attrs.update(dt=model["dt"], trajectories=int(trajectories), save_stride=int(model["stride"]))
    return ds


def _loop_variables(model: dict, sums: dict, n: int, traces: int) -> dict:
    """The closed loop's ensemble (E[u uᵀ] over the trajectories: the state has zero mean) against its moment
    solution (``feedback.loop_moments``), and the force −L x̂ of the traced trajectories."""
    mean = sums["state_sum"] / n
    err = np.sqrt(np.maximum(sums["state_sq"] / n - mean**2, 0.0) / (n - 1))
    moments = model["moments"]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, (mean - moments) / err, 0.0)
    out = {"cov_feedback_sim": (("time", "row", "col"), mean), "cov_feedback_sim_err": (("time", "row", "col"), err),
           "cov_feedback_moment": (("time", "row", "col"), moments), "zscore_feedback": (("time", "row", "col"), z)}
    if traces:
        out["feedback_force"] = (("trajectory", "time", "force"), -sums["estimate"] @ model["gain"].T)
    return out


def add_unit(sums: dict | None, unit: dict) -> dict:
    """Units' results added in order (sums) and their traces concatenated."""
    if sums is None:
        return {k: np.array(v) for k, v in unit.items()}
    out = {k: sums[k] + unit[k] for k in SUMMED}
    out.update({k: np.concatenate([sums[k], unit[k]]) for k in ("trace", "estimate", "record")})
    return out


def conditional_simulate(measures: Sequence[Mapping], *, dt: float, duration: float, trajectories: int,
                         seed: int = 0, initial="steady", save_every: float | None = None, traces: int = 0,
                         branch: int = 0, method: str = "exact", feedback: Mapping | None = None,
                         system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> xr.Dataset:
    """Conditional trajectories of ``system`` at one operating point watched by the detectors ``measures``
    (``[[measure]]``'s keys): each trajectory's true state u, its record ΔY and the Kalman filter's estimate x̂
    (Eqs. (M5)–(M6), exact for the step dt; the filter starts from x̂ = 0 with the initial state's covariance,
    ``initial``: 'steady', 'thermal', 'zero' or a matrix). Times in 1/ω_ref. Writes ``cov_filter`` (the filter's
    P at the saved times), the ensemble's ``cov_error`` with its error and ``zscore_filter``, the continuous
    Riccati solution (M4) from the same start ``cov_filter_continuous`` and ``zscore_filter_continuous``, the whitened
    innovations' variance and lag-1 autocorrelation with their errors; with ``traces`` ≥ 1, ``trace`` (u),
    ``estimate`` (x̂) and ``record`` (ΔY summed over each save interval) of the first ``traces`` trajectories.
    ``method``: 'exact' or 'em' (the scheme of the state and its record). ``feedback``: a table of
    ``[feedback]``'s keys (a force −L x̂ on the estimate, Eqs. (F1)–(F4)): adds the closed loop's ensemble
    ``cov_feedback_sim`` against its moment solution ``cov_feedback_moment`` (``zscore_feedback``), its
    ``feedback_gain`` and, with traces, ``feedback_force``.
    Run in units of UNIT_TRAJECTORIES trajectories added in order, as a scenario's run is: the same bits."""
    system = as_system(system)
    loop = None if feedback is None else fb.check_feedback(feedback, system.modes, system.quadratures)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise UserError(f"seed must be an integer from 0 to 2**63 − 1, got {seed!r}")
    if isinstance(trajectories, bool) or not isinstance(trajectories, int) or trajectories < 2:
        raise UserError(f"trajectories must be an integer >= 2 (the error bars need two), got {trajectories!r}")
    if isinstance(traces, bool) or not isinstance(traces, int) or not 0 <= traces <= trajectories:
        raise UserError(f"traces must be an integer from 0 to trajectories, got {traces!r}")
    model = prepare_conditional(measures, system, params, dt=dt, duration=duration, initial=initial,
                                save_every=save_every, branch=branch, method=method, feedback=loop)
    sums = None
    for first in range(0, trajectories, UNIT_TRAJECTORIES):
        sums = add_unit(sums, run_conditional_unit(model, seed, first, min(UNIT_TRAJECTORIES, trajectories - first),
                                                   traces))
    ds = conditional_dataset(model, system, trajectories, sums)
    ds.attrs["seed"] = int(seed)
    return ds


FILTER_BLOCK_BYTES = 32 * 2**20  # record, estimate and innovation of one block in memory (a streamed filter's
# memory is a few blocks: the one filtered, the one being written, the one read)
FILTER_BLOCK_STEPS = 1 << 16  # steps of one block (fewer trajectories per block rather than fewer steps)
FILTER_MAX_GAINS = 1 << 19  # steps of gains and P kept until the filter settles (d = 4, one channel: 88 MB)


def _filter_blocks(n_traj: int, n_steps: int, d: int, m: int):
    """(i0, i1, t0, t1): blocks of trajectories × steps of about FILTER_BLOCK_BYTES, trajectory blocks outermost
    and steps in order inside each (the filter runs forward in time)."""
    steps = min(n_steps, FILTER_BLOCK_STEPS)
    per_trajectory = 8 * steps * (2 * m + d)
    size = max(1, min(n_traj, FILTER_BLOCK_BYTES // per_trajectory))
    for i0 in range(0, n_traj, size):
        for t0 in range(0, n_steps, steps):
            yield i0, min(i0 + size, n_traj), t0, min(t0 + steps, n_steps)


def _check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise UserError(f"workers must be an integer >= 1, got {workers!r}")
    return int(workers)


OVERFLOW = ("the record's values overflow the filter (its estimate or innovations are not finite): check its "
            "normalisation (docs: records and their normalisation)")


def _run_filter(model: dict, n_traj: int, n_steps: int, read, write, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman filter (Eq. (M6), from x̂ = 0 and the initial covariance) over n_traj records of n_steps steps,
    block by block (``_filter_blocks``): ``read(i0, i1, t0, t1)`` gives the records (i1 − i0, t1 − t0, m),
    ``write(i0, i1, t0, t1, est, innov)`` takes x̂ after each step and the innovations (ΔY − H x̂)/√dt. Reads and
    writes run in order on one thread of their own (HDF5 takes one thread at a time) while the block between
    them is filtered; a block's trajectories on ``workers`` threads (GIL-free kernel; each trajectory's sums in
    step order, so the bits depend neither on the blocks nor on the threads). Returns (P until it settles, per
    channel Σ ν² and Σ ν_n ν_{n−1} over every trajectory)."""
    from concurrent.futures import ThreadPoolExecutor

    from sde_com.kernels.filtering import filter_block

    kept = min(n_steps, FILTER_MAX_GAINS)
    K, _, P = filter_gains(model["Phi"], model["H"], model["Q"], model["V0"], kept)
    # a closed loop's record: the force −L x̂ the filter knows moves the state by F_u x̂ and the record by F_y x̂
    Phi, H = model["Phi"] + model["Fu"], model["H"] + model["Fy"]
    if K.shape[0] == kept < n_steps:
        raise UserError(f"the filter's covariance has not settled within {kept} steps of this record (a mode it "
                        f"learns about more slowly than that, e.g. a weakly measured one): the filter keeps its "
                        f"gains until they settle, at most {FILTER_MAX_GAINS} steps; filter a coarser record "
                        f"(a larger step) or a shorter one")
    d, m = Phi.shape[0], H.shape[0]
    x, prev, stats = np.zeros((n_traj, d)), np.zeros((n_traj, m)), np.zeros((n_traj, m, 2))
    scale = 1.0 / math.sqrt(model["dt"])
    blocks = list(_filter_blocks(n_traj, n_steps, d, m))
    most = max((i1 - i0) * (t1 - t0) for i0, i1, t0, t1 in blocks)
    # two pairs of result buffers, reused (fresh ones cost a page fault per page): one filled, one being written
    buffers = [(np.empty(most * d), np.empty(most * m)) for _ in range(2)]

    def filtered(k, block, rec):
        i0, i1, t0, _ = block
        est, innov = (b[:rec.shape[0] * rec.shape[1] * w].reshape(*rec.shape[:2], w)
                      for b, w in zip(buffers[k % 2], (d, m), strict=True))
        cut = np.linspace(0, i1 - i0, min(workers, i1 - i0) + 1).astype(int)

        def part(lo, hi):
            filter_block(Phi, H, K, rec[lo:hi], np.int64(t0), scale, x[i0 + lo:i0 + hi], prev[i0 + lo:i0 + hi],
                         stats[i0 + lo:i0 + hi], est[lo:hi], innov[lo:hi])

        list(pool.map(part, cut[:-1], cut[1:]))
        # a NaN or an overflow stays in x̂ and in Σ ν² (Φ, K and the sums carry it on): checked there, not per value
        if not (np.all(np.isfinite(x[i0:i1])) and np.all(np.isfinite(stats[i0:i1]))):
            raise UserError("record holds NaN or infinite values" if not np.all(np.isfinite(rec)) else OVERFLOW)
        return est, innov

    with ThreadPoolExecutor(max_workers=1) as io, ThreadPoolExecutor(max_workers=workers) as pool:
        reading, writing = io.submit(read, *blocks[0]), None
        for k, block in enumerate(blocks):
            rec = np.ascontiguousarray(reading.result(), dtype=float)
            if k + 1 < len(blocks):
                reading = io.submit(read, *blocks[k + 1])
            est, innov = filtered(k, block, rec)
            if writing is not None:
                writing.result()  # the other pair of buffers is free again
            writing = io.submit(write, *block, est, innov)
        writing.result()
    return P, stats.sum(axis=0)


def _check_time(name: str, value) -> float:
    """A time > 0 (in 1/ω_ref), finite; UserError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise UserError(f"{name} must be a finite time > 0 (in 1/ω_ref), got {value!r}")
    return float(value)


def kalman_filter(record, dt: float, measures: Sequence[Mapping], *, initial="steady", branch: int = 0,
                  workers: int = 1, method: str = "exact", feedback: Mapping | None = None,
                  system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> dict[str, np.ndarray]:
    """The Kalman filter (Eq. (M6)) of ``system`` and its detectors over a given record: ``record`` (…, steps,
    channels) of ΔY per step dt (1/ω_ref) in the scaled time's normalisation (``conditional_simulate``'s record
    at save_every = dt). Returns ``estimate`` (…, steps + 1, 2N: x̂ before each step and after the last),
    ``cov_filter`` (k + 1, 2N, 2N: the filter's P until it settles at step k ≤ steps, constant after) and
    ``innovation`` (…, steps, channels): (ΔY − H x̂)/√dt, of unit variance per channel when the model is right
    (for dt small against the system's rates). ``workers``: threads over the records (the same bits).
    ``method``: the scheme the record was taken with ('exact', 'em'); ``feedback``: the ``[feedback]`` loop that
    acted on the estimate while it was taken (the filter then knows the force, Eq. (F2))."""
    system = as_system(system)
    loop = None if feedback is None else fb.check_feedback(feedback, system.modes, system.quadratures)
    dt, workers = _check_time("dt", dt), _check_workers(workers)
    record = np.asarray(record)
    if record.dtype.kind not in "fiu":
        raise UserError(f"record must hold numbers, got {record.dtype}")
    if record.size == 0:
        raise UserError(f"record has no samples (shape {record.shape})")
    model = _model(measures, system, params, dt, initial, branch, method, loop)
    d, m = model["Phi"].shape[0], model["H"].shape[0]
    if record.ndim < 2 or record.shape[-1] != m:
        raise UserError(f"record must be (..., steps, channels) with {m} channel(s) (the detectors'), "
                        f"got shape {record.shape}")
    flat = record.reshape(-1, *record.shape[-2:])
    n_traj, n_steps = flat.shape[:2]
    estimate, innovation = np.zeros((n_traj, n_steps + 1, d)), np.empty((n_traj, n_steps, m))

    def write(i0, i1, t0, t1, est, innov):
        estimate[i0:i1, t0 + 1:t1 + 1], innovation[i0:i1, t0:t1] = est, innov

    P, _ = _run_filter({**model, "dt": dt}, n_traj, n_steps, lambda i0, i1, t0, t1: flat[i0:i1, t0:t1], write,
                       workers)
    lead = record.shape[:-2]
    return {"estimate": estimate.reshape(*lead, *estimate.shape[1:]), "cov_filter": P,
            "innovation": innovation.reshape(*lead, *innovation.shape[1:])}


def _record_axis(records: xr.Dataset) -> tuple[xr.DataArray, tuple[str, ...], float, float]:
    """A record file's ``record`` (lazy), its leading dims, its first time and time step (s), checked:
    (trajectory,)? × time or interval × channel, numbers, a uniform time axis of the right length in seconds.
    UserError otherwise."""
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
    start, spacing, n_times = _uniform_times(records["time"].variable)
    expected = n_times - 1 if step == "interval" else n_times
    if rec.sizes[step] != expected:
        raise UserError(f"record has {rec.sizes[step]} {step} samples for {n_times} times")
    if rec.dtype.kind not in "fiu":
        raise UserError(f"record must hold numbers, got {rec.dtype}")
    if rec.ndim == 3 and rec.sizes["trajectory"] == 0:
        raise UserError("record has no trajectories (its trajectory dimension is empty)")
    return rec, rec.dims[:-2], start, spacing


def _check_loop_of(records: xr.Dataset, loop: Mapping | None) -> None:
    """A record file that says it was taken under feedback (its ``feedback`` attribute, as sde_com writes it)
    is filtered with that loop (the filter must know the force): UserError otherwise."""
    taken = records.attrs.get("feedback")
    if taken is None:
        return
    if loop is None or json.loads(taken) != json.loads(json.dumps(fb.loop_attrs(loop))):
        raise UserError(f"the record was taken under the feedback {taken}; give the scenario that [feedback] table "
                        "(the filter must know the force)")


def _check_channels(records: xr.Dataset, chans, modes) -> None:
    """Where a record file says what its channels recorded (channel_mode, channel_theta, channel_efficiency, as
    sde_com writes them), it must be what the scenario's detectors record: UserError naming the first mismatch."""
    expected = {"channel_mode": [modes[c.mode] for c in chans], "channel_theta": [c.theta for c in chans],
                "channel_efficiency": [c.efficiency for c in chans]}
    for name, want in expected.items():
        if name not in records.coords:
            continue
        have = np.asarray(records[name].values).ravel().tolist()
        same = (have == want) if name == "channel_mode" else (
            len(have) == len(want) and np.allclose(np.asarray(have, dtype=float), want, rtol=1e-12, atol=1e-12))
        if not same:
            raise UserError(f"the record file's {name} is {have}, the scenario's [[measure]] detectors record {want}: "
                            "filter it with the detectors that took it")


TIME_BLOCK = 1 << 20  # times of a record file checked at a time (a long record's axis is not held whole)


def _uniform_times(time) -> tuple[float, float, int]:
    """(first time, spacing, count) of a record file's time axis (a lazy variable, read in blocks), checked finite
    and uniform to rounding: times written as k·dt (or (k·dt)/ω) carry errors of a few ulp of the largest time."""
    n = time.size
    ends = np.asarray(time[[0, -1]].values if n else [], dtype=float)
    if n < 2 or not np.all(np.isfinite(ends)):
        raise UserError("the record file's time coordinate must hold at least two finite times")
    spacing = (ends[1] - ends[0]) / (n - 1)
    slack = 1e-9 * abs(spacing) + 16 * np.finfo(float).eps * np.abs(ends).max()
    for lo in range(0, n, TIME_BLOCK):
        block = np.asarray(time[lo:lo + TIME_BLOCK].values, dtype=float)
        if not np.all(np.isfinite(block)):
            raise UserError("the record file's time coordinate must hold finite times")
        if not (spacing > 0 and np.abs(block - (ends[0] + spacing * np.arange(lo, lo + block.size))).max() <= slack):
            raise UserError("the record file's time axis is not uniform (a Kalman filter of one step dt needs one)")
    return float(ends[0]), float(spacing), n


def _filter_summary(model: dict, system: LinearSystem, P, stats, n_traj: int, n_steps: int, start: float,
                    lead: tuple, measures, with_time: bool = True) -> xr.Dataset:
    """The filtered record file's small part: coordinates (the time axis, ``start`` + k dt in 1/ω_ref, unless
    ``with_time`` is false: a streamed file writes it in blocks), ``cov_filter`` over ``filter_time`` and the
    innovations' whiteness statistics (Σ ν², Σ ν_n ν_{n−1} per channel over every trajectory)."""
    omega_ref, dt, m = model["omega_ref"], model["dt"], model["H"].shape[0]
    count, pairs = n_traj * n_steps, n_traj * max(n_steps - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var, lag1 = stats[:, 0] / count, stats[:, 1] / pairs
    data = {"cov_filter": (("filter_time", "row", "col"), P),
            "innovation_variance": ("channel", var),
            "innovation_variance_err": ("channel", np.full(m, math.sqrt(2 / count))),
            "innovation_lag1": ("channel", lag1),
            "innovation_lag1_err": ("channel", np.full(m, 1 / math.sqrt(max(pairs, 1))))}
    if not np.all(np.isfinite(var)):
        raise UserError("the record's values overflow the filter's statistics (the innovations' variance is not "
                        "finite): check its normalisation (docs: records and their normalisation)")
    quad = list(system.quadratures)
    times = time_coordinates(start + dt * np.arange(n_steps + 1), omega_ref) if with_time else {}
    ds = xr.Dataset(data, coords={**times, "row": quad, "col": quad,
                                  "filter_time": ("filter_time", (start + dt * np.arange(P.shape[0])) / omega_ref),
                                  "quadrature": quad, "channel": np.arange(m, dtype=np.int32),
                                  "interval": np.arange(n_steps, dtype=np.int32),
                                  **({"trajectory": np.arange(n_traj, dtype=np.int32)} if lead else {})})
    set_time_reference(ds, omega_ref)
    ds = apply_catalogue(ds, title=f"sde_com Kalman filter of a record, {system.name}", system=system)
    ds.attrs["measure"] = json.dumps([dict(m) for m in measures])
    return ds


def filter_record_file(records: xr.Dataset, measures: Sequence[Mapping], *, output=None, force: bool = False,
                       history: str | None = None, workers: int = 1, initial="steady", branch: int = 0,
                       method: str = "exact", feedback: Mapping | None = None,
                       system: LinearSystem | str = DEFAULT_SYSTEM, **params):
    """The Kalman filter (``kalman_filter``) over a record file's ``record`` (what ``sde-com filter`` runs):
    (interval, channel), (time, channel) or (trajectory, …, channel), in the scaled time's normalisation, with a
    uniform ``time`` coordinate in seconds (for ``interval`` records, the saved times around them, as
    ``conditional_simulate`` writes). Gives ``estimate`` (…, time, quadrature), ``cov_filter`` (filter_time,
    row, col), ``innovation`` (…, interval, channel) = (ΔY − H x̂)/√Δτ and the innovations' variance and lag-1
    autocorrelation. ``records`` may be lazy (opened, not loaded): it is read block by block. Without
    ``output``: returns the Dataset. With ``output`` (a netCDF path): streams ``estimate`` and ``innovation``
    to it block by block (memory: a few FILTER_BLOCK_BYTES blocks, whatever the record's size), written
    atomically (``force``: replace an existing file; ``history``: the command for its history line); returns
    the path. ``workers``: threads over the trajectories (the same bits); ``method``, ``feedback``: as for
    ``kalman_filter``."""
    from sde_com.results.catalogue import COORDINATES, VARIABLES
    from sde_com.results.io import AtomicOutput, StreamedNetCDF, check_writable

    system = as_system(system)
    workers = _check_workers(workers)
    rec, lead, start, spacing = _record_axis(records)
    omega_ref = system.reference_rate(system.resolve(params))
    dt = spacing * omega_ref
    loop = None if feedback is None else fb.check_feedback(feedback, system.modes, system.quadratures)
    _check_loop_of(records, loop)
    model = {**_model(measures, system, params, dt, initial, branch, method, loop), "dt": dt}
    d, m = model["Phi"].shape[0], model["H"].shape[0]
    if rec.sizes["channel"] != m:
        raise UserError(f"record has {rec.sizes['channel']} channel(s); the scenario's detectors give {m}")
    _check_channels(records, model["chans"], system.modes)
    n_traj, n_steps = (rec.shape[0] if lead else 1), rec.shape[-2]

    def read(i0, i1, t0, t1):
        return rec[i0:i1, t0:t1].values if lead else rec[t0:t1].values[None]

    if output is None:
        est_all, innov_all = np.zeros((n_traj, n_steps + 1, d)), np.empty((n_traj, n_steps, m))

        def write(i0, i1, t0, t1, est, innov):
            est_all[i0:i1, t0 + 1:t1 + 1], innov_all[i0:i1, t0:t1] = est, innov

        P, stats = _run_filter(model, n_traj, n_steps, read, write, workers)
        ds = _filter_summary(model, system, P, stats, n_traj, n_steps, start * omega_ref, lead, measures)
        ds["estimate"] = ((*lead, "time", "quadrature"), est_all if lead else est_all[0], VARIABLES["estimate"].attrs)
        ds["innovation"] = ((*lead, "interval", "channel"), innov_all if lead else innov_all[0],
                            VARIABLES["innovation"].attrs)
        return ds
    check_writable(output, force)
    sizes = {"trajectory": n_traj, "time": n_steps + 1, "interval": n_steps, "quadrature": d, "channel": m}
    layout = {name: ((*lead, step, last), "f8", {**VARIABLES[name].attrs, **aux}, None)
              for name, step, last, aux in (("estimate", "time", "quadrature", {"coordinates": "time"}),
                                            ("innovation", "interval", "channel", {}))}
    # the time axis in blocks too (a long record's would not fit the memory bound whole)
    layout |= {name: (("time",), "f8", COORDINATES[name].attrs, None) for name in ("time_scaled", "time")}
    scratch = AtomicOutput(output, force)  # a temporary file beside the output, renamed into place when complete
    try:
        stream = StreamedNetCDF(scratch.tmp, {k: v for k, v in sizes.items() if k != "trajectory" or lead}, layout)
    except BaseException:
        scratch.discard()
        raise
    scaled0 = start * omega_ref
    try:
        # HDF5 takes one thread at a time and the record is read meanwhile: every write in ``_run_filter``'s
        # reading and writing thread
        stream.write_now("estimate", (slice(None), 0) if lead else 0, np.zeros((n_traj, d) if lead else d))

        def write(i0, i1, t0, t1, est, innov):
            if i0 == 0:
                scaled = scaled0 + dt * np.arange(t0 + (t0 > 0), t1 + 1)  # the in-memory axis' values
                stream.write_now("time_scaled", slice(t0 + (t0 > 0), t1 + 1), scaled)
                stream.write_now("time", slice(t0 + (t0 > 0), t1 + 1), scaled / omega_ref)
            if lead:
                stream.write_now("estimate", (slice(i0, i1), slice(t0 + 1, t1 + 1)), est)
                stream.write_now("innovation", (slice(i0, i1), slice(t0, t1)), innov)
            else:
                stream.write_now("estimate", slice(t0 + 1, t1 + 1), est[0])
                stream.write_now("innovation", slice(t0, t1), innov[0])

        P, stats = _run_filter(model, n_traj, n_steps, read, write, workers)
        ds = _filter_summary(model, system, P, stats, n_traj, n_steps, scaled0, lead, measures, with_time=False)
        return stream.finish(ds, output, force, history)
    except BaseException:
        stream.abort()
        raise
