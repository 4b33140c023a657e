"""Steady-state sweeps over any parameter of a system → xarray Dataset (the paper's Figs. 2–3 and beyond).

Every [model] parameter of the system (``LinearSystem.parameters``; for the spinning resonator every
parameter of ``Device`` plus ``detuning`` (Δ_c/ω_m) and ``direction`` ('ccw'/'cw')) can be a scalar or a 1-D
sequence; sequences become dimensions, in the order given. Every mean-field branch is reported along a
``branch`` dimension (NaN-padded, with ``n_branches``); quantities that need a steady state (E_N, V) are NaN
where the branch is unstable, with the boolean ``stable`` mask beside them.

Two paths: a system with a vectorized steady-state chain (the optional method ``steady_chain``, see
``fast_chain``; the spinning resonator's numba kernel) runs it over the grid and gets the resonator's
variables; any other system takes the per-point path (``physics.model.points`` at every grid point) and gets
``stable``, ``marginal``, ``n_branches``, ``cov`` and ``logneg`` over ``pair`` (every pair of its modes).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import xarray as xr

from sde_com import spec
from sde_com.errors import UserError
from sde_com.physics.gaussian import logneg_pair
from sde_com.physics.model import points
from sde_com.physics.resonator.device import DEVICE_PARAMETERS, DIRECTIONS, Device
from sde_com.physics.resonator.drift import QUADRATURES
from sde_com.physics.resonator.system import SpinningResonator
from sde_com.physics.system import LinearSystem, get_system
from sde_com.results.catalogue import PAIR_LOGNEG_LONG_NAME, apply_catalogue, variables_of

SWEEP_PARAMETERS: tuple[str, ...] = ("detuning", "direction", *DEVICE_PARAMETERS)

# the data variables a sweep can produce (their units and meaning: sde_com.results.catalogue)
VARIABLE_INFO: tuple[str, ...] = variables_of("sweep")
SEAM_VARIABLES: tuple[str, ...] = variables_of("seam_sweep")  # those of the per-point path
SCALAR_TYPES = ("number", "integer", "string", "boolean")  # key types whose lists are sweep dimensions


def as_system(system: LinearSystem | str | None) -> LinearSystem:
    """The system of a sweep: a ``LinearSystem`` instance, a registered name, or None (the spinning resonator)."""
    if system is None:
        return SpinningResonator()
    if isinstance(system, str):
        return get_system(system)
    if isinstance(system, LinearSystem):
        return system
    raise UserError(f"system must be a LinearSystem or the name of a registered one, got {system!r}")


def fast_chain(system: LinearSystem) -> Callable | None:
    """The system's vectorized steady-state chain (its optional method ``steady_chain``), or None: then the
    sweep takes the per-point path. ``steady_chain(full, start, stop, store_cov)`` returns the raw outputs
    that ``sweep_from_blocks`` assembles (those of the resonator's ``chain.run_chain`` and its rates)."""
    return getattr(system, "steady_chain", None)


def _as_values(name: str, value) -> tuple[np.ndarray, bool]:
    """(1-D array of values, is_dimension) for one sweep parameter of the resonator, validated."""
    is_dim = not np.isscalar(value) and not isinstance(value, str)
    values = np.atleast_1d(np.asarray(list(value) if is_dim and not isinstance(value, np.ndarray) else value))
    if values.ndim != 1 or values.size == 0:
        raise UserError(f"{name} must be a scalar or a non-empty 1-D sequence")
    if name == "direction":
        for v in values:
            if v not in DIRECTIONS:
                raise UserError(f"direction must be one of {DIRECTIONS}, got {str(v)!r}")
        return values.astype(str), is_dim
    if values.dtype.kind not in "iuf" or values.dtype == bool:
        raise UserError(f"{name} must be a real number or a sequence of them, got {value!r}")
    values = values.astype(float)
    if not np.all(np.isfinite(values)):
        raise UserError(f"{name} must be finite, got {value!r}")
    if name != "detuning":
        for v in np.unique(values):
            Device(**{name: float(v)})  # raises ValueError naming the field and its allowed range
    return values, is_dim


def _is_swept(key: spec.Key, value) -> bool:
    """A list of values of a key that may be swept (a "list" form of scalar values) is a dimension."""
    return ("list" in key.forms and all(t in SCALAR_TYPES for t in key.types)
            and (isinstance(value, (list, tuple)) or isinstance(value, np.ndarray) and value.ndim > 0))


def _key_values(key: spec.Key, value) -> tuple[np.ndarray, bool]:
    """(1-D array of values, is_dimension) for one parameter of any system, checked against its ``Key``."""
    if not _is_swept(key, value):
        spec.check_value(key, value, key.name)
        values = np.empty(1, dtype=object)
        values[0] = value
        return (values if isinstance(value, (list, tuple, np.ndarray)) else np.asarray([value])), False
    items = np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value)
    if np.ndim(items) != 1:
        raise UserError(f"{key.name} must be a scalar or a non-empty 1-D sequence, got {spec.show(value)}")
    spec.check_value(key, items, key.name, forms=("list",))
    kind = {"number": float, "integer": np.int64, "boolean": bool}.get(key.types[0], str)
    return np.asarray(items, dtype=kind), True


