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

from sde_com.errors import UserError
from sde_com.kernel_cache import announce_compile
from sde_com.physics.gaussian import logneg
from sde_com.physics.model import points
from sde_com.physics.resonator.device import DEVICE_PARAMETERS
from sde_com.physics.resonator.system import chain_inputs
from sde_com.physics.system import LinearSystem, get_system, pair_labels
from sde_com.results.catalogue import VARIABLES, apply_catalogue, parameter_entry, variables_of

SWEEP_PARAMETERS: tuple[str, ...] = ("detuning", "direction", *DEVICE_PARAMETERS)

# the data variables a sweep can produce (their units and meaning: sde_com.results.catalogue)
VARIABLE_INFO: tuple[str, ...] = variables_of("sweep")
SEAM_VARIABLES: tuple[str, ...] = variables_of("seam_sweep")  # those of the per-point path


DEFAULT_SYSTEM = "spinning_resonator"  # what a run without a [system] table (or system=) runs: the seed paper's


def as_system(system: LinearSystem | str = DEFAULT_SYSTEM) -> LinearSystem:
    """A system given as a ``LinearSystem`` instance or the name of a registered one (``get_system``)."""
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


def _check_names(params: Mapping[str, object], names: tuple[str, ...]) -> None:
    unknown = [k for k in params if k not in names]
    if unknown:
        raise UserError(f"unknown parameter(s) {unknown}; allowed: {list(names)}")


