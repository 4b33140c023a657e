"""Figures from sweep Datasets, as the scenario's ``[plot]`` table asks (needs the ``plot`` extra).

``[plot]`` keys:
    kind = "lines", "map", "estimate" (a simulated quantity ± 1σ against its references over x = "time",
           "dt" or a swept parameter; variable = "logneg"), "matrix" (a 6×6 variable such as "zscore"),
           "traces" (recorded quadratures against time: y = list of quadratures, one panel each; first 3
           trajectories) or "spectra" (homodyne output spectrum and filtered-mode E_N);
    lines: x (a dimension), y (list of variables: one panel each), hue (dimensions: one line per combination),
           panel (optional dimension: one panel per value, for every y);
    map:   x, y (dimensions), variable; one panel per value of any remaining dimension (e.g. direction);
    title, panel_titles (optional strings).
Keys left out take defaults chosen from the Dataset's dimensions (``sde_com.runs.plotspec``: without a kind, one
swept parameter → lines over it; two → lines over the one with more values, one line per value of the other
when it has ≤ 6 values, else a map; time-domain runs → the estimate over time or dt, or the z-score matrix).
Every point is shown: dimensions that the spec does not place are added to the hue (lines) or give one panel
per value (map, estimate, matrix, traces). A figure that cannot be drawn raises ``PlotError`` saying why.
Quantities with a ``branch`` dimension are drawn for stable branches only (each branch its own line). Time is
the ``time`` dimension (seconds); x = "time" or "time_scaled" draws it as ω_ref·t.

The spec (``resolve_spec``, ``PlotError``) lives in ``sde_com.runs.plotspec`` and needs no matplotlib
(``scenario.check_plot`` applies it before a run); matplotlib is imported inside the drawing functions only.
"""

from __future__ import annotations

import itertools
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from sde_com.physics.resonator.drift import QUADRATURES
from sde_com.results.io import atomic_output, check_writable, from_disk_layout
from sde_com.runs.plotspec import INTERNAL_DIMS, PLOT_KINDS, PlotError, default_spec, resolve_spec

__all__ = ["INTERNAL_DIMS", "PLOT_KINDS", "PlotError", "dataset_outline", "dataset_spec", "default_spec",
           "draw_dataset", "plot_dataset", "resolve_spec"]


# name: (symbol, unit, scale); values are multiplied by scale so that the numbers match the paper's axes
# (its "kHz"/"MHz" are read literally as 10³ and 10⁶ rad s⁻¹, see docs/physics.md).
AXES: dict[str, tuple[str, str, float]] = {
    "detuning": ("Δ_c/ω_m", "", 1.0),
    "Omega": ("Ω", "10³ rad s⁻¹", 1e-3),
    "J": ("J", "10⁶ rad s⁻¹", 1e-6),
    "temperature": ("T", "K", 1.0),
    "power": ("P", "mW", 1e3),
    "omega_m": ("ω_m", "10⁶ rad s⁻¹", 1e-6),
    "gamma_m": ("γ_m", "rad s⁻¹", 1.0),
    "mass": ("m", "ng", 1e12),
    "radius": ("R", "µm", 1e6),
    "wavelength": ("λ", "nm", 1e9),
    "quality_factor": ("Q", "", 1.0),
    "refractive_index": ("n", "", 1.0),
    "dn_dlambda": ("dn/dλ", "µm⁻¹", 1e-6),
    "logneg": ("E_N", "", 1.0),
    "logneg_reflected": ("E_N (V, mech)", "", 1.0),
    "logneg_optical": ("E_N (U, V)", "", 1.0),
    "logneg_max": ("max over Δ_c of E_N", "", 1.0),
    "photons": ("N_j", "10⁹", 1e-9),
    "photons_reflected": ("N_V", "10⁹", 1e-9),
    "coupling": ("|G_j|/ω_m", "", 1.0),
    "coupling_reflected": ("|G_V|/ω_m", "", 1.0),
    "displacement": ("q_s", "", 1.0),
    "sagnac_shift": ("Δ_F/ω_m", "", 1.0),
    "revival": ("χ", "", 1.0),
    "time": ("t", "µs", 1e6),
    "time_scaled": ("ω_m t", "", 1.0),
    "dt": ("ω_m dt", "", 1.0),
    "zscore": ("z = (V_sim − V_ref)/σ", "", 1.0),
    "difference_z": ("(V_TW − V_lin)/σ", "", 1.0),
    "cov": ("V", "", 1.0),
    "logneg_conditional": ("E_N (conditional state)", "", 1.0),
    "purity": ("purity Tr ρ²", "", 1.0),
    "purity_conditional": ("purity Tr ρ² (conditional state)", "", 1.0),
    "occupation": ("⟨δa†δa⟩", "", 1.0),
    "occupation_conditional": ("⟨δa†δa⟩ (conditional state)", "", 1.0),
    "squeezing": ("smallest variance", "dB", 1.0),
    "squeezing_conditional": ("smallest variance (conditional state)", "dB", 1.0),
}
UNITS = {"rad/s": "rad s⁻¹", "1/m": "m⁻¹", "1/s": "s⁻¹", "1": ""}


