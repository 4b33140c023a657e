"""Figures from sweep Datasets, as the scenario's ``[plot]`` table asks (needs the ``plot`` extra).

``[plot]`` keys:
    kind = "lines" (default), "map", "estimate" (a simulated quantity ± 1σ against its references over
           x = "time" or "dt"; variable = "logneg"), "matrix" (a 6×6 variable such as "zscore") or "traces"
           (recorded quadratures against time: y = list of quadratures, one panel each; first 3 trajectories);
    lines: x (a dimension), y (list of variables: one panel each), hue (dimensions: one line per combination),
           panel (optional dimension: one panel per value, for every y);
    map:   x, y (dimensions), variable; one panel per value of any remaining dimension (e.g. direction);
    title, panel_titles (optional strings).
Quantities with a ``branch`` dimension are drawn for stable branches only (each branch its own line).
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from .io import check_writable, replace_atomically
from .scenario import PLOT_KINDS

# Axis labels as the paper writes them; values are scaled so that the numbers match its axes
# (the paper's "kHz"/"MHz" are read literally as 10³ and 10⁶ s⁻¹, see PHYSICS.md).
AXES: dict[str, tuple[str, float]] = {
    "detuning": ("Δ_c/ω_m", 1.0),
    "Omega": ("Ω (10³ s⁻¹)", 1e-3),
    "J": ("J (10⁶ s⁻¹)", 1e-6),
    "temperature": ("T (K)", 1.0),
    "power": ("P (mW)", 1e3),
    "logneg": ("E_N", 1.0),
    "logneg_reflected": ("E_N (V, mech)", 1.0),
    "logneg_optical": ("E_N (U, V)", 1.0),
    "logneg_max": ("max over Δ_c of E_N", 1.0),
    "photons": ("N_j (10⁹)", 1e-9),
    "photons_reflected": ("N_V (10⁹)", 1e-9),
    "coupling": ("|G_j|/ω_m", 1.0),
    "coupling_reflected": ("|G_V|/ω_m", 1.0),
    "revival": ("χ", 1.0),
    "time": ("t (µs)", 1e6),
    "dt": ("ω_m dt", 1.0),
}


def _axis(name: str, ds: xr.Dataset | None = None) -> tuple[str, float]:
    if name in AXES:
        return AXES[name]
    if ds is not None and name in ds.variables:
        units = ds[name].attrs.get("units", "")
        return (f"{name} ({units})" if units not in ("", "1") else name), 1.0
    return name, 1.0


def _stable_only(ds: xr.Dataset, name: str) -> xr.DataArray:
    da = ds[name]
    if "branch" in da.dims and "stable" in ds:
        da = da.where(ds["stable"])
    return da


def _label(dim: str, value) -> str:
    short = {"Omega": "Ω", "detuning": "Δ_c/ω_m", "temperature": "T", "power": "P"}.get(dim, dim)
    if isinstance(value, str):
        return value
    label, scale = _axis(dim)
    unit = label[label.find("(") + 1:-1] if "(" in label else ""
    return f"{short} = {value * scale:g}{' ' + unit if unit and dim not in ('detuning',) else ''}"


def plot_dataset(ds: xr.Dataset, path: str | Path, force: bool = False) -> Path:
    """Draw the figure described by ``ds.attrs['plot']`` (or a default) and write it as PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_writable(path, force)
    spec = json.loads(ds.attrs.get("plot", "{}"))
    kind = spec.get("kind", "lines")
    drawers = {"lines": _lines, "map": _map, "estimate": _estimate, "matrix": _matrix, "traces": _traces,
               "spectra": _spectra}
    if kind not in drawers:
        raise ValueError(f"plot.kind must be one of {PLOT_KINDS}, got {kind!r}")
    fig = drawers[kind](ds, spec, plt)
    title = spec.get("title") or ds.attrs.get("title", "")
    if title:
        fig.suptitle(title, fontsize=10)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, format="png")
        replace_atomically(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def _lines(ds, spec, plt):
    x = spec.get("x", "detuning")
    ys = spec.get("y", ["logneg"])
    hue = [h for h in spec.get("hue", []) if h in ds.dims]
    panel = spec.get("panel")
    for name in [x, *ys, *([panel] if panel else [])]:
        if name not in ds.variables:
            raise ValueError(f"plot: {name!r} is not in the dataset")
    panels = [(name, i) for name in ys for i in range(ds.sizes[panel] if panel else 1)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False,
                             layout="constrained")
    xlabel, xscale = _axis(x, ds)
    titles = spec.get("panel_titles", [])
    for k, (ax, (name, p_index)) in enumerate(zip(axes[0], panels, strict=True)):
        da = _stable_only(ds, name)
        if panel:
            da = da.isel({panel: p_index})
            if k >= len(titles):
                ax.set_title(_label(panel, ds[panel].values[p_index]), fontsize=9)
        ylabel, yscale = _axis(name, ds)
        combos = list(itertools.product(*[range(ds.sizes[h]) for h in hue]))
        for c_index, combo in enumerate(combos):
            sel = da.isel(dict(zip(hue, combo, strict=True)))
            rest = [d for d in sel.dims if d not in (x, "branch")]
            sel = sel.isel({d: 0 for d in rest})
            label = ", ".join(_label(h, ds[h].values[i]) for h, i in zip(hue, combo, strict=True)) or name
            color = f"C{c_index}"
            branches = sel.transpose(x, ...).values.reshape(ds.sizes[x], -1)
            for b in range(branches.shape[1]):
                ax.plot(ds[x].values * xscale, branches[:, b] * yscale, color=color,
                        label=label if b == 0 else None, lw=1.4)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if k < len(titles):
            ax.set_title(titles[k], fontsize=9)
        if hue:
            ax.legend(fontsize=7)
    return fig


def _estimate(ds, spec, plt):
    """A simulated quantity with its ±1σ band against its references, over ``x`` (time or dt)."""
    x = spec.get("x", "time")
    name = spec.get("variable", "logneg")
    sim = ds[f"{name}_sim"]
    others = [d for d in sim.dims if d != x]
    sel = {d: 0 for d in others}
    fig, ax = plt.subplots(figsize=(5.2, 3.6), layout="constrained")
    xlabel, xscale = _axis(x, ds)
    xv = ds[x].values * xscale
    est, err = sim.isel(sel).values, ds[f"{name}_sim_err"].isel(sel).values
    ax.fill_between(xv, est - err, est + err, color="C0", alpha=0.3, lw=0)
    ax.plot(xv, est, "o-", color="C0", ms=3, label="simulated ± 1σ")
    ref_label = "moment solution" if x == "time" else "scheme's own stationary value"
    ax.plot(xv, ds[f"{name}_ref"].isel({d: 0 for d in ds[f"{name}_ref"].dims if d != x}).values * np.ones_like(xv),
            "k--", label=ref_label)
    if x != "time" and name in ds:
        ax.axhline(float(ds[name].isel({d: 0 for d in ds[name].dims})), color="C3", label="Lyapunov (dt → 0)")
    if x == "dt":
        ax.set_xscale("log")
        ax.set_xticks(xv, [f"{v:g}" for v in xv], minor=False)
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_axis(name, ds)[0])
    ax.legend(fontsize=8)
    return fig