class Grid(dict):
    """A run's parameters (a dict, as given) with their grid, built once (``parameter_grid``, the one grid
    rule) for the system they were checked against: a run builds it when its scenario is read, and every
    layer below that is handed it (in place of the parameters) reads the grid, the points and their ω_ref
    from it instead of building them again. Pickles without its arrays (a Dask worker builds them again)."""

    def __init__(self, params: Mapping[str, object], system: LinearSystem | str = DEFAULT_SYSTEM):
        dict.__init__(self, params)
        self.system = as_system(system)
        self._cache: dict = {}
        self.system.check_grid(self.grid)  # validated now, as the parameters are, at every point

    @property
    def grid(self) -> tuple:
        """(values, dims, shape, broadcast arrays) of ``parameter_grid``."""
        if "grid" not in self._cache:
            self._cache["grid"] = _build_grid(dict(self), self.system)
        return self._cache["grid"]

    def cached(self, key: str, make):
        """``make()``, once per grid (the points' parameters, their ω_ref, ...)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _read_only(self, *args, **kwargs):
        raise TypeError("a Grid's parameters are fixed (its grid is built from them): make a new Grid")

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = _read_only  # type: ignore[assignment]

    def __reduce__(self):  # the parameters and the system; the grid is built again where it is unpickled
        return (type(self), (dict(self), self.system))


def parameter_grid(params: Mapping[str, object], system: LinearSystem | str = DEFAULT_SYSTEM):
    """Validated grid: (values per parameter, swept dimensions in order, grid shape, broadcast arrays).

    The parameters are those of ``system``, each checked by its ``parameter_values`` (a list of a key that
    may be swept is a dimension); absent ones take their defaults. The one grid of every run kind; a ``Grid``
    of the same system gives the one it built.
    """
    system = as_system(system)
    if isinstance(params, Grid) and same_system(params.system, system):
        return params.grid
    return _build_grid(params, system)


def same_system(a: LinearSystem, b: LinearSystem) -> bool:
    """Whether two system instances are the same system (a registered one made twice, or equal matrices)."""
    return a is b or (type(a) is type(b) and a.definition() == b.definition())


def _build_grid(params: Mapping[str, object], system: LinearSystem):
    names = tuple(system.parameters)
    _check_names(params, names)
    values, dims = {}, []
    for name, key in system.parameters.items():
        v = params.get(name, key.default)
        values[name], is_dim = system.parameter_values(name, v)
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


def sweep(*, system: LinearSystem | str = DEFAULT_SYSTEM, store_cov: bool = True, revival: bool | None = None,
          **params) -> xr.Dataset:
    """Steady state (Eqs. (6), (7), (11)–(13)) of ``system`` at every point of a parameter grid, as a Dataset.

    ``system``: a ``LinearSystem`` or a registered name (default: the spinning resonator). Keyword parameters:
    the system's [model] parameters (``system.parameters``: for the resonator ``detuning`` (Δ_c/ω_m),
    ``direction`` ('ccw'/'cw') and any ``Device`` field, rad/s, SI); each a scalar or a 1-D sequence (a
    dimension); omitted ones take their defaults (the paper's values). ``store_cov`` adds V (``cov``).
    ``revival`` (the resonator only) adds ``logneg_max`` and the revival factor χ of Eq. (14) (default:
    when detuning is a dimension). A system without a fast chain (``fast_chain``) takes the per-point path.
    """
    return steady_sweep(Grid(params, system), store_cov, revival)


def steady_sweep(grid: Grid, store_cov: bool = True, revival: bool | None = None) -> xr.Dataset:
    """``sweep`` over a ``Grid`` built before (its system and parameters)."""
    announce_compile(grid.system.kernel_modules)
    block = sweep_block(grid, 0, math.prod(grid.grid[2]), store_cov, system=grid.system)
    return sweep_from_blocks(grid, [block], store_cov, revival, system=grid.system)


def sweep_block(params: Mapping[str, object], start: int, stop: int, store_cov: bool = True, *,
                system: LinearSystem | str = DEFAULT_SYSTEM) -> dict:
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
                      revival: bool | None = None, *, system: LinearSystem | str = DEFAULT_SYSTEM) -> xr.Dataset:
    """Assemble the Dataset of ``sweep`` from the raw outputs of consecutive ``sweep_block`` calls."""
    system = as_system(system)
    if fast_chain(system) is None:
        if revival:
            raise UserError(f"the revival factor (Eq. (14)) is defined for the spinning resonator, not for "
                            f"system {system.name!r}")
        return _assemble_points(system, params, blocks, store_cov)
    return _assemble_chain(system, params, blocks, store_cov, revival)


_CHAIN_BRANCH_VARIABLES = ("logneg", "logneg_reflected", "logneg_optical", "photons", "photons_reflected",
                           "coupling", "coupling_reflected", "displacement", "stable")  # (points, branch)


def chain_variables(block: Mapping[str, np.ndarray], n_b: int) -> dict[str, np.ndarray]:
    """The resonator's per-point variables from raw chain outputs (``SpinningResonator.steady_chain``) of a
    block of flat points: photons |α_j|² and the couplings √2 G₀|α_j|/ω_m of the mean fields of Eq. (7), the
    displacement q_s, E_N of Eqs. (12)–(13), stability of Eq. (6); name → (points, branch) array with ``n_b``
    branches (NaN / False padded), plus
    ``n_branches`` (points,) and ``cov`` (points, branch, 6, 6) when the block has it. Elementwise in the
    points, so a block's values equal those of the whole grid bitwise."""
    out = {k: _pad_branches(v, n_b)[:, :n_b] if v.ndim > 1 else v for k, v in block.items()
           if k not in ("kappa", "G0", "omega_m", "sagnac_shift")}
    inp = {k: block[k] for k in ("kappa", "G0", "omega_m")}
    g = math.sqrt(2.0) * inp["G0"][:, None] / inp["omega_m"][:, None]
    data = {
        "logneg": out["logneg"][:, :, 0],
        "logneg_reflected": out["logneg"][:, :, 1],
        "logneg_optical": out["logneg"][:, :, 2],
        "photons": np.abs(out["alpha_u"]) ** 2,
        "photons_reflected": np.abs(out["alpha_v"]) ** 2,
        "coupling": g * np.abs(out["alpha_u"]),
        "coupling_reflected": g * np.abs(out["alpha_v"]),
        "displacement": _displacement(out["shift"], inp),
        "stable": out["stable"],
        "n_branches": out["n_branches"].astype(np.int32),
    }
    if "cov" in out:
        data["cov"] = out["cov"]
    return data


def _assemble_chain(system: LinearSystem, params: Mapping[str, object], blocks: list[dict], store_cov: bool,
                    revival: bool | None) -> xr.Dataset:
    """The Dataset from the raw outputs of a system's chain (``SpinningResonator.steady_chain``)."""
    values, dims, shape, _ = parameter_grid(params, system)
    n_b = max(1, *(int(b["n_branches"].max(initial=0)) for b in blocks))
    parts = [chain_variables(b, n_b) for b in blocks]
    bdims = (*dims, "branch")
    data = {}
    for name, arr in ((k, np.concatenate([p[k] for p in parts])) for k in parts[0]):
        vdims = tuple(dims) if name == "n_branches" else (*bdims, "row", "col") if name == "cov" else bdims
        data[name] = (vdims, arr.reshape((*shape, *arr.shape[1:])))
    data["sagnac_shift"] = (tuple(dims), _sagnac_over_grid(blocks).reshape(shape))
    coords = {d: values[d] for d in dims}
    coords["branch"] = np.arange(n_b, dtype=np.int32)
    if store_cov:
        coords["row"] = list(system.quadratures)
        coords["col"] = list(system.quadratures)
    ds = xr.Dataset(data, coords=coords)
    # Δ_F depends on the spin and the device only
    ds["sagnac_shift"] = ds["sagnac_shift"].isel({d: 0 for d in ("detuning", "direction") if d in dims},
                                                 drop=True)
    if revival is None:
        revival = default_revival(dims, values)
    if revival:
        ds["logneg_max"] = _max_over_detuning(ds)
        ds["revival"] = ds["logneg_max"] / ideal_logneg_max(params, system)
    annotate(ds, values, dims, system.quadratures)
    return apply_catalogue(ds, title=SWEEP_TITLE, system=system)


SWEEP_TITLE = "sde_com steady-state sweep"


def _sagnac_over_grid(blocks: list[dict]) -> np.ndarray:
    return np.concatenate([b["sagnac_shift"] / b["omega_m"] for b in blocks])


def default_revival(dims, values) -> bool:
    """The revival factor is reported by default when detuning is a dimension of more than one value."""
    return "detuning" in dims and values["detuning"].size > 1


def ideal_logneg_max(params: Mapping[str, object], system: LinearSystem | str = DEFAULT_SYSTEM) -> xr.DataArray:
    """The denominator of the revival factor χ of Eq. (14): max E_N over detuning (and branch) of the ideal
    device (Ω = 0, J = 0, either direction) at the sweep's other parameters."""
    ideal_params = {k: v for k, v in params.items() if k not in ("Omega", "J", "direction")}
    ideal = sweep(system=system, store_cov=False, revival=False, Omega=0.0, J=0.0, **ideal_params)
    return _max_over_detuning(ideal)


def streamed_layout(params: Mapping[str, object], names,
                    system: LinearSystem | str = DEFAULT_SYSTEM) -> tuple[dict, dict]:
    """What a streamed sweep writes block by block (``chain_variables``): (dimension sizes with ``branch``
    unlimited, {name: (dims, netCDF dtype, attributes, fill)}) for the wanted ``names``."""
    system = as_system(system)
    values, dims, shape, _ = parameter_grid(params, system)
    d = system.dimension
    sizes = {**dict(zip(dims, shape, strict=True)), "branch": None, "row": d, "col": d}
    bdims = (*dims, "branch")
    layout = {}
    for name in ("logneg", "logneg_reflected", "logneg_optical", "photons", "photons_reflected", "coupling",
                 "coupling_reflected", "displacement", "stable", "n_branches", "cov"):
        if name in names:
            vdims = tuple(dims) if name == "n_branches" else (*bdims, "row", "col") if name == "cov" else bdims
            dtype = {"stable": "i1", "n_branches": "i4"}.get(name, "f8")
            attrs = {**VARIABLES[name].attrs, **({"dtype": "bool"} if name == "stable" else {})}
            layout[name] = (vdims, dtype, attrs, np.nan if dtype == "f8" else None)  # flags: padded explicitly
    return sizes, layout


def streamed_tail(params: Mapping[str, object], n_b: int, store_cov: bool, logneg_max: np.ndarray | None,
                  names, system: LinearSystem | str = DEFAULT_SYSTEM) -> xr.Dataset:
    """The part of a streamed sweep written at the end: coordinates, ``sagnac_shift`` (Δ_F/ω_m, Eq. (1)),
    ``logneg_max`` and ``revival`` χ (Eq. (14), from the running maximum ``logneg_max`` over detuning and
    branch, reduced dims), attributes."""
    system = as_system(system)
    values, dims, shape, full = parameter_grid(params, system)
    coords = {d: values[d] for d in dims}
    coords["branch"] = np.arange(n_b, dtype=np.int32)
    if store_cov:
        coords["row"] = list(system.quadratures)
        coords["col"] = list(system.quadratures)
    ds = xr.Dataset(coords=coords)
    if "sagnac_shift" in names:  # Δ_F depends on the spin and the device only
        reduced = {d: 0 for d in ("detuning", "direction") if d in dims}
        rdims = [d for d in dims if d not in reduced]
        sub = {k: v[tuple(0 if d in reduced else slice(None) for d in dims)] for k, v in full.items()}
        inp = chain_inputs(sub)
        rshape = tuple(values[d].size for d in rdims)
        ds["sagnac_shift"] = (tuple(rdims), (inp["sagnac_shift"] / inp["omega_m"]).reshape(rshape))
    if logneg_max is not None:
        rdims = tuple(d for d in dims if d != "detuning")
        ds["logneg_max"] = (rdims, logneg_max.reshape(tuple(values[d].size for d in rdims)))
        if "revival" in names:
            ds["revival"] = ds["logneg_max"] / ideal_logneg_max(params, system)
        if "logneg_max" not in names:
            ds = ds.drop_vars("logneg_max")
    annotate(ds, values, dims, system.quadratures)
    return apply_catalogue(ds, title=SWEEP_TITLE, system=system)


def running_logneg_max(params: Mapping[str, object], system: LinearSystem | str = DEFAULT_SYSTEM):
    """(size of the reduced grid, fold) for the maximum of ``logneg`` over detuning and branch (the numerator
    of the revival factor, Eq. (14)), block by block: ``fold(acc, start, logneg_block)`` updates ``acc``
    (NaN-initialized, reduced grid flattened) with the flat points [start, start + len(block)). Maximum is
    exact, so the fold equals the Dataset's max."""
    values, dims, shape, _ = parameter_grid(params, system)
    keep = [i for i, d in enumerate(dims) if d != "detuning"]
    rshape = tuple(shape[i] for i in keep)

    def fold(acc: np.ndarray, start: int, logneg: np.ndarray) -> None:
        per_point = np.fmax.reduce(logneg, axis=1) if logneg.shape[1] else np.full(logneg.shape[0], np.nan)
        index = np.unravel_index(np.arange(start, start + logneg.shape[0]), shape)
        target = np.ravel_multi_index(tuple(index[i] for i in keep), rshape) if keep else np.zeros(len(per_point), int)
        np.fmax.at(acc, target, per_point)

    return math.prod(rshape), fold


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
    indices = list(indices)
    per = [points(system, _point_params(values, dims, shape, k)) for k in indices]
    n, n_b, dim = len(per), max((len(p) for p in per), default=0), system.dimension
    out = dict(n_branches=np.array([len(p) for p in per], dtype=np.int64), stable=np.zeros((n, n_b), bool),
               marginal=np.zeros((n, n_b), bool), logneg=np.full((n, n_b, len(pairs)), np.nan))
    if store_cov:
        out["cov"] = np.full((n, n_b, dim, dim), np.nan)
    for name in system.mean_field_variables:
        out[name] = np.full((n, n_b), np.nan)
    for i, (k, branches) in enumerate(zip(indices, per, strict=True)):
        params = _point_params(values, dims, shape, k) if system.mean_field_variables else {}
        for b, op in enumerate(branches):
            for name, value in system.mean_field_outputs(op.mean_field, params).items():
                out[name][i, b] = value
            out["stable"][i, b], out["marginal"][i, b] = op.stable, op.marginal
            if op.cov is not None:
                out["logneg"][i, b] = [logneg(op.cov, j, m) for j, m in pairs]
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
            "n_branches": (tuple(dims), raw["n_branches"].reshape(shape).astype(np.int32)),
            **{name: (bdims, raw[name].reshape(bshape)) for name in system.mean_field_variables}}
    coords = {"branch": np.arange(n_b, dtype=np.int32)}
    n_pairs = raw["logneg"].shape[-1]
    if n_pairs:
        data["logneg"] = ((*bdims, "pair"), raw["logneg"].reshape((*bshape, n_pairs)))
        coords["pair"] = pair_labels(system.modes)
    if store_cov:
        data["cov"] = ((*bdims, "row", "col"), raw["cov"].reshape((*bshape, system.dimension, system.dimension)))
        coords["row"] = coords["col"] = list(system.quadratures)
    ds = apply_catalogue(xr.Dataset(data, coords=coords), title=f"sde_com steady-state sweep of {system.name}",
                         system=system)
    ds = ds.assign_coords({d: (d, values[d], parameter_entry(system.parameters[d]).attrs) for d in dims})
    annotate(ds, values, dims, system.quadratures)
    return ds