def _check_names(params: Mapping[str, object], names: tuple[str, ...]) -> None:
    unknown = [k for k in params if k not in names]
    if unknown:
        raise UserError(f"unknown parameter(s) {unknown}; allowed: {list(names)}")


def parameter_grid(params: Mapping[str, object], system: LinearSystem | str | None = None):
    """Validated grid: (values per parameter, swept dimensions in order, grid shape, broadcast arrays).

    The parameters are those of ``system`` (default: the spinning resonator), checked against its
    ``parameters``; absent ones take their defaults.
    """
    system = as_system(system)
    names = tuple(system.parameters)
    _check_names(params, names)
    values, dims = {}, []
    for name, key in system.parameters.items():
        v = params.get(name, key.default)
        values[name], is_dim = _as_values(name, v) if isinstance(system, SpinningResonator) else _key_values(key, v)
        if is_dim and name in params:
            dims.append(name)
    dims.sort(key=list(params).index)  # dimensions in the order the caller gave them
    shape = tuple(values[d].size for d in dims)
    return values, dims, shape, {name: _broadcast(values[name], name, dims, shape) for name in names}


def _broadcast(values: np.ndarray, name: str, dims: list[str], shape: tuple[int, ...]) -> np.ndarray:
    """One parameter's values broadcast over the grid (a whole non-scalar value, e.g. a matrix: an object array)."""
    if name in dims:
        idx = [1] * len(dims)
        idx[dims.index(name)] = -1
        return np.broadcast_to(values.reshape(idx), shape)
    if values.dtype == object:
        out = np.empty(shape, dtype=object)
        out.fill(values[0])
        return out
    return np.broadcast_to(values[0], shape)


def validate_parameters(params: Mapping[str, object], system: LinearSystem | str | None = None) -> None:
    """Raise ValueError (naming the parameter and what is allowed) for any bad sweep parameter."""
    parameter_grid(params, system)


def sweep(*, system: LinearSystem | str | None = None, store_cov: bool = True, revival: bool | None = None,
          **params) -> xr.Dataset:
    """Steady state (Eqs. (6), (7), (11)–(13)) of ``system`` at every point of a parameter grid, as a Dataset.

    ``system``: a ``LinearSystem``, a registered name, or None (the spinning resonator). Keyword parameters:
    the system's [model] parameters (``system.parameters``: for the resonator ``detuning`` (Δ_c/ω_m),
    ``direction`` ('ccw'/'cw') and any ``Device`` field, rad/s, SI); each a scalar or a 1-D sequence (a
    dimension); omitted ones take their defaults (the paper's values). ``store_cov`` adds V (``cov``).
    ``revival`` (the resonator only) adds ``logneg_max`` and the revival factor χ of Eq. (14) (default:
    when detuning is a dimension). A system without a fast chain (``fast_chain``) takes the per-point path.
    """
    system = as_system(system)
    n_points = math.prod(parameter_grid(params, system)[2])
    block = sweep_block(params, 0, n_points, store_cov, system=system)
    return sweep_from_blocks(params, [block], store_cov, revival, system=system)


