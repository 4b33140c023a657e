"""Steady-state sweeps over any parameter → xarray Dataset (the paper's Figs. 2–3 and beyond).

Every parameter of ``Device`` plus ``detuning`` (Δ_c/ω_m) and ``direction`` ('ccw'/'cw') can be a scalar
or a 1-D sequence; sequences become dimensions, in the order given. Every mean-field branch is reported
along a ``branch`` dimension (NaN-padded, with ``n_branches``); quantities that need a steady state (E_N,
V) are NaN where the branch is unstable, with the boolean ``stable`` mask beside them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

import numpy as np
import xarray as xr

from sde_com.physics.resonator.chain import run_chain
from sde_com.physics.resonator.device import (
    DEVICE_PARAMETERS,
    DIRECTIONS,
    Device,
    decay_rate,
    drive_amplitude,
    sagnac_shift,
    single_photon_coupling,
    thermal_occupation,
)
from sde_com.physics.resonator.drift import QUADRATURES
from sde_com.physics.resonator.system import SpinningResonator
from sde_com.results.catalogue import apply_catalogue, variables_of

SWEEP_PARAMETERS: tuple[str, ...] = ("detuning", "direction", *DEVICE_PARAMETERS)

# the data variables a sweep can produce (their units and meaning: sde_com.catalogue)
VARIABLE_INFO: tuple[str, ...] = variables_of("sweep")


def _as_values(name: str, value) -> tuple[np.ndarray, bool]:
    """(1-D array of values, is_dimension) for one sweep parameter, validated."""
    is_dim = not np.isscalar(value) and not isinstance(value, str)
    values = np.atleast_1d(np.asarray(list(value) if is_dim and not isinstance(value, np.ndarray) else value))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a scalar or a non-empty 1-D sequence")
    if name == "direction":
        for v in values:
            if v not in DIRECTIONS:
                raise ValueError(f"direction must be one of {DIRECTIONS}, got {str(v)!r}")
        return values.astype(str), is_dim
    if values.dtype.kind not in "iuf" or values.dtype == bool:
        raise ValueError(f"{name} must be a real number or a sequence of them, got {value!r}")
    values = values.astype(float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if name != "detuning":
        for v in np.unique(values):
            Device(**{name: float(v)})  # raises ValueError naming the field and its allowed range
    return values, is_dim


def parameter_grid(params: Mapping[str, object]):
    """Validated grid: (values per parameter, swept dimensions in order, grid shape, broadcast arrays)."""
    unknown = [k for k in params if k not in SWEEP_PARAMETERS]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; allowed: {list(SWEEP_PARAMETERS)}")
    defaults = {**Device().as_dict(), **{k: key.default for k, key in SpinningResonator.parameters.items()}}
    values, dims = {}, []
    for name in SWEEP_PARAMETERS:
        v, is_dim = _as_values(name, params.get(name, defaults[name]))
        values[name] = v
    for name in params:  # dimensions in the order the caller gave them
        if not np.isscalar(params[name]) and not isinstance(params[name], str):
            dims.append(name)
    shape = tuple(values[d].size for d in dims)
    full = {}
    for name in SWEEP_PARAMETERS:
        if name in dims:
            idx = [1] * len(dims)
            idx[dims.index(name)] = -1
            full[name] = np.broadcast_to(values[name].reshape(idx), shape)
        else:
            full[name] = np.broadcast_to(values[name][0], shape)
    return values, dims, shape, full


def validate_parameters(params: Mapping[str, object]) -> None:
    """Raise ValueError (naming the parameter and what is allowed) for any bad sweep parameter."""
    parameter_grid(params)


def chain_inputs(full: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flat rate arrays (rad/s) for the chain kernel from broadcast parameter arrays (Eq. (1), Eq. (7))."""
    p = {k: np.ravel(v) for k, v in full.items()}
    delta_c = p["detuning"] * p["omega_m"]
    shift = sagnac_shift(p["Omega"], p["refractive_index"], p["radius"], p["wavelength"], p["dn_dlambda"])
    sign = np.where(p["direction"] == "ccw", 1.0, -1.0)
    return dict(
        kappa=decay_rate(p["wavelength"], p["quality_factor"]) * np.ones_like(delta_c),
        delta_u=delta_c + sign * shift,
        delta_v=delta_c - sign * shift,
        J=p["J"] * np.ones_like(delta_c),
        G0=single_photon_coupling(p["wavelength"], p["radius"], p["mass"], p["omega_m"]) * np.ones_like(delta_c),
        epsilon=drive_amplitude(p["wavelength"], p["quality_factor"], p["power"]) * np.ones_like(delta_c),
        omega_m=p["omega_m"] * np.ones_like(delta_c),
        gamma_m=p["gamma_m"] * np.ones_like(delta_c),
        n_thermal=thermal_occupation(p["omega_m"], p["temperature"]) * np.ones_like(delta_c),
        sagnac_shift=shift * np.ones_like(delta_c),
    )


def sweep(*, store_cov: bool = True, revival: bool | None = None, **params) -> xr.Dataset:
    """Steady state (Eqs. (6), (7), (11)–(13)) at every point of a parameter grid, as a Dataset.

    Keyword parameters: ``detuning`` (Δ_c/ω_m), ``direction`` ('ccw'/'cw'), and any ``Device`` field
    (rad/s, SI); each a scalar or a 1-D sequence (a dimension). Omitted ones take the paper's values
    (detuning 1, direction 'ccw'). ``store_cov`` adds the 6×6 V (``cov``); ``revival`` adds
    ``logneg_max`` and the revival factor χ of Eq. (14) (default: when detuning is a dimension).
    """
    n_points = math.prod(parameter_grid(params)[2])
    return sweep_from_blocks(params, [sweep_block(params, 0, n_points, store_cov)], store_cov, revival)