def _system_words(ds: xr.Dataset | None) -> tuple[bool, str]:
    """(whether the catalogue's words, the axes' symbols, are the file's system's own; the symbol of its ω_ref),
    from the registered system the file names (``LinearSystem.catalogue_words``, ``reference_symbol``; a file
    without the attribute: the default system's; a system not registered here: neither, ω_ref)."""
    from sde_com.physics.system import get_system, system_names
    from sde_com.results.sweep import DEFAULT_SYSTEM

    name = DEFAULT_SYSTEM if ds is None else ds.attrs.get("system", DEFAULT_SYSTEM)
    if name not in system_names():
        return False, "ω_ref"
    system = get_system(name)
    return system.catalogue_words, system.reference_symbol


def _symbol(name: str, ds: xr.Dataset | None) -> tuple[str, str, float]:
    """AXES[name]; for a system whose words they are not, in its ω_ref's symbol, and its detuning (bare Δ₀ or
    effective Δ, its ``detuning_kind`` parameter) instead of the resonator's Δ_c."""
    symbol, unit, scale = AXES[name]
    own, ref = _system_words(ds)
    if not own:
        symbol = symbol.replace("ω_m", ref).replace("N_j", "N")
        if name == "detuning":
            kind = json.loads(ds.attrs.get("parameters", "{}")).get("detuning_kind", "bare")
            symbol = f"Δ/{ref}" if kind == "effective" else f"Δ₀/{ref}"
    return symbol, unit, scale


def _axis(name: str, ds: xr.Dataset | None = None) -> tuple[str, float]:
    """(axis label with its unit, scale to apply to the values); times in the file's system's ω_ref."""
    if name in AXES:
        symbol, unit, scale = _symbol(name, ds)
        return (f"{symbol} ({unit})" if unit else symbol), scale
    units = ds[name].attrs.get("units", "") if ds is not None and name in ds.variables else ""
    units = UNITS.get(units, units)
    return (f"{name} ({units})" if units else name), 1.0


def _label(dim: str, value, ds: xr.Dataset | None = None) -> str:
    """'Ω = 8×10³ rad s⁻¹', 'ccw', 'T = 0.13 K': one value of a dimension, for legends and panel titles."""
    if isinstance(value, (str, np.str_)):
        return str(value)
    symbol, unit, scale = _symbol(dim, ds) if dim in AXES else (dim, "", 1.0)
    v = float(value) * scale
    if unit.startswith("10") and v != 0:
        return f"{symbol} = {v:g}×{unit}"
    if unit.startswith("10"):
        return f"{symbol} = 0{unit[unit.find(' '):] if ' ' in unit else ''}"
    return f"{symbol} = {v:g}{' ' + unit if unit else ''}"


# Spec of a Dataset (no matplotlib) ----------------------------------------------------------------------


