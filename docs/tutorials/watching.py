"""Watching an oscillator: the conditional state of the single cavity under homodyne detection, a trajectory
with the Kalman filter's estimate, and the filter run again on the recorded file.

Run it as ``python docs/tutorials/watching.py [OUTDIR]``; it writes ``watching.toml``, ``watching.nc`` and
``watching.png`` into OUTDIR.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import sde_com

POINT = dict(system="single_cavity", detuning=1.0, detuning_kind="effective")  # Vitali et al.'s cavity, Δ = ω_m
EFFICIENCIES = np.array([0.01, 0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
SCENARIO = """\
title = "Watching the single cavity: homodyne of its output at 80 % efficiency"

[system]
name = "single_cavity"

[model]
detuning = 1.0
detuning_kind = "effective"

[simulate]
method = "exact"  # the record is discretized exactly with the state
dt = 0.01
duration = 20.0
trajectories = 2000
seed = 4
initial = "thermal"  # the filter starts knowing only the thermal state
save_every = 0.01
traces = 2

[[measure]]
mode = "a"
scheme = "homodyne"
theta = 0.0
efficiency = 0.8
"""


def main(outdir="."):
    outdir = Path(outdir)
    # 1. the conditional steady state against the efficiency, from Python
    watched = [sde_com.conditional_sweep([{"mode": "a", "efficiency": float(eta)}], **POINT).isel(branch=0)
               for eta in EFFICIENCIES]
    phonons = np.array([float(ds.occupation_conditional.sel(mode="m")) for ds in watched])
    phonons_unwatched = float(watched[0].occupation.sel(mode="m"))
    logneg = np.array([float(ds.logneg_conditional.sel(pair="a-m")) for ds in watched])
    logneg_unwatched = float(watched[0].logneg.sel(pair="a-m"))

    # 2. conditional trajectories from a thermal start, as a scenario file run to netCDF
    toml = outdir / "watching.toml"
    toml.write_text(SCENARIO)
    path = outdir / "watching.nc"
    sde_com.run_scenario_to_file(sde_com.load_scenario(toml), path, force=True)
    with xr.open_dataset(path) as ds:
        ds = ds.load()

    # 3. the filter again, over the record the file holds (as over a laboratory's, in the same normalisation)
    again = sde_com.kalman_filter(ds.record.values, 0.01, [{"mode": "a", "efficiency": 0.8}], initial="thermal",
                                  **POINT)

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    left.semilogx(EFFICIENCIES, phonons, "o-", label="conditional")
    left.axhline(phonons_unwatched, color="k", ls="--", label="unconditional")
    left.set_xlabel("detection efficiency η")
    left.set_ylabel("mechanical occupation ⟨δb†δb⟩ (phonons)")
    left.legend()
    middle.semilogx(EFFICIENCIES, logneg, "o-", label="conditional")
    middle.axhline(logneg_unwatched, color="k", ls="--", label="unconditional")
    middle.set_xlabel("detection efficiency η")
    middle.set_ylabel("E_N (cavity, mechanics)")
    middle.legend()
    t = ds["time_scaled"].values
    q = ds.trace.isel(trajectory=0).sel(quadrature="q").values
    q_hat = ds.estimate.isel(trajectory=0).sel(quadrature="q").values
    sigma = np.sqrt(ds.cov_filter.sel(row="q", col="q").values)
    right.fill_between(t, q_hat - sigma, q_hat + sigma, color="C1", alpha=0.3, lw=0, label="estimate ± σ")
    right.plot(t, q, color="C0", lw=0.8, label="true q (trajectory 0)")
    right.plot(t, q_hat, color="C1", lw=1.0, label="Kalman estimate")
    right.set_xlabel("ω_m t")
    right.set_ylabel("mechanical position δq (vacuum variance 1/2)")
    right.legend(loc="upper right", fontsize=8)
    figure = outdir / "watching.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return {"figure": figure, "dataset": path, "phonons": phonons, "phonons_unwatched": phonons_unwatched,
            "logneg": logneg, "logneg_unwatched": logneg_unwatched, "zscore_filter": ds.zscore_filter.values,
            "innovation": {k: ds[k].values for k in ("innovation_variance", "innovation_variance_err",
                                                      "innovation_lag1", "innovation_lag1_err")},
            "estimate": ds.estimate.values, "estimate_again": again["estimate"]}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
