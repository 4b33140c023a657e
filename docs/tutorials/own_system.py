"""Simulate your own system: a non-degenerate parametric amplifier given by its matrices.

Run it as ``python docs/tutorials/own_system.py [OUTDIR]``; it writes ``own_system.toml``,
``own_system.nc`` and ``own_system.png`` into OUTDIR.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import sde_com

KAPPA = 1.0e6  # s-1: each mode's energy decay rate into a vacuum bath (amplitudes decay at κ/2)
CHIS = np.array([0.05, 0.1, 0.2, 0.3, 0.4]) * KAPPA  # two-mode squeezing rates, below threshold κ/2


def matrices(chi):
    """A and D (s-1) of H = iħχ(a†b† − ab) with both modes damped at κ, in (x_a, p_a, x_b, p_b)."""
    A = np.array([[-KAPPA / 2, 0.0, chi, 0.0],
                  [0.0, -KAPPA / 2, 0.0, -chi],
                  [chi, 0.0, -KAPPA / 2, 0.0],
                  [0.0, -chi, 0.0, -KAPPA / 2]])
    D = KAPPA / 2 * np.eye(4)  # vacuum noise: V = ½ I without squeezing
    return A, D


def scenario_text(chi):
    """The same system as a scenario file: a [system] table instead of [model]."""
    A, D = matrices(chi)

    def rows(M):
        return "[" + ", ".join("[" + ", ".join(f"{x:.17g}" for x in row) + "]" for row in M) + "]"

    return f"""\
title = "Parametric amplifier, chi = {chi / KAPPA:g} kappa: E_N(t) from the vacuum"

[system]
modes = ["a", "b"]
drift = {rows(A)}
diffusion = {rows(D)}
time_scale = {KAPPA:g}

[simulate]
method = "exact"
dt = 0.05
duration = 8.0
trajectories = 4096
seed = 3
initial = [[0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5]]
save_every = 0.25
"""


def main(outdir="."):
    outdir = Path(outdir)
    # 1. steady state from Python: E_N of the pair against ln(1 + 2χ/κ)
    steady = [sde_com.sweep(system=sde_com.MatrixSystem(["a", "b"], *matrices(chi), time_scale=KAPPA))
              for chi in CHIS]
    logneg = np.array([float(ds.logneg.sel(pair="a-b").isel(branch=0)) for ds in steady])
    analytic = np.log1p(2 * CHIS / KAPPA)

    # 2. a transient from the vacuum, as a scenario file run to netCDF
    chi = CHIS[-1]
    toml = outdir / "own_system.toml"
    toml.write_text(scenario_text(chi))
    path = outdir / "own_system.nc"
    sde_com.run_scenario_to_file(sde_com.load_scenario(toml), path, force=True)
    with xr.open_dataset(path) as ds:
        ds = ds.isel(branch=0).load()
    t = ds["time_scaled"].values  # κ t
    pair = ds.sel(pair="a-b")  # E_N over every pair of modes: here the one pair
    en, en_err, en_ref = pair.logneg_sim.values, pair.logneg_sim_err.values, pair.logneg_ref.values

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    left.plot(CHIS / KAPPA, analytic, "k-", label="ln(1 + 2χ/κ)")
    left.plot(CHIS / KAPPA, logneg, "o", label="sde_com.sweep")
    left.set_xlabel("χ/κ")
    left.set_ylabel("E_N (steady state)")
    left.legend()
    right.errorbar(t, en, en_err, fmt="o", ms=3, label="ensemble (4096 trajectories)")
    right.plot(t, en_ref, "k-", label="moment solution V(t)")
    right.axhline(analytic[-1], color="0.6", ls="--", label="steady state")
    right.set_xlabel("κ t")
    right.set_ylabel(f"E_N(t), χ = {chi / KAPPA:g} κ")
    right.legend(loc="lower right")
    figure = outdir / "own_system.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return {"figure": figure, "dataset": path, "logneg": logneg, "analytic": analytic, "en": en,
            "en_err": en_err, "en_ref": en_ref, "zscore_max": ds.zscore_max.values,
            "trajectories": int(ds.sizes.get("trajectory", 4096))}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
