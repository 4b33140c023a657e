"""Cross-check of the linearization: the full nonlinear Langevin equations (Eq. (3)) integrated with the
linearized model's Gaussian noises (truncated Wigner), against the linearized model driven by the very
same noise numbers. Agreement is expected for many photons and G₀ ≪ κ; it fails for few photons with G₀
comparable to κ, where the quantum state is no longer a small Gaussian fluctuation about the mean field.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.kernel_cache import ENSEMBLE_MODULES, announce_compile
from sde_com.kernels import ensemble as kernels
from sde_com.physics.system import LinearSystem, require
from sde_com.random import INITIAL_STREAM, sample_gaussian
from sde_com.results.catalogue import apply_catalogue, dims_in, set_time_reference, variables_of
from sde_com.results.sweep import DEFAULT_SYSTEM, as_system
from sde_com.simulation.ensemble import prepare_point, reported_entanglement
from sde_com.simulation.estimators import zscores
from sde_com.simulation.keys import WIGNER
from sde_com.simulation.schemes import scheme_names
from sde_com.simulation.settings import SimulationSettings

DEFAULT_BRANCH = WIGNER.keys["branch"].default


def truncated_wigner_arrays(system: LinearSystem | str, params, settings: SimulationSettings,
                            branch: int = DEFAULT_BRANCH) -> dict:
    """Stationary fluctuation covariance of the nonlinear model (truncated Wigner, Euler–Maruyama) next to
    the linearized one, trajectory by trajectory on the same noise, at one point ``params`` of a system with
    the capability ``"truncated_wigner"`` (its ``truncated_wigner_model``: the spinning resonator's Eq. (3)).

    Returns arrays: ``cov_tw`` ± ``cov_tw_err`` (time averages about the mean-field fixed point, errors from
    the spread over trajectories), ``cov_lin`` ± ``cov_lin_err`` (the linear EM kernel, same seed),
    ``cov_ref`` (V_dt, what linear EM samples), ``zscore_max`` of cov_tw against cov_ref, ``difference`` and
    ``difference_err`` (cov_tw − cov_lin per trajectory, averaged: the common noise cancels, so this
    resolves the nonlinearity far below the statistical error of either), and the three E_N.
    """
    s = settings
    if not s.scheme.raw_noise or s.transient or s.trajectories < 2:  # the nonlinear kernel is EM on the same ξ
        raise UserError("the truncated-Wigner check runs Euler–Maruyama time averages: method = "
                        f"{scheme_names(lambda sc: sc.raw_noise)}, no save_times/save_every, trajectories >= 2")
    system = as_system(system)
    require(system, "truncated_wigner", "wigner")
    announce_compile((*system.kernel_modules, *ENSEMBLE_MODULES, "kernels.wigner"))
    params = system.resolve(params)
    nl = system.truncated_wigner_model(params, branch)
    b, omega_ref = nl["branch"], system.reference_rate(params)
    model = prepare_point(b.drift, b.diffusion, omega_ref, functools.partial(system.thermal_covariance, params),
                          s)  # checks dt, stability
    u0 = sample_gaussian(model.C0, s.seed, 0, s.trajectories, INITIAL_STREAM)
    n_avg = s.n_steps - s.burn_in_steps
    tw = nl["run"](nl["initial"](u0), s.seed, 0, s.n_steps, s.dt, s.burn_in_steps) / n_avg
    lin = kernels.run_ensemble(model.F, model.L, u0, s.seed, 0, s.n_steps, s.burn_in_steps,
                               np.zeros(0, dtype=np.int64), 0, 1)[1] / n_avg
    n = s.trajectories
    V_tw, V_lin = tw.mean(axis=0), lin.mean(axis=0)
    err_tw, err_lin = tw.std(axis=0, ddof=1) / math.sqrt(n), lin.std(axis=0, ddof=1) / math.sqrt(n)
    diff = tw - lin
    V_ref = model.V_stationary  # V_dt = F V_dt Fᵀ + L Lᵀ: what linear EM samples
    _, zmax = zscores(V_tw, err_tw, V_ref)
    en = reported_entanglement(system)
    return dict(cov_tw=V_tw, cov_tw_err=err_tw, cov_lin=V_lin, cov_lin_err=err_lin, cov_ref=V_ref,
                zscore_max=float(zmax), difference=diff.mean(axis=0),
                difference_err=diff.std(axis=0, ddof=1) / math.sqrt(n),
                logneg_tw=en(V_tw), logneg_lin=en(V_lin), logneg_ref=en(V_ref), photons=nl["photons"],
                omega_ref=omega_ref, params=params)


# data variables of wigner_dataset (units and meaning: sde_com.results.catalogue)
WIGNER_VARIABLES = variables_of("wigner")


def wigner_dataset(system: LinearSystem | str, params, settings: SimulationSettings,
                   branch: int = DEFAULT_BRANCH) -> xr.Dataset:
    """``truncated_wigner_arrays`` as an xarray Dataset (matrices over ``row``, ``col``)."""
    system = as_system(system)
    r = truncated_wigner_arrays(system, params, settings, branch)
    with np.errstate(divide="ignore", invalid="ignore"):
        r["difference_z"] = r["difference"] / r["difference_err"]
    data = {k: (dims_in(k, "wigner"), r[k]) for k in WIGNER_VARIABLES}
    ds = xr.Dataset(data, coords=dict(row=list(system.quadratures), col=list(system.quadratures)))
    set_time_reference(ds, r["omega_ref"])  # the unit of the run's dt, burn_in and duration
    ds.attrs["parameters"] = json.dumps(r["params"])
    return apply_catalogue(ds, title="sde_com truncated-Wigner check", system=system)


def wigner_check(settings: SimulationSettings, *, system: LinearSystem | str = DEFAULT_SYSTEM,
                 branch: int = DEFAULT_BRANCH, **params) -> xr.Dataset:
    """The truncated-Wigner check of the linearization at one point ``params`` (scalars) of ``system`` (an
    instance or a registered name with the capability ``"truncated_wigner"``): ``wigner_dataset``. Public as
    ``sde_com.wigner_check``."""
    return wigner_dataset(system, params, settings, branch)