def sweep_block(params: Mapping[str, object], start: int, stop: int, store_cov: bool = True) -> dict:
    """The chain's raw outputs for the flat grid points [start, stop) (C order): a unit of sweep work.

    Each point is computed on its own, so blocks concatenated in order equal the whole sweep bitwise.
    """
    _, _, _, full = parameter_grid(params)
    inp = {k: v[start:stop] for k, v in chain_inputs(full).items()}
    out = run_chain(inp, store_cov=store_cov)
    out.update({k: inp[k] for k in ("kappa", "G0", "omega_m", "sagnac_shift")})
    return out


def sweep_from_blocks(params: Mapping[str, object], blocks: list[dict], store_cov: bool = True,
                      revival: bool | None = None) -> xr.Dataset:
    """Assemble the Dataset of ``sweep`` from the raw outputs of consecutive ``sweep_block`` calls."""
    values, dims, shape, _ = parameter_grid(params)
    raw = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    inp = {k: raw.pop(k) for k in ("kappa", "G0", "omega_m", "sagnac_shift")}
    out = raw
    n_b = max(1, int(out["n_branches"].max()))
    bshape = (*shape, n_b)
    bdims = (*dims, "branch")
    omega_m = inp["omega_m"][:, None]
    stable = out["stable"][:, :n_b]
    g = math.sqrt(2.0) * inp["G0"][:, None] / omega_m
    data = {
        "logneg": (bdims, out["logneg"][:, :n_b, 0].reshape(bshape)),
        "logneg_reflected": (bdims, out["logneg"][:, :n_b, 1].reshape(bshape)),
        "logneg_optical": (bdims, out["logneg"][:, :n_b, 2].reshape(bshape)),
        "photons": (bdims, (np.abs(out["alpha_u"][:, :n_b]) ** 2).reshape(bshape)),
        "photons_reflected": (bdims, (np.abs(out["alpha_v"][:, :n_b]) ** 2).reshape(bshape)),
        "coupling": (bdims, (g * np.abs(out["alpha_u"][:, :n_b])).reshape(bshape)),
        "coupling_reflected": (bdims, (g * np.abs(out["alpha_v"][:, :n_b])).reshape(bshape)),
        "displacement": (bdims, _displacement(out["shift"][:, :n_b], inp).reshape(bshape)),
        "stable": (bdims, stable.reshape(bshape)),
        "n_branches": (tuple(dims), out["n_branches"].reshape(shape).astype(np.int32)),
        "sagnac_shift": (tuple(dims), (inp["sagnac_shift"] / inp["omega_m"]).reshape(shape)),
    }
    if store_cov:
        data["cov"] = ((*bdims, "row", "col"), out["cov"][:, :n_b].reshape((*bshape, 6, 6)))
    coords = {d: values[d] for d in dims}
    coords["branch"] = np.arange(n_b, dtype=np.int32)
    if store_cov:
        coords["row"] = list(QUADRATURES)
        coords["col"] = list(QUADRATURES)
    ds = xr.Dataset(data, coords=coords)
    # Δ_F depends on the spin and the device only
    ds["sagnac_shift"] = ds["sagnac_shift"].isel({d: 0 for d in ("detuning", "direction") if d in dims},
                                                 drop=True)
    if revival is None:
        revival = "detuning" in dims and values["detuning"].size > 1
    if revival:
        ds["logneg_max"] = _max_over_detuning(ds)
        ideal_params = {k: v for k, v in params.items() if k not in ("Omega", "J", "direction")}
        ideal = sweep(store_cov=False, revival=False, Omega=0.0, J=0.0, **ideal_params)
        ds["revival"] = ds["logneg_max"] / _max_over_detuning(ideal)
    _annotate(ds, values, dims)
    return apply_catalogue(ds, title="sde_com steady-state sweep")


def _displacement(shift: np.ndarray, inp: Mapping[str, np.ndarray]) -> np.ndarray:
    """q_s = κy/G₀ from the root y = G₀q_s/κ; at G₀ = 0 the mechanics is not pushed (q_s = 0)."""
    G0 = inp["G0"][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(G0 > 0, shift * inp["kappa"][:, None] / G0, 0.0 * shift)


def _max_over_detuning(ds: xr.Dataset) -> xr.DataArray:
    reduce = [d for d in ("detuning", "branch") if d in ds.dims]
    return ds["logneg"].max(dim=reduce, skipna=True)


def _annotate(ds: xr.Dataset, values: Mapping[str, np.ndarray], dims: Iterable[str]) -> None:
    """Provenance attrs: version, every parameter value, the scalar parameters one by one."""
    used = {k: (v.tolist() if k in dims else v[0].item()) for k, v in values.items()}
    ds.attrs["parameters"] = json.dumps(used)
    for k in SWEEP_PARAMETERS:
        if k not in dims:
            ds.attrs[k] = used[k]
    ds.attrs["sde_com_conventions"] = "rates in rad s-1; quadratures (xU, yU, xV, yV, q, p); vacuum variance 1/2"
