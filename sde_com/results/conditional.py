"""The conditional steady state of a monitored system over a parameter grid (``[[measure]]``), as a Dataset.

Point by point (any system): the steady state of the per-point path (``sweep``: V of Eq. (11), E_N over every
pair) and, for the detectors' record channels (``physics.measurement``), the stabilising Riccati solution V_c
of Eq. (M4), its E_N, the Kalman gain of Eq. (M3), and the Gaussian measures experiments report (occupation,
purity, squeezing) of both states.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from sde_com.errors import NumericalError, UserError
from sde_com.physics import feedback as fb
from sde_com.physics.gaussian import logneg, occupations, purity, squeezing_db
from sde_com.physics.measurement import (
    channels,
    check_measures,
    conditional_covariance,
    kalman_gain,
    measurement_matrices,
)
from sde_com.physics.model import points
from sde_com.physics.system import LinearSystem, require
from sde_com.results.catalogue import apply_catalogue
from sde_com.results.sweep import DEFAULT_SYSTEM, Grid, _assemble_points, _point_params, _points_block

_MEASURES = ("occupation", "purity", "squeezing")


def conditional_sweep(measures: Sequence[Mapping], *, feedback: Mapping | None = None,
                      system: LinearSystem | str = DEFAULT_SYSTEM, store_cov: bool = True, **params) -> xr.Dataset:
    """The conditional steady state (Eq. (M4)) of ``system`` watched by the detectors ``measures`` at every
    point of a parameter grid, beside its steady state, as a Dataset (what a scenario's ``[[measure]]`` tables
    write). ``measures``: a list of tables with the keys of ``[[measure]]`` (``mode``: a mode with an output port;
    ``scheme`` 'homodyne' or 'heterodyne'; ``theta``, rad; ``efficiency`` η in (0, 1]); ``feedback``: a table
    with the keys of ``[feedback]`` (adds the closed loop's steady state, Eqs. (F1)–(F4)); ``system`` and the
    parameters as for ``sweep``."""
    grid = Grid(params, system)
    first = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}
    require(grid.system, "output_ports", "conditional steady state")
    checked = check_measures(measures, grid.system.modes, grid.system.output_ports(grid.system.resolve(first)))
    loop = None if feedback is None else fb.check_feedback(feedback, grid.system.modes, grid.system.quadratures)
    return conditional_steady_sweep(grid, checked, store_cov, loop)


def conditional_steady_sweep(grid: Grid, measures: Sequence[Mapping], store_cov: bool = True,
                             feedback: Mapping | None = None) -> xr.Dataset:
    """``conditional_sweep`` over a ``Grid`` built before, of detectors checked before (``check_measures``) and a
    loop checked before (``feedback.check_feedback``) or None."""
    system = grid.system
    values, dims, shape, _ = grid.grid
    n = math.prod(shape)
    block = _points_block(system, values, dims, shape, range(n), True)
    ds = _assemble_points(system, grid, [block], True)
    chans = channels(measures, system.modes)
    pairs = list(itertools.combinations(range(len(system.modes)), 2))
    n_b, d, m = ds.sizes["branch"], system.dimension, len(chans)
    raw = {"cov_conditional": np.full((n, n_b, d, d), np.nan), "kalman_gain": np.full((n, n_b, d, m), np.nan),
           "logneg_conditional": np.full((n, n_b, len(pairs)), np.nan)}
    if feedback is not None:
        f = len(feedback["force"])
        raw |= {"cov_feedback": np.full((n, n_b, d, d), np.nan), "feedback_gain": np.full((n, n_b, f, d), np.nan),
                "force_variance": np.full((n, n_b, f), np.nan),
                "logneg_feedback": np.full((n, n_b, len(pairs)), np.nan)}
    for k in range(n):
        params = _point_params(values, dims, shape, k)
        omega_ref = system.reference_rate(params)
        ports = system.output_ports(params)
        C, G = measurement_matrices(chans, [ports[system.modes[c.mode]] for c in chans], len(system.modes))
        for b, op in enumerate(points(system, params)):
            try:  # an unstable branch may have a conditional state: the detectors can stabilise the filter
                V = conditional_covariance(op.drift, op.diffusion, C, G, scale=omega_ref)
            except NumericalError:
                if op.cov is not None:
                    raise  # a stable branch without one: refused, naming why
                continue  # an unstable branch that no detector sees: NaN, as its steady state

            raw["cov_conditional"][k, b] = V
            raw["kalman_gain"][k, b] = kalman_gain(V, C / math.sqrt(omega_ref), G / math.sqrt(omega_ref))
            raw["logneg_conditional"][k, b] = [logneg(V, i, j) for i, j in pairs]
            if feedback is not None:
                _close_the_loop(raw, k, b, op, omega_ref, feedback, system, {x: params[x] for x in dims}, pairs)
    bdims = (*dims, "branch")
    cov = ds["cov"].values
    conditional = raw["cov_conditional"].reshape((*shape, n_b, d, d))
    data = {"cov_conditional": ((*bdims, "row", "col"), conditional),
            "logneg_conditional": ((*bdims, "pair"), raw["logneg_conditional"].reshape((*shape, n_b, len(pairs)))),
            "kalman_gain": ((*bdims, "quadrature", "channel"), raw["kalman_gain"].reshape((*shape, n_b, d, m)))}
    for suffix, V in (("", cov), ("_conditional", conditional)):
        occupation, pure, squeezing = _gaussian_measures(V)
        data["occupation" + suffix] = ((*bdims, "mode"), occupation)
        data["purity" + suffix] = (bdims, pure)
        data["squeezing" + suffix] = ((*bdims, "mode"), squeezing)
    if feedback is not None:
        data |= _loop_data(raw, bdims, shape, n_b, d, len(pairs))
    out = ds.assign(data).assign_coords(
        **({"force": list(feedback["force"])} if feedback is not None else {}),
        mode=list(system.modes), quadrature=list(system.quadratures), channel=np.arange(m, dtype=np.int32),
        channel_mode=("channel", [system.modes[c.mode] for c in chans]),
        channel_theta=("channel", [c.theta for c in chans]),
        channel_efficiency=("channel", [c.efficiency for c in chans]))
    if not store_cov:
        out = out.drop_vars("cov")
    return apply_catalogue(out, title=f"sde_com conditional steady state of {system.name}", system=system)


def _close_the_loop(raw: dict, k: int, b: int, op, omega_ref: float, loop: Mapping, system, params, pairs) -> None:
    """The closed loop's steady state at point k, branch b (Eqs. (F1)–(F4), scaled time) into ``raw``: NaN where
    the loop cannot hold an open-loop-unstable branch; a UserError where a given gain destabilises a stable one."""
    A = op.drift / omega_ref
    B = fb.force_matrix(loop["rows"], A.shape[0])
    if loop["control"] == "lqg":
        try:
            L = fb.lqg_gain(A, B, fb.target_weight(loop["target"], system.modes), loop["effort"])
        except UserError:
            if op.cov is not None:
                raise
            return
    else:
        L = loop["gain"]
    rate = fb.loop_rate(A, B, L)
    if rate >= 0:
        if op.cov is not None:
            raise UserError(f"feedback.gain destabilises the loop at {_where(params)}: A − B L grows at "
                            f"{rate:.4g} ω_ref (give a gain whose closed loop is stable)")
        return
    out = fb.closed_loop(A, B, L, raw["kalman_gain"][k, b], raw["cov_conditional"][k, b])
    raw["cov_feedback"][k, b], raw["feedback_gain"][k, b] = out["cov"], L
    raw["force_variance"][k, b] = out["force_variance"]
    raw["logneg_feedback"][k, b] = [logneg(out["cov"], i, j) for i, j in pairs]


def _where(swept: Mapping) -> str:
    """The grid point of ``swept`` values, for messages."""
    return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in swept.items()) or \
        "the operating point"


def _loop_data(raw: dict, bdims: tuple, shape: tuple, n_b: int, d: int, n_pairs: int) -> dict:
    """The closed loop's variables, on the grid's dims."""
    f = raw["feedback_gain"].shape[2]
    cov = raw["cov_feedback"].reshape((*shape, n_b, d, d))
    occupation = _gaussian_measures(cov)[0]
    return {"cov_feedback": ((*bdims, "row", "col"), cov), "occupation_feedback": ((*bdims, "mode"), occupation),
            "logneg_feedback": ((*bdims, "pair"), raw["logneg_feedback"].reshape((*shape, n_b, n_pairs))),
            "feedback_gain": ((*bdims, "force", "quadrature"), raw["feedback_gain"].reshape((*shape, n_b, f, d))),
            "force_variance": ((*bdims, "force"), raw["force_variance"].reshape((*shape, n_b, f)))}


def _gaussian_measures(V: np.ndarray):
    """Occupation, purity and squeezing (``physics.gaussian``) of covariances (..., 2N, 2N); NaN where V is
    (an unstable branch's)."""
    valid = np.isfinite(V).all(axis=(-2, -1))
    safe = np.where(valid[..., None, None], V, 0.5 * np.eye(V.shape[-1]))
    mask = np.where(valid, 1.0, np.nan)
    return occupations(safe) * mask[..., None], purity(safe) * mask, squeezing_db(safe) * mask[..., None]