def dataset_outline(ds: xr.Dataset) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
    """(dimension sizes, data variable → dimensions): what ``resolve_spec`` needs to know of a Dataset."""
    return dict(ds.sizes), {str(k): tuple(str(d) for d in v.dims) for k, v in ds.data_vars.items()}


def dataset_spec(ds: xr.Dataset) -> dict:
    """The resolved figure spec of ``ds``: its ``plot`` attribute (the scenario's [plot]) with defaults."""
    try:
        spec = json.loads(ds.attrs.get("plot", "{}"))
    except json.JSONDecodeError as exc:
        raise PlotError(f"the dataset's 'plot' attribute is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise PlotError(f"the dataset's 'plot' attribute must be a table, got {spec!r}")
    from sde_com.runs.kinds import default_figure

    quadratures = tuple(str(q) for q in ds["quadrature"].values) if "quadrature" in ds.coords else QUADRATURES
    sizes, variables = dataset_outline(ds)
    return resolve_spec(spec, sizes, variables, quadratures, default_figure(sizes, variables))


# Drawing -------------------------------------------------------------------------------------------------


def plot_dataset(ds: xr.Dataset, path: str | Path, force: bool = False) -> Path:
    """Draw the figure described by ``ds.attrs['plot']`` (or a default) and write it as PNG atomically.

    Raises PlotError (a ValueError) before anything is written when the figure cannot be drawn.
    """
    path = check_writable(path, force)
    fig = draw_dataset(ds)
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path, force, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def draw_dataset(ds: xr.Dataset):
    """The matplotlib Figure of ``ds`` (see ``plot_dataset``), laid out so that no text leaves the canvas.

    ``ds`` may come from a run, from ``read_dataset`` or straight from ``xarray.open_dataset`` (time axis
    indexed by ``time_scaled``, as in the file)."""
    ds = from_disk_layout(ds)
    spec = dataset_spec(ds)  # PlotError before any drawing
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawers = {"lines": _lines, "map": _map, "estimate": _estimate, "matrix": _matrix, "traces": _traces,
               "spectra": _spectra}
    fig = drawers[spec["kind"]](ds, spec, plt)
    try:
        title = spec.get("title") or ds.attrs.get("title", "")
        if title:
            fig.suptitle(title, fontsize=10)
        _fit_texts(fig)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _fit_texts(fig) -> None:
    """Wrap the suptitle and panel titles that are wider than the figure / their panel, then lay out again."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [(fig._suptitle, fig.bbox.width * 0.96)] if fig._suptitle is not None else []
    texts += [(ax.title, max(ax.bbox.width * 1.15, 60.0)) for ax in fig.axes if ax.get_title()]
    changed = False
    for text, room in texts:
        original = text.get_text()
        width = text.get_window_extent(renderer).width
        if width > room:
            chars = max(12, int(len(original) * room / width * 0.95))
            text.set_text(textwrap.fill(original, chars))
            changed = True
    if changed:
        fig.canvas.draw()


def _grid(plt, n: int, width: float, height: float, legend: float = 0.0, ncols: int = 4):
    """A constrained-layout figure with n panels in rows of at most ``ncols``; ``legend``: extra inches."""
    ncols = max(1, min(n, ncols))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + legend, height * nrows), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def _combos(ds: xr.Dataset, dims: Sequence[str]) -> list[dict[str, int]]:
    return [dict(zip(dims, c, strict=True)) for c in itertools.product(*[range(ds.sizes[d]) for d in dims])]


def _title(ds: xr.Dataset, combo: Mapping[str, int]) -> str:
    return ", ".join(_label(d, ds[d].values[i], ds) if d in ds.coords else f"{d} {i}" for d, i in combo.items())


def _first(da: xr.DataArray, keep: Sequence[str]) -> xr.DataArray:
    """``da`` at index 0 of every dimension not in ``keep`` (those have one value, or are placed elsewhere)."""
    return da.isel({d: 0 for d in da.dims if d not in keep})


def _xvalues(ds: xr.Dataset, x: str) -> tuple[np.ndarray, str]:
    """(values to draw, axis label) of the x dimension; time as ω_m t (ω_ref t) where the output has it."""
    if x == "time" and "time_scaled" in ds.coords:
        return np.asarray(ds["time_scaled"].values, dtype=float), _axis("time_scaled", ds)[0]
    label, scale = _axis(x, ds)
    values = ds[x].values if x in ds.coords else np.arange(ds.sizes[x])
    if values.dtype.kind in "iuf":
        values = values * scale
    return values, label


def _stable_only(ds: xr.Dataset, name: str) -> xr.DataArray:
    da = ds[name]
    if "branch" in da.dims and "stable" in ds and "branch" in ds["stable"].dims:
        da = da.where(ds["stable"])
    return da


def _outside_legend(fig, handles, labels, where: str = "right") -> None:
    if not handles:
        return
    if where == "right":
        fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    else:
        fig.legend(handles, labels, loc="outside lower center", fontsize=8, frameon=False,
                   ncols=min(len(labels), 3))


LINESTYLES = ("-", "--", ":", "-.")
OMEGA_SHOWN = 3.0  # spectra: |ω|/ω_m up to this


def _lines(ds, spec, plt):
    x, ys, hue, panel = spec["x"], spec["y"], spec["hue"], spec["panel"]
    panels = [(name, i) for name in ys for i in range(ds.sizes[panel] if panel else 1)]
    combos = _combos(ds, hue)
    legend = 1.9 if len(combos) > 1 else 0.0
    fig, axes = _grid(plt, len(panels), 4.2, 3.4, legend=legend, ncols=3)
    xv, xlabel = _xvalues(ds, x)
    marker = "o" if ds.sizes[x] <= 15 else None
    titles = spec.get("panel_titles", [])
    # one colour per line, the line style cycling with the last hue dimension: equal curves stay visible
    styles = ds.sizes[hue[-1]] if hue else 1
    for k, (ax, (name, p_index)) in enumerate(zip(axes, panels, strict=True)):
        da = _stable_only(ds, name)
        title = titles[k] if k < len(titles) else ""
        if panel:
            da = da.isel({panel: p_index})
            title = f"{title}  {_label(panel, ds[panel].values[p_index], ds)}".strip()
        if title:
            ax.set_title(title, fontsize=9)
        ylabel, yscale = _axis(name, ds)
        for c_index, combo in enumerate(combos):
            sel = _first(da.isel(combo), (x, "branch"))
            label = _title(ds, combo) or name
            style = dict(color=f"C{c_index % 10}", ls=LINESTYLES[c_index % styles % len(LINESTYLES)])
            branches = sel.transpose(x, ...).values.reshape(ds.sizes[x], -1)
            for b in range(branches.shape[1]):
                ax.plot(xv, branches[:, b] * yscale, label=label if b == 0 else None, lw=1.4, marker=marker,
                        ms=3, **style)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if len(combos) > 1:
        _outside_legend(fig, *axes[0].get_legend_handles_labels())
    return fig


def _estimate(ds, spec, plt):
    """A simulated quantity with its ±1σ band against its references, over ``x`` (time, dt, a parameter)."""
    x, name = spec["x"], spec["variable"]
    combos = [c for c in _combos(ds, spec["panels"])
              if not np.all(np.isnan(_first(ds[f"{name}_sim"].isel(c), (x,)).values))] or _combos(ds, spec["panels"])
    fig, axes = _grid(plt, len(combos), 5.2, 3.4, ncols=3)
    xv, xlabel = _xvalues(ds, x)
    for ax, combo in zip(axes, combos, strict=True):
        est = _first(ds[f"{name}_sim"].isel(combo), (x,)).values
        err = _first(ds[f"{name}_sim_err"].isel(combo), (x,)).values
        ax.fill_between(xv, est - err, est + err, color="C0", alpha=0.3, lw=0)
        ax.plot(xv, est, "o-", color="C0", ms=3, label="simulated ± 1σ")
        if f"{name}_ref" in ds:
            ref = _first(ds[f"{name}_ref"].isel({d: i for d, i in combo.items() if d in ds[f"{name}_ref"].dims}),
                         (x,))
            ref_label = "moment solution" if x == "time" else "scheme's own stationary value"
            ax.plot(xv, ref.values * np.ones_like(xv, dtype=float), "k--", label=ref_label)
        if x != "time" and name in ds:
            lyap = _first(ds[name].isel({d: i for d, i in combo.items() if d in ds[name].dims}), (x,))
            if x in lyap.dims:
                ax.plot(xv, lyap.values, color="C3", label="Lyapunov (dt → 0)")
            else:
                ax.axhline(float(lyap), color="C3", label="Lyapunov (dt → 0)")
        if x == "dt":
            ax.set_xscale("log")
            ax.set_xticks(xv, [f"{v:g}" for v in xv], minor=False)
            ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_axis(name, ds)[0])
        if combo:
            ax.set_title(_title(ds, combo), fontsize=9)
    _outside_legend(fig, *axes[0].get_legend_handles_labels(), where="below")
    return fig


def _matrix(ds, spec, plt):
    """A 6×6 (row, col) variable, e.g. the z-scores of a cross-check, with its numbers written in."""
    name = spec["variable"]
    combos = _combos(ds, spec["panels"])
    fig, axes = _grid(plt, len(combos), 4.0, 4.0, legend=0.9, ncols=3)
    values = [_first(ds[name].isel(c), ("row", "col")).transpose("row", "col") for c in combos]
    finite = np.concatenate([np.abs(v.values[np.isfinite(v.values)]) for v in values])
    largest = float(finite.max()) if finite.size else 0.0
    z = name != "cov"  # z-scores: a common ±3 scale at least, one decimal
    lim = max(3.0, largest) if z else largest or 1.0
    for ax, combo, da in zip(axes, combos, values, strict=True):
        mesh = ax.imshow(da.values, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for r in range(da.shape[0]):
            for c in range(da.shape[1]):
                number = f"{da.values[r, c]:.1f}" if z else f"{da.values[r, c]:.2g}"
                ax.text(c, r, number.removeprefix("-") if float(number) == 0 else number, ha="center",
                        va="center", fontsize=7)
        rows = ds["row"].values if "row" in ds.coords else QUADRATURES
        cols = ds["col"].values if "col" in ds.coords else QUADRATURES
        ax.set_xticks(range(da.shape[1]), cols)
        ax.set_yticks(range(da.shape[0]), rows)
        ax.set_xlabel("quadrature (column)")
        ax.set_ylabel("quadrature (row)")
        head = _title(ds, combo)
        if z:  # the largest |entry| of what is shown
            head = f"{head}\n" if head else ""
            shown = np.abs(da.values[np.isfinite(da.values)])
            head += f"max |{_axis(name)[0].split(' = ')[0]}| = {float(shown.max()) if shown.size else np.nan:.2f}"
        if head:
            ax.set_title(head, fontsize=9)
    fig.colorbar(mesh, ax=axes, label=_axis(name, ds)[0], shrink=0.9)
    return fig


def _traces(ds, spec, plt):
    """Recorded quadratures u(t) of the first few trajectories, one panel per quadrature (and point)."""
    quads = spec["y"]
    combos = _combos(ds, spec["panels"])
    fig, axes = _grid(plt, len(combos) * len(quads), 4.4, 3.2, legend=1.3, ncols=len(quads))
    xv, xlabel = _xvalues(ds, "time")
    panels = [(c, q) for c in combos for q in quads]
    for ax, (combo, q) in zip(axes, panels, strict=True):
        tr = _first(ds["trace"].isel(combo), ("trajectory", "time", "quadrature"))
        if "estimate" in ds:  # a watched trajectory: its state, the filter's estimate and its ±σ band
            _watched(ax, xv, tr.sel(quadrature=q).isel(trajectory=0).values, ds.isel(combo), q)
        else:
            for k in range(min(3, ds.sizes["trajectory"])):
                ax.plot(xv, tr.sel(quadrature=q).isel(trajectory=k).values, lw=0.7, label=f"trajectory {k}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"δ{q} (vacuum variance 1/2)")
        if combo:
            ax.set_title(_title(ds, combo), fontsize=9)
    _outside_legend(fig, *axes[0].get_legend_handles_labels())
    return fig


def _watched(ax, x, true, ds, q) -> None:
    """Trajectory 0 of a conditional run: u, the estimate x̂ and x̂ ± σ with σ² the filter's P_qq."""
    est = ds["estimate"].isel(trajectory=0).sel(quadrature=q).values
    sigma = np.sqrt(ds["cov_filter"].sel(row=q, col=q).values)
    ax.fill_between(x, est - sigma, est + sigma, color="C1", alpha=0.3, lw=0, label="estimate ± σ (filter's P)")
    ax.plot(x, true, color="C0", lw=0.8, label="true state (trajectory 0)")
    ax.plot(x, est, color="C1", lw=1.0, label="Kalman estimate from the record")


def _spectra(ds, spec, plt):
    """Output spectrum from the homodyne records (Welch ± 1σ) beside the analytic one; filtered-mode E_N."""
    two = "filtered_logneg" in ds
    fig, axes = _grid(plt, 2 if two else 1, 4.8, 3.6)
    a = axes[0]
    w = ds["omega"].values
    S, e = ds["spectrum_welch"].values, ds["spectrum_welch_err"].values
    sel = np.abs(w) <= OMEGA_SHOWN
    a.fill_between(w[sel], (S - e)[sel], (S + e)[sel], color="C0", alpha=0.3, lw=0)
    a.plot(w[sel], S[sel], color="C0", lw=1, label="Welch from homodyne records ± 1σ")
    a.plot(w[sel], ds["spectrum_analytic"].values[sel], "k--", lw=1.2, label="transfer function of A")
    a.axhline(0.5, color="0.5", lw=0.8, label="shot noise")
    ref = _system_words(ds)[1]
    a.set_xlabel(f"ω/{ref}")
    a.set_ylabel("S_θ(ω) (shot noise = 1/2)")
    if two:
        b = axes[1]
        b.plot(ds["bandwidth"].values, ds["filtered_logneg"].values, "o-", label="E_N: filtered output mode")
        if "logneg_intracavity" in ds:
            b.axhline(float(ds["logneg_intracavity"]), color="C3", ls=":", label="E_N: intracavity mode")
        b.set_xscale("log")
        b.set_xlabel(f"filter bandwidth 1/(τ {ref})")
        partner = ds.attrs.get("partner", "mechanics")
        b.set_ylabel(f"E_N ({partner}, filtered output of {ds.attrs.get('mode', 'U')})")
    handles, labels = (sum(z, []) for z in zip(*(ax.get_legend_handles_labels() for ax in axes), strict=True))
    _outside_legend(fig, handles, labels, where="below")
    return fig


def _map(ds, spec, plt):
    x, y, name = spec["x"], spec["y"], spec["variable"]
    da = _stable_only(ds, name)
    if "branch" in da.dims:
        da = da.max("branch")  # the largest stable branch: one value per point
    combos = _combos(ds, spec["panels"])
    fig, axes = _grid(plt, len(combos), 4.2, 3.6, legend=0.9, ncols=3)
    xv, xlabel = _xvalues(ds, x)
    yv, ylabel = _xvalues(ds, y)
    clabel, cscale = _axis(name, ds)
    finite = da.values[np.isfinite(da.values)]
    vmin, vmax = (finite.min() * cscale, finite.max() * cscale) if finite.size else (None, None)
    for ax, combo in zip(axes, combos, strict=True):
        sel = _first(da.isel(combo), (x, y)).transpose(y, x)
        mesh = ax.pcolormesh(xv, yv, sel.values * cscale, shading="auto", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if combo:
            ax.set_title(_title(ds, combo), fontsize=9)
    fig.colorbar(mesh, ax=axes, label=clabel, shrink=0.9)
    return fig
