"""From a Hamiltonian to entanglement: cavity optomechanics written as physicists write it.

Run it as ``python docs/tutorials/hamiltonian.py [OUTDIR]``; it writes ``hamiltonian.toml``,
``hamiltonian.nc`` and ``hamiltonian.png`` into OUTDIR.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import sde_com
from sde_com.hamiltonian import brownian, dag, ladder, symbols, thermal

KAPPA = 0.5  # cavity linewidth (energy decay rate) in units of ω_m, as the review writes κ
SCENARIO = """\
title = "Optomechanics from a Hamiltonian: E_N over detuning and coupling"

[system]
modes = ["a", "b"]
# Aspelmeyer, Kippenberg and Marquardt's linearised Hamiltonian: Delta = (laser - cavity)/wm, red below 0
hamiltonian = "wm*(-delta*dag(a)*a + dag(b)*b - g*(a + dag(a))*(b + dag(b)))"
parameters = { wm = 6.283e7, delta = -1.0, g = 0.1, kappa = 0.5, gamma = 1e-5, nth = 100.0 }
units = { wm = "rad/s" }  # the others are ratios (to wm) and a phonon number
time_scale = "wm"

[[system.dissipators]]  # the cavity: its linewidth kappa*wm into vacuum, detected at its port
kind = "thermal"
mode = "a"
rate = "kappa*wm"
port = true

[[system.dissipators]]  # the mechanics: a Brownian bath of 100 phonons at the damping gamma*wm
kind = "brownian"
mode = "b"
rate = "gamma*wm"
n = "nth"

[model]  # one line per swept parameter: the coupling and the detuning
g = { start = 0.0, stop = 0.6, num = 31 }
delta = { start = -2.0, stop = 2.0, num = 41 }
"""


def static_limit(delta):
    """g at which det A = 0 (the static instability) for red detuning δ < 0, in units of ω_m:
    4g²|δ| = δ² + κ²/4 (κ the linewidth)."""
    return np.sqrt((delta**2 + KAPPA**2 / 4) / (4 * np.abs(delta)))


def built_in_python():
    """The same system from the builders (sde_com.hamiltonian), for a sweep from Python."""
    a, b = ladder("a", "b")
    wm, delta, g, kappa, gamma, nth = symbols("wm", "delta", "g", "kappa", "gamma", "nth")
    hamiltonian = wm * (-delta * dag(a) * a + dag(b) * b - g * (a + dag(a)) * (b + dag(b)))
    return sde_com.HamiltonianSystem(
        [a, b], hamiltonian, [thermal(a, kappa * wm, port=True), brownian(b, gamma * wm, nth)],
        dict(wm=6.283e7, delta=-1.0, g=0.1, kappa=KAPPA, gamma=1e-5, nth=100.0), time_scale=wm,
        units=dict(wm="rad/s"))


def main(outdir="."):
    outdir = Path(outdir)
    # 1. the scenario file: a [system] by Hamiltonian, its parameters swept by [model]
    toml = outdir / "hamiltonian.toml"
    toml.write_text(SCENARIO)
    path = outdir / "hamiltonian.nc"
    sde_com.run_scenario_to_file(sde_com.load_scenario(toml), path, force=True)
    with xr.open_dataset(path) as ds:
        ds = ds.isel(branch=0).sel(pair="a-b").load()

    # 2. the same system built in Python: one cut at the red sideband, δ = −1
    cut = np.linspace(0.0, 0.6, 31)
    python = sde_com.sweep(system=built_in_python(), g=cut.tolist(), delta=-1.0)
    logneg_cut = python.logneg.isel(branch=0).sel(pair="a-b").values

    g, delta = ds["g"].values, ds["delta"].values
    logneg = ds.logneg.transpose("g", "delta").values  # NaN where the point is unstable
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    mesh = left.pcolormesh(delta, g, logneg, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=left, label="E_N (steady state)")
    left.contour(delta, g, ds.stable.transpose("g", "delta").values.astype(float), levels=[0.5], colors="k")
    red = delta[delta < -0.05]
    left.plot(red, static_limit(red), "r--", label="det A = 0 (static limit)")
    left.plot([], [], "k-", label="stability boundary (Routh–Hurwitz)")
    left.set_ylim(g[0], g[-1])
    left.set_xlabel("detuning Δ/ω_m = (ω_L − ω_cav)/ω_m")
    left.set_ylabel("coupling G/ω_m")
    left.legend(loc="upper right", fontsize=8)
    left.set_title("blank: unstable (no steady state)", fontsize=9)
    right.plot(ds["g"], ds.logneg.sel(delta=-1.0), "k-", label="scenario file ([model] sweep)")
    right.plot(cut, logneg_cut, "o", ms=4, mfc="none", label="sde_com.sweep of the Python-built system")
    right.axvline(static_limit(-1.0), color="0.5", ls="--", label="static limit at Δ = −ω_m")
    right.set_xlabel("coupling G/ω_m at Δ = −ω_m")
    right.set_ylabel("E_N (steady state)")
    right.legend(loc="upper left", fontsize=8)
    figure = outdir / "hamiltonian.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return {"figure": figure, "dataset": path, "g": g, "delta": delta, "logneg": logneg,
            "stable": ds.stable.transpose("g", "delta").values, "cut": cut, "logneg_cut": logneg_cut,
            "logneg_file_cut": ds.logneg.sel(delta=-1.0).values, "static_limit": static_limit}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
