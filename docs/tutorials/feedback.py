"""Feedback cooling to the ground state: the single cavity's mirror, watched through the phase quadrature of the
cavity's output and pushed by a force on its momentum computed from the Kalman filter's estimate (LQG).

Run it as ``python docs/tutorials/feedback.py [OUTDIR]``; it writes ``feedback.toml``, ``feedback.nc`` and
``feedback.png`` into OUTDIR.
"""

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import sde_com

# Vitali et al.'s cavity driven on resonance (Δ = 0: no sideband cooling; the light only reads the mirror out),
# its output's phase quadrature (θ = π/2, where the mirror's position is written) detected at efficiency η
POINT = dict(system="single_cavity", detuning=0.0, detuning_kind="effective")
POWERS = np.geomspace(1e-5, 0.1, 21)  # input power, W
EFFICIENCIES = (0.1, 0.5, 0.8, 1.0)
LOOP = {"force": ["p"], "effort": 1.0}  # LQG on the mirror's momentum, minimising its occupation
SCENARIO = """\
title = "Feedback cooling of the single cavity's mirror: LQG on the filtered state, from a thermal start"

[system]
name = "single_cavity"

[model]
detuning = 0.0
detuning_kind = "effective"
power = 1e-3  # W

[simulate]
method = "exact"
dt = 0.01
duration = 120.0
trajectories = 2000
seed = 5
initial = "thermal"
save_every = 4.0
traces = 1

[[measure]]
mode = "a"
theta = 1.5707963267948966  # the phase quadrature
efficiency = 0.8

[feedback]
force = ["p"]
control = "lqg"
target = ["m"]
effort = 1.0
"""


def main(outdir="."):
    outdir = Path(outdir)
    system = sde_com.get_system("single_cavity")
    params = system.resolve({k: v for k, v in POINT.items() if k != "system"})
    kappa = params["kappa"] / system.reference_rate(params)
    n_bath = 1 / math.expm1(1.0546e-34 * params["omega_m"] / (1.380649e-23 * params["temperature"]))
    decoherence = params["gamma_m"] / params["omega_m"] * n_bath  # γ_m n̄_th / ω_m

    # 1. the closed loop's steady state over power (the measurement rate) and efficiency, from Python
    phonons = {}
    rates = {}
    for eta in EFFICIENCIES:
        ds = sde_com.conditional_sweep([{"mode": "a", "theta": math.pi / 2, "efficiency": eta}], feedback=LOOP,
                                       power=list(POWERS), **POINT).isel(branch=0)
        phonons[eta] = ds.occupation_feedback.sel(mode="m").values
        rates[eta] = 4 * eta * ds.coupling.values ** 2 / kappa
    open_loop = ds.occupation.sel(mode="m").values
    conditional = ds.occupation_conditional.sel(mode="m").values  # η = 1: the bound the loop approaches
    best = min((float(phonons[0.8][i]), float(POWERS[i])) for i in range(POWERS.size))

    # 2. one point confirmed in the time domain: the closed-loop ensemble from the thermal state
    toml = outdir / "feedback.toml"
    toml.write_text(SCENARIO)
    path = outdir / "feedback.nc"
    sde_com.run_scenario_to_file(sde_com.load_scenario(toml), path, force=True)
    with xr.open_dataset(path) as run:
        run = run.load()
    steady = sde_com.conditional_sweep([{"mode": "a", "theta": math.pi / 2, "efficiency": 0.8}], feedback=LOOP,
                                       power=1e-3, **POINT).isel(branch=0)
    q, p = (list(system.quadratures).index(x) for x in ("q", "p"))
    sim = (run.cov_feedback_sim.values[:, q, q] + run.cov_feedback_sim.values[:, p, p] - 1) / 2
    sim_err = np.hypot(run.cov_feedback_sim_err.values[:, q, q], run.cov_feedback_sim_err.values[:, p, p]) / 2
    moment = (run.cov_feedback_moment.values[:, q, q] + run.cov_feedback_moment.values[:, p, p] - 1) / 2

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    for eta in EFFICIENCIES:
        left.loglog(rates[eta] / decoherence, phonons[eta], "o-", ms=3, label=f"LQG, η = {eta}")
    left.loglog(rates[1.0] / decoherence, open_loop, "k--", label="no feedback")
    left.loglog(rates[1.0] / decoherence, conditional, "k:", label="conditional, η = 1")
    left.axhline(1.0, color="grey", lw=0.8)
    left.set_xlabel("measurement rate Γ_meas = 4ηG²/κ over the thermal decoherence rate γ_m n̄_th")
    left.set_ylabel("mirror occupation ⟨δb†δb⟩ (phonons)")
    left.set_ylim(0.05, 3e5)
    left.legend(fontsize=8)
    t = run["time_scaled"].values
    right.semilogy(t, moment, color="C1", label="closed-loop moments (exact)")
    right.errorbar(t, sim, yerr=sim_err, fmt="o", ms=3, color="C0", label="2000 trajectories ± 1σ")
    right.axhline(float(steady.occupation_feedback.sel(mode="m")), color="k", ls="--", label="steady state (F3)")
    right.set_xlabel("ω_m t")
    right.set_ylabel("mirror occupation (phonons)")
    right.legend(fontsize=8)
    figure = outdir / "feedback.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return {"figure": figure, "phonons": phonons, "open_loop": open_loop, "conditional": conditional,
            "rates": rates, "decoherence": decoherence, "best": best, "zscore": run.zscore_feedback.values,
            "steady": float(steady.occupation_feedback.sel(mode="m")), "sim": sim, "sim_err": sim_err,
            "moment": moment}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
