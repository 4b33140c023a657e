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

from sde_com.errors import NumericalError
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


def conditional_sweep(measures: Sequence[Mapping], *, system: LinearSystem | str = DEFAULT_SYSTEM,
                      store_cov: bool = True, **params) -> xr.Dataset:
    """The conditional steady state (Eq. (M4)) of ``system`` watched by the detectors ``measures`` at every
    point of a parameter grid, beside its steady state, as a Dataset (what a scenario's ``[[measure]]`` tables
    write). ``measures``: a list of tables with the keys of ``[[measure]]`` (``mode``: a mode with an output port;
    ``scheme`` 'homodyne' or 'heterodyne'; ``theta``, rad; ``efficiency`` η in (0, 1]); ``system`` and the
    parameters as for ``sweep``."""
    grid = Grid(params, system)
    first = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}
    require(grid.system, "output_ports", "conditional steady state")
    checked = check_measures(measures, grid.system.modes, grid.system.output_ports(grid.system.resolve(first)))
    return conditional_steady_sweep(grid, checked, store_cov)


def conditional_steady_sweep(grid: Grid, measures: Sequence[Mapping], store_cov: bool = True) -> xr.Dataset:
    """``conditional_sweep`` over a ``Grid`` built before, of detectors checked before (``check_measures``)."""
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
    out = ds.assign(data).assign_coords(
        mode=list(system.modes), quadrature=list(system.quadratures), channel=np.arange(m, dtype=np.int32),
        channel_mode=("channel", [system.modes[c.mode] for c in chans]),
        channel_theta=("channel", [c.theta for c in chans]),
        channel_efficiency=("channel", [c.efficiency for c in chans]))
    if not store_cov:
        out = out.drop_vars("cov")
    return apply_catalogue(out, title=f"sde_com conditional steady state of {system.name}", system=system)


def _gaussian_measures(V: np.ndarray):
    """Occupation, purity and squeezing (``physics.gaussian``) of covariances (..., 2N, 2N); NaN where V is
    (an unstable branch's)."""
    valid = np.isfinite(V).all(axis=(-2, -1))
    safe = np.where(valid[..., None, None], V, 0.5 * np.eye(V.shape[-1]))
    mask = np.where(valid, 1.0, np.nan)
    return occupations(safe) * mask[..., None], purity(safe) * mask, squeezing_db(safe) * mask[..., None]