def sweep_block(params: Mapping[str, object], start: int, stop: int, store_cov: bool = True, *,
                system: LinearSystem | str | None = None) -> dict:
    """The raw outputs for the flat grid points [start, stop) (C order): a unit of sweep work.

    Each point is computed on its own, so blocks concatenated in order equal the whole sweep bitwise.
    """
    system = as_system(system)
    values, dims, shape, full = parameter_grid(params, system)
    chain = fast_chain(system)
    if chain is not None:
        return chain(full, start, stop, store_cov)
    return _points_block(system, values, dims, shape, range(start, stop), store_cov)


def sweep_from_blocks(params: Mapping[str, object], blocks: list[dict], store_cov: bool = True,
                      revival: bool | None = None, *, system: LinearSystem | str | None = None) -> xr.Dataset:
    """Assemble the Dataset of ``sweep`` from the raw outputs of consecutive ``sweep_block`` calls."""
    system = as_system(system)
    if fast_chain(system) is None:
        if revival:
            raise UserError(f"the revival factor (Eq. (14)) is defined for the spinning resonator, not for "
                            f"system {system.name!r}")
        return _assemble_points(system, params, blocks, store_cov)
    return _assemble_chain(params, blocks, store_cov, revival)


def _assemble_chain(params: Mapping[str, object], blocks: list[dict], store_cov: bool,
                    revival: bool | None) -> xr.Dataset:
    """The resonator's Dataset from the raw outputs of its chain (``SpinningResonator.steady_chain``)."""
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


def _point_params(values: Mapping[str, np.ndarray], dims: list[str], shape: tuple[int, ...],
                  k: int) -> dict[str, object]:
    """The parameters of the flat grid point ``k`` (C order), as plain Python values."""
    idx = np.unravel_index(k, shape) if shape else ()
    return {name: _plain(v[idx[dims.index(name)]] if name in dims else v[0]) for name, v in values.items()}


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x


def _points_block(system: LinearSystem, values: Mapping[str, np.ndarray], dims: list[str], shape: tuple[int, ...],
                  indices: Iterable[int], store_cov: bool) -> dict:
    """The per-point path: ``points`` at each flat grid point; stable, marginal, n_branches, logneg over every
    pair of modes (NaN where unstable) and V, NaN-padded to the block's most branches."""
    pairs = list(itertools.combinations(range(len(system.modes)), 2))
    per = [points(system, _point_params(values, dims, shape, k)) for k in indices]
    n, n_b, dim = len(per), max((len(p) for p in per), default=0), system.dimension
    out = dict(n_branches=np.array([len(p) for p in per], dtype=np.int64), stable=np.zeros((n, n_b), bool),
               marginal=np.zeros((n, n_b), bool), logneg=np.full((n, n_b, len(pairs)), np.nan))
    if store_cov:
        out["cov"] = np.full((n, n_b, dim, dim), np.nan)
    for i, branches in enumerate(per):
        for b, op in enumerate(branches):
            out["stable"][i, b], out["marginal"][i, b] = op.stable, op.marginal
            if op.cov is not None:
                out["logneg"][i, b] = [logneg_pair(op.cov, j, m) for j, m in pairs]
                if store_cov:
                    out["cov"][i, b] = op.cov
    return out


def _pad_branches(a: np.ndarray, n_b: int) -> np.ndarray:
    """A block's array NaN-padded (False for flags) along ``branch`` (axis 1) to ``n_b`` branches."""
    if a.ndim < 2 or a.shape[1] == n_b:
        return a
    width = [(0, 0)] * a.ndim
    width[1] = (0, n_b - a.shape[1])
    return np.pad(a, width, constant_values=False if a.dtype == bool else np.nan)