def _matrix(ds, spec, plt):
    """A 6×6 (row, col) variable, e.g. the z-scores of a cross-check, with its numbers written in."""
    name = spec.get("variable", "zscore")
    da = ds[name]
    da = da.isel({d: 0 for d in da.dims if d not in ("row", "col")})
    fig, ax = plt.subplots(figsize=(4.8, 4.0), layout="constrained")
    lim = max(3.0, float(np.nanmax(np.abs(da.values))))
    mesh = ax.imshow(da.values, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for r in range(da.shape[0]):
        for c in range(da.shape[1]):
            ax.text(c, r, f"{da.values[r, c]:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(6), ds["col"].values)
    ax.set_yticks(range(6), ds["row"].values)
    fig.colorbar(mesh, ax=ax, label=name)
    if "zscore_max" in ds:
        ax.set_title(f"max |z| = {float(ds['zscore_max'].max()):.2f}", fontsize=9)
    return fig


def _traces(ds, spec, plt):
    """Recorded quadratures u(t) of the first few trajectories, one panel per quadrature."""
    quads = spec.get("y", ["xU", "q"])
    tr = ds["trace"]
    tr = tr.isel({d: 0 for d in tr.dims if d not in ("trajectory", "time", "quadrature")})
    fig, axes = plt.subplots(1, len(quads), figsize=(4.4 * len(quads), 3.2), squeeze=False, layout="constrained")
    xlabel, xscale = _axis("time", ds)
    for ax, q in zip(axes[0], quads, strict=True):
        for k in range(min(3, ds.sizes["trajectory"])):
            ax.plot(ds["time"].values * xscale, tr.sel(quadrature=q).isel(trajectory=k).values, lw=0.7,
                    label=f"trajectory {k}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"δ{q}")
        ax.legend(fontsize=7)
    return fig


def _spectra(ds, spec, plt):
    """Output spectrum from the homodyne records (Welch ± 1σ) beside the analytic one; filtered-mode E_N."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.6, 3.6), layout="constrained")
    w = ds["omega"].values
    S, e = ds["spectrum_welch"].values, ds["spectrum_welch_err"].values
    lim = float(spec.get("omega_max", 3.0))
    sel = np.abs(w) <= lim
    a.fill_between(w[sel], (S - e)[sel], (S + e)[sel], color="C0", alpha=0.3, lw=0)
    a.plot(w[sel], S[sel], color="C0", lw=1, label="Welch from homodyne records ± 1σ")
    a.plot(w[sel], ds["spectrum_analytic"].values[sel], "k--", lw=1.2, label="transfer function of A")
    a.axhline(0.5, color="0.5", lw=0.8, label="shot noise")
    a.set_xlabel("ω/ω_m")
    a.set_ylabel("S_θ(ω)")
    a.legend(fontsize=7)
    b.plot(ds["bandwidth"].values, ds["filtered_logneg"].values, "o-")
    b.set_xscale("log")
    b.set_xlabel("filter bandwidth 1/(τ ω_m)")
    b.set_ylabel("E_N (mechanics, filtered output)")
    return fig


def _map(ds, spec, plt):
    x, y = spec.get("x", "detuning"), spec.get("y", "Omega")
    name = spec.get("variable", "coupling")
    for n in (x, y, name):
        if n not in ds.variables:
            raise ValueError(f"plot: {n!r} is not in the dataset")
    da = _stable_only(ds, name)
    if "branch" in da.dims:
        da = da.max("branch")  # the largest stable branch: one value per point
    panels = [d for d in da.dims if d not in (x, y)]
    combos = list(itertools.product(*[range(ds.sizes[d]) for d in panels]))
    fig, axes = plt.subplots(1, len(combos), figsize=(4.4 * len(combos), 3.6), squeeze=False,
                             layout="constrained")
    xlabel, xscale = _axis(x, ds)
    ylabel, yscale = _axis(y, ds)
    clabel, cscale = _axis(name, ds)
    vmin, vmax = np.nanmin(da.values) * cscale, np.nanmax(da.values) * cscale
    for ax, combo in zip(axes[0], combos, strict=True):
        sel = da.isel(dict(zip(panels, combo, strict=True))).transpose(y, x)
        mesh = ax.pcolormesh(ds[x].values * xscale, ds[y].values * yscale, sel.values * cscale,
                             shading="auto", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if panels:
            ax.set_title(", ".join(_label(d, ds[d].values[i]) for d, i in zip(panels, combo, strict=True)),
                         fontsize=9)
        fig.colorbar(mesh, ax=ax, label=clabel)
    return fig