def _displacement(shift: np.ndarray, inp: Mapping[str, np.ndarray]) -> np.ndarray:
    """q_s = κy/G₀ from the root y = G₀q_s/κ; at G₀ = 0 the mechanics is not pushed (q_s = 0)."""
    G0 = inp["G0"][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(G0 > 0, shift * inp["kappa"][:, None] / G0, 0.0 * shift)


def _max_over_detuning(ds: xr.Dataset) -> xr.DataArray:
    reduce = [d for d in ("detuning", "branch") if d in ds.dims]
    return ds["logneg"].max(dim=reduce, skipna=True)


def annotate(ds: xr.Dataset, values: Mapping[str, np.ndarray], dims: Iterable[str],
              quadratures: tuple[str, ...]) -> None:
    """Provenance attrs: every parameter value, the scalar parameters one by one, the conventions."""
    used = {k: (v.tolist() if k in dims else _plain(v[0])) for k, v in values.items()}
    ds.attrs["parameters"] = json.dumps(used, default=lambda x: np.asarray(x).tolist())
    for k, v in used.items():
        if k not in dims and isinstance(v, (str, int, float)):
            ds.attrs[k] = int(v) if isinstance(v, bool) else v
    ds.attrs["sde_com_conventions"] = (f"rates in rad s-1; quadratures ({', '.join(quadratures)}); vacuum "
                                       "variance 1/2")