def _assemble_points(system: LinearSystem, params: Mapping[str, object], blocks: list[dict],
                     store_cov: bool) -> xr.Dataset:
    """The Dataset of the per-point path from its blocks (``_points_block``)."""
    values, dims, shape, _ = parameter_grid(params, system)
    clash = sorted(set(dims) & {"branch", "pair", "row", "col", *SEAM_VARIABLES})
    if clash:
        raise UserError(f"system {system.name!r}: parameter(s) {clash} clash with the sweep's own names")
    n_b = max(1, *(b["stable"].shape[1] for b in blocks))
    raw = {k: np.concatenate([_pad_branches(b[k], n_b) for b in blocks]) for k in blocks[0]}
    bshape, bdims = (*shape, n_b), (*dims, "branch")
    data = {"stable": (bdims, raw["stable"].reshape(bshape)),
            "marginal": (bdims, raw["marginal"].reshape(bshape)),
            "n_branches": (tuple(dims), raw["n_branches"].reshape(shape).astype(np.int32))}
    coords = {"branch": np.arange(n_b, dtype=np.int32)}
    n_pairs = raw["logneg"].shape[-1]
    if n_pairs:
        data["logneg"] = ((*bdims, "pair"), raw["logneg"].reshape((*bshape, n_pairs)))
        coords["pair"] = [f"{a}-{b}" for a, b in itertools.combinations(system.modes, 2)]
    if store_cov:
        data["cov"] = ((*bdims, "row", "col"), raw["cov"].reshape((*bshape, system.dimension, system.dimension)))
        coords["row"] = coords["col"] = list(system.quadratures)
    ds = apply_catalogue(xr.Dataset(data, coords=coords), title=f"sde_com steady-state sweep of {system.name}")
    ds = ds.assign_coords({d: (d, values[d], _key_attrs(system.parameters[d])) for d in dims})
    _label_for_system(ds, system)
    _annotate(ds, values, dims, system.quadratures)
    ds.attrs["system"] = system.name
    return ds


def _key_attrs(key: spec.Key) -> dict[str, str]:
    """CF attributes of a sweep parameter's coordinate from its ``Key`` (units, long_name)."""
    if "number" not in key.types and "integer" not in key.types:
        return {"long_name": key.doc}
    if key.unit in (spec.TIME, spec.RATE):
        return {"units": "1", "long_name": f"{key.doc} (in units of {spec.unit_text(key.unit)})"}
    return {"units": key.unit or "1", "long_name": key.doc}


def _label_for_system(ds: xr.Dataset, system: LinearSystem) -> None:
    """The long_names that name the resonator's modes or quadratures in the catalogue, for ``system``."""
    order = ", ".join(system.quadratures)
    texts = {"logneg": PAIR_LOGNEG_LONG_NAME, "branch": f"mean-field branch of {system.name}, in its order",
             "row": f"quadrature (row) in the order {order}", "col": f"quadrature (col) in the order {order}"}
    for name, text in texts.items():
        if name in ds.variables:
            ds[name].attrs["long_name"] = text


def _displacement(shift: np.ndarray, inp: Mapping[str, np.ndarray]) -> np.ndarray:
    """q_s = κy/G₀ from the root y = G₀q_s/κ; at G₀ = 0 the mechanics is not pushed (q_s = 0)."""
    G0 = inp["G0"][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(G0 > 0, shift * inp["kappa"][:, None] / G0, 0.0 * shift)


def _max_over_detuning(ds: xr.Dataset) -> xr.DataArray:
    reduce = [d for d in ("detuning", "branch") if d in ds.dims]
    return ds["logneg"].max(dim=reduce, skipna=True)


def _annotate(ds: xr.Dataset, values: Mapping[str, np.ndarray], dims: Iterable[str],
              quadratures: tuple[str, ...] = QUADRATURES) -> None:
    """Provenance attrs: every parameter value, the scalar parameters one by one, the conventions."""
    used = {k: (v.tolist() if k in dims else _plain(v[0])) for k, v in values.items()}
    ds.attrs["parameters"] = json.dumps(used, default=lambda x: np.asarray(x).tolist())
    for k, v in used.items():
        if k not in dims and isinstance(v, (str, int, float)):
            ds.attrs[k] = int(v) if isinstance(v, bool) else v
    ds.attrs["sde_com_conventions"] = (f"rates in rad s-1; quadratures ({', '.join(quadratures)}); vacuum "
                                       "variance 1/2")
