"""The built-in single-cavity optomechanical system (``physics.cavity.SingleCavity``) against independent
statements of its physics: the mean-field equations each branch must satisfy, the cubic's real roots, the
drift written out from the Langevin equations, the thermal equilibrium of an undriven cavity, scipy's
Lyapunov solution, and an exact-discretization ensemble (z-scores with the estimator's own errors,
Bonferroni over the 10 entries of a 4 × 4 covariance, family-wise α = 1e-3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats

import sde_com
from sde_com.errors import UserError
from sde_com.physics.cavity import SingleCavity
from sde_com.physics.resonator.device import HBAR, cavity_frequency, thermal_occupation
from sde_com.physics.system import get_system
from sde_com.simulation.simulate import SimulationSettings, simulate

SYSTEM = SingleCavity()


def _rates(params):
    p = SYSTEM.resolve(params)
    omega_l = float(cavity_frequency(p["wavelength"]))
    G0 = math.sqrt(2.0) * p["g0"]  # per dimensionless q, [q, p] = i
    eps = math.sqrt(2.0 * p["kappa"] * p["power"] / (HBAR * omega_l))
    return p, G0, eps


@pytest.mark.parametrize("params", [{}, {"detuning": 2.3}, {"power": 0.005, "detuning": -0.5},
                                    {"power": 0.2, "detuning": 6.0}])
def test_each_branch_satisfies_the_mean_field_equations(params):
    """q_s = G₀|α|²/ω_m, α = ε/(κ + iΔ), Δ = Δ₀ − G₀q_s: written here from the Langevin equations, to the
    rounding of the root (relative 1e-9: the root isolation converges to a few ulp of y)."""
    p, G0, eps = _rates(params)
    branches = SYSTEM.branches(params)
    assert branches and [b.index for b in branches] == list(range(len(branches)))
    for b in branches:
        mf = b.mean_field
        delta = p["detuning"] * p["omega_m"] - G0 * mf["q_s"]
        assert mf["delta_eff"] == pytest.approx(delta, rel=1e-9, abs=1e-9 * p["omega_m"])
        assert mf["alpha"] == pytest.approx(eps / complex(p["kappa"], delta), rel=1e-9)
        assert mf["q_s"] == pytest.approx(G0 * abs(mf["alpha"]) ** 2 / p["omega_m"], rel=1e-9)
        assert mf["coupling"] == pytest.approx(2.0 * p["g0"] * abs(mf["alpha"]), rel=1e-12)
    assert [b.mean_field["q_s"] for b in branches] == sorted(b.mean_field["q_s"] for b in branches)


def test_all_three_branches_of_the_bistable_cubic():
    """y(1 + (d − y)²) = k, y = G₀q_s/κ: three real roots where the cubic has them (numpy's companion-matrix
    roots, an independent solver), one where it has one."""
    for params, expected in (({"power": 0.2, "detuning": 6.0}, 3), ({"power": 0.005, "detuning": 1.0}, 1)):
        p, G0, eps = _rates(params)
        d = p["detuning"] * p["omega_m"] / p["kappa"]
        k = G0**2 * eps**2 / (p["omega_m"] * p["kappa"] ** 3)
        roots = np.roots([1.0, -2.0 * d, 1.0 + d * d, -k])
        real = np.sort(roots[np.abs(roots.imag) < 1e-9 * np.abs(roots).max()].real)
        branches = SYSTEM.branches(params)
        assert len(branches) == len(real) == expected
        y = [G0 * b.mean_field["q_s"] / p["kappa"] for b in branches]
        np.testing.assert_allclose(y, real, rtol=1e-8)  # numpy's roots: ~1e-10 relative for this conditioning


def test_drift_and_diffusion_written_out_from_the_langevin_equations():
    """u = (δX, δY, δq, δp): δẊ = −κδX + ΔδY − G_i δq, δẎ = −ΔδX − κδY + G_r δq, δq̇ = ω_m δp,
    δṗ = G_r δX + G_i δY − ω_m δq − γ_m δp (G = √2 G₀ α_s); D = diag(κ, κ, 0, γ_m(2n̄ + 1))."""
    params = {"detuning": 2.3, "temperature": 2.0}
    p, G0, _ = _rates(params)
    b = SYSTEM.branches(params)[0]
    G = math.sqrt(2.0) * G0 * b.mean_field["alpha"]
    k, w, g, delta = p["kappa"], p["omega_m"], p["gamma_m"], b.mean_field["delta_eff"]
    A = np.array([[-k, delta, -G.imag, 0.0], [-delta, -k, G.real, 0.0], [0.0, 0.0, 0.0, w],
                  [G.real, G.imag, -w, -g]])
    np.testing.assert_array_equal(b.drift, A)
    n = float(thermal_occupation(w, 2.0))
    np.testing.assert_array_equal(b.diffusion, np.diag([k, k, 0.0, g * (2.0 * n + 1.0)]))


def test_an_undriven_cavity_is_in_thermal_equilibrium():
    """P = 0: no mean field, no coupling; V is the optical vacuum and the mechanics' thermal state, which is
    also the system's thermal state (to the Lyapunov solve's rounding: the operator's cond ≈ ω_m/γ_m = 1e5
    here, so ~1e-11 of max|V|; 1e-9 is the margin)."""
    ds = sde_com.sweep(system="single_cavity", power=0.0, temperature=1.0).isel(branch=0)
    V = SYSTEM.thermal_covariance({"temperature": 1.0})
    np.testing.assert_allclose(ds.cov.values, V, rtol=0, atol=1e-9 * V.max())
    assert float(ds.logneg.sel(pair="a-m")) == 0.0


def test_steady_state_equals_scipys_lyapunov_solve_and_entangles():
    """Steady V against scipy's Bartels–Stewart solve (the operator's cond ≈ 2‖A‖/min|λi + λj| ≈ 4e5 here,
    γ_m being 1e-5 ω_m: ~1e-10 of max|V|; 1e-8 is the margin), and E_N > 0 at the red-detuned, strongly
    coupled point of Vitali et al.'s Fig. 2 (effective Δ = ω_m; its value: test_vitali_fig2_point)."""
    params = {"detuning": 1.0, "detuning_kind": "effective"}
    b = SYSTEM.branches(params)[0]
    V = scipy.linalg.solve_continuous_lyapunov(b.drift / 6.283e7, -b.diffusion / 6.283e7)
    ds = sde_com.sweep(system="single_cavity", **params).isel(branch=0)
    assert bool(ds.stable)
    np.testing.assert_allclose(ds.cov.values, V, rtol=0, atol=1e-8 * np.abs(V).max())
    assert float(ds.logneg.sel(pair="a-m")) > 0.1


def test_an_exact_ensemble_agrees_with_the_lyapunov_solution():
    """An exact-discretization ensemble at a stable point (slowest relaxation rate 0.025 ω_m: the burn-in is 5
    relaxation times), time averages against the Lyapunov V within Bonferroni bounds. A factor 2 in the
    stepper's noise would double cov_sim: measured max z = 277 against 2V."""
    n = 256
    params = {"detuning": 2.3, "power": 0.02, "temperature": 0.01}
    s = SimulationSettings(method="exact", dt=0.2, burn_in=200.0, duration=400.0, trajectories=n, seed=21)
    ds = simulate(s, system=get_system("single_cavity"), **params).isel(branch=0)
    threshold = float(scipy.stats.t.ppf(1 - 1e-3 / (2 * 10), df=n - 1))
    assert float(ds.zscore_max_continuous) < threshold
    assert list(ds.row.values) == ["X", "Y", "q", "p"]


def test_parameters_are_checked_naming_the_key():
    with pytest.raises(UserError, match="power"):
        SYSTEM.branches({"power": -1.0})
    with pytest.raises(UserError, match=r"unknown parameter\(s\) \['radius'\]"):
        SYSTEM.branches({"radius": 1.0})


def test_registered_and_its_files_are_cf(tmp_path):
    """Found by name like the resonator; a sweep over its parameters writes a CF-clean file whose labels
    name its own quadratures."""
    from test_cf import assert_cf_clean

    assert "single_cavity" in sde_com.physics.system.system_names()
    ds = sde_com.sweep(system="single_cavity", detuning=[2.3, 6.0], power=[0.02, 0.2])
    assert ds.sizes["branch"] == 3  # the bistable corner (6 ω_m, 0.2 W) has three branches
    sde_com.write_dataset(ds, tmp_path / "cavity.nc")
    assert_cf_clean(tmp_path / "cavity.nc")
    assert "X, Y, q, p" in sde_com.read_dataset(tmp_path / "cavity.nc").row.attrs["long_name"]


NAMED = '[system]\nname = "single_cavity"\n'


def test_a_scenario_names_the_system_and_sweeps_its_parameters(tmp_path):
    """[system] name + [model] of its parameters through ``sde-com run``: the same numbers as the Python
    sweep of the same grid, bit for bit (the same per-point path), and an ensemble run beside it."""
    from conftest import run_cli

    text = NAMED + "[model]\ndetuning = { start = 2.0, stop = 3.0, num = 5 }\ntemperature = [0.4, 5.0]\n"
    assert run_cli(tmp_path, text, tmp_path / "sweep.nc") == 0
    ds = sde_com.read_dataset(tmp_path / "sweep.nc")
    ref = sde_com.sweep(system="single_cavity", detuning=list(np.linspace(2.0, 3.0, 5)), temperature=[0.4, 5.0])
    np.testing.assert_array_equal(ds.logneg.values, ref.logneg.values)
    np.testing.assert_array_equal(ds.cov.values, ref.cov.values)
    assert ds.logneg.dims == ("detuning", "temperature", "branch", "pair")
    text = NAMED + ('[model]\ndetuning = 2.3\npower = 0.02\n[simulate]\nmethod = "exact"\ndt = 0.2\n'
                    'duration = 50.0\ntrajectories = 64\nsave_every = 10.0\n')
    assert run_cli(tmp_path, text, tmp_path / "ensemble.nc") == 0
    ens = sde_com.read_dataset(tmp_path / "ensemble.nc")
    assert ens.cov_sim.sizes["time"] == 6 and list(ens.row.values) == ["X", "Y", "q", "p"]


def test_the_resonator_named_is_the_resonator(tmp_path):
    from conftest import run_cli

    text = "[model]\ndetuning = [0.7, 0.8]\n"
    assert run_cli(tmp_path, text, tmp_path / "plain.nc") == 0
    assert run_cli(tmp_path, '[system]\nname = "spinning_resonator"\n' + text, tmp_path / "named.nc") == 0
    plain, named = (sde_com.read_dataset(tmp_path / f"{n}.nc") for n in ("plain", "named"))
    for name in plain.data_vars:
        np.testing.assert_array_equal(plain[name].values, named[name].values, err_msg=name)


@pytest.mark.parametrize("text, message", [
    ('[system]\nname = "nope"\n', r"system.name: unknown system 'nope'; known systems: \[.*'single_cavity'"),
    (NAMED + "[model]\nradius = 1.0\n", r"unknown key\(s\) \['radius'\] in \[model\]; allowed: \['detuning'"),
    (NAMED + "time_scale = 2.0\n", r"\['time_scale'\] belong to a system given by its Hamiltonian or matrices"),
    (NAMED + "[model]\npower = -1.0\n", r"model.power must be >= 0"),
    (NAMED + '[simulate]\nduration = 5.0\nsave_every = 1.0\n[drive]\nkind = "ramp"\n',
     r"initial = 'steady' has no meaning under a changing drive"),
    (NAMED + "[model]\nomega_m = [6e7, 7e7]\n[simulate]\nduration = 5.0\nsave_every = 1.0\n",
     r"ω_ref of system 'single_cavity' cannot vary over a run with snapshots or traces"),
    (NAMED + "[model]\ndetuning = 1.0\n[simulate]\nduration = 5.0\n", r"no operating point .* stable branch"),
])
def test_bad_named_system_scenarios_exit_2(tmp_path, capsys, text, message):
    from conftest import assert_refused

    assert_refused(tmp_path, capsys, text, message)


# The papers' parametrisation: the effective detuning, and Vitali et al. 2007 reproduced -------------------


def test_effective_detuning_is_the_bare_route_at_its_own_bare_detuning():
    """detuning_kind = 'effective' solves the mean field explicitly; fed its Δ₀ (delta_bare), the bare route's
    cubic must have a branch with the same Δ, α and A (to the cubic's root rounding, 1e-9 relative)."""
    eff = {"detuning": 1.0, "detuning_kind": "effective", "power": 0.03}
    (b,) = SYSTEM.branches(eff)
    omega_m = SYSTEM.reference_rate(eff)
    bare = {"detuning": b.mean_field["delta_bare"] / omega_m, "power": 0.03}
    match = [c for c in SYSTEM.branches(bare)
             if abs(c.mean_field["delta_eff"] - b.mean_field["delta_eff"]) < 1e-9 * omega_m]
    assert len(match) == 1
    np.testing.assert_allclose(match[0].drift, b.drift, rtol=0, atol=1e-9 * np.abs(b.drift).max())
    assert match[0].mean_field["alpha"] == pytest.approx(b.mean_field["alpha"], rel=1e-9)
    assert b.mean_field["delta_eff"] == omega_m  # the effective route takes Δ as given


def _vitali_logneg(temperature: float, detuning: float = 1.0, power: float = 0.05) -> float:
    """E_N of Vitali et al., PRL 98, 030405 (2007), written out here from their Eqs. (4)–(9) and parameters
    (ω_m/2π = 10 MHz, Q = 1e5, m = 5 ng, L = 1 mm, F = 1.07e4, λ = 810 nm; κ = πc/(FL), G₀ = (ω_c/L)√(ħ/(mω_m)),
    G = √2 G₀ α_s, α_s = ε/(κ + iΔ) at the effective Δ, D = diag(κ, κ, 0, γ_m(2n̄ + 1))), with scipy's Lyapunov
    solve and the symplectic eigenvalue of the partial transpose: independent of the project's code path."""
    c, hbar, kB = 299_792_458.0, 1.054571817e-34, 1.380649e-23
    wm, L, F, m, lam = 2 * math.pi * 1e7, 1e-3, 1.07e4, 5e-12, 810e-9
    kappa, wl, gm = math.pi * c / (F * L), 2 * math.pi * c / lam, wm / 1e5
    G = math.sqrt(2) * wl / L * math.sqrt(hbar / (m * wm)) * math.sqrt(2 * power * kappa / (hbar * wl)) / abs(
        complex(kappa, detuning * wm))  # |G|: E_N does not depend on the phase of α_s
    n = 1.0 / math.expm1(hbar * wm / (kB * temperature))
    d = detuning * wm
    A = np.array([[-kappa, d, 0, 0], [-d, -kappa, G, 0], [0, 0, 0, wm], [G, 0, -wm, -gm]]) / wm
    V = scipy.linalg.solve_continuous_lyapunov(A, -np.diag([kappa, kappa, 0, gm * (2 * n + 1)]) / wm)
    a, b, cc = V[:2, :2], V[2:, 2:], V[:2, 2:]
    sigma = np.linalg.det(a) + np.linalg.det(b) - 2 * np.linalg.det(cc)
    nu = math.sqrt((sigma - math.sqrt(sigma**2 - 4 * np.linalg.det(V))) / 2)
    return max(0.0, -math.log(2 * nu))


VITALI = {"detuning": 1.0, "detuning_kind": "effective"}  # the defaults are the paper's device, P, T


@pytest.mark.parametrize("temperature", [0.4, 10.0, 20.0])
def test_vitali_fig2_point(temperature):
    """E_N at Vitali's Fig. 2 point (Δ = ω_m, P = 50 mW) against the written-out model above. Both solve the
    same 4 × 4 Lyapunov equation (operator condition ≈ 2‖A‖/min|λi + λj| ≈ 4e5, γ_m = 1e-5 ω_m), so they agree to
    ~1e-10 relative: rtol 1e-8 is the margin. With κ = πc/(2FL) instead the point has no steady state (NaN)."""
    ds = sde_com.sweep(system="single_cavity", temperature=temperature, **VITALI).isel(branch=0)
    assert bool(ds.stable)
    assert float(ds.logneg.sel(pair="a-m")) == pytest.approx(_vitali_logneg(temperature), rel=1e-8)


def test_vitali_entanglement_persists_above_20_kelvin():
    """The paper's claim: at its parameters the cavity–mirror entanglement persists above about 20 K. Measured
    here: E_N = 0.299 at 0.4 K (the paper's Fig. 1 peaks near 0.3), > 0 at 22 K, 0 at 24 K."""
    en = sde_com.sweep(system="single_cavity", temperature=[0.4, 20.0, 22.0, 24.0], **VITALI).logneg.sel(
        pair="a-m").isel(branch=0).values
    assert en[0] == pytest.approx(0.299, abs=5e-4)
    assert en[1] > en[2] > 0.0 and en[3] == 0.0


def test_sweeps_write_each_branchs_mean_field():
    """photons = |α|², coupling = |G|/ω_m, displacement = q_s, detuning_effective = Δ/ω_m and detuning_bare =
    Δ₀/ω_m of every branch, as the branches give them (the three branches of the bistable point included)."""
    params = {"power": 0.2, "detuning": 6.0}
    ds = sde_com.sweep(system="single_cavity", **params)
    wm = SYSTEM.reference_rate(params)
    for b in SYSTEM.branches(params):
        row = ds.isel(branch=b.index)
        mf = b.mean_field
        assert float(row.photons) == abs(mf["alpha"]) ** 2 and float(row.displacement) == mf["q_s"]
        assert float(row.coupling) == mf["coupling"] / wm
        assert float(row.detuning_effective) == mf["delta_eff"] / wm
        assert float(row.detuning_bare) == pytest.approx(6.0, rel=1e-9)  # Δ + G₀q_s: the cubic's rounding
    assert int(ds.n_branches) == 3


def test_a_matrix_system_has_no_mean_field_to_write(tmp_path, capsys):
    from conftest import run_cli

    text = ('[system]\nmodes = ["a"]\ndrift = [[-1.0, 0.0], [0.0, -1.0]]\ndiffusion = [[1.0, 0.0], [0.0, 1.0]]\n'
            '[output]\nvariables = ["photons"]\n')
    assert run_cli(tmp_path, text, tmp_path / "o.nc") == 2
    assert "'photons' cannot be written by this run: a mean-field value, which system 'matrix' does not declare" \
        in capsys.readouterr().err


# Drives: the nonlinear mean field of the single cavity under a time-dependent envelope -------------------


def _si_mean_field(params, drive, times):
    """α(t), q(t) of Vitali's mean-field equations written here in SI time, α̇ = −(κ + iΔ₀)α + iG₀qα + ε s(t),
    q̇ = ω_m p, ṗ = −ω_m q − γ_m p + G₀|α|², from the empty cavity at rest (scipy, independent of the project's
    scaled state)."""
    p, G0, eps = _rates(params)
    wm, k, g = p["omega_m"], p["kappa"], p["gamma_m"]
    d0 = SYSTEM.branches(params)[0].mean_field["delta_bare"]

    def rhs(t, y):
        a, q, pp = complex(y[0], y[1]), y[2], y[3]
        da = -(k + 1j * d0) * a + 1j * G0 * q * a + eps * float(drive.envelope(t * wm))
        return [da.real, da.imag, wm * pp, -wm * q - g * pp + G0 * abs(a) ** 2]

    sol = scipy.integrate.solve_ivp(rhs, (0, times[-1] / wm), [0, 0, 0, 0], method="DOP853", rtol=1e-11,
                                    atol=1e-9, t_eval=times / wm, max_step=0.05 / wm)
    return sol.y[0] ** 2 + sol.y[1] ** 2, sol.y[2]


def test_switch_on_follows_the_mean_field_equations_and_the_moment_ode():
    """A ramp switch-on of Vitali's Fig. 2 point from a thermal state: the mean field against the equations in
    SI time (1e-6 relative: both integrators at rtol ≤ 1e-9 over 60/ω_m of a field that grows by 1e9); the
    exact ensemble against the scheme's own moments (Student-t, Bonferroni over 10 entries × times, α = 1e-3);
    E_N(t) of the moment ODE reaching the steady-state value 0.299 (the Lyapunov V, to 1e-3: e^{-Γt} of the
    slowest decay at t = 60/ω_m)."""
    from sde_com.simulation.drive import Drive, drive_dataset

    n = 2048
    s = SimulationSettings(method="exact", dt=0.05, duration=60.0, trajectories=n, initial="thermal",
                           save_every=2.0, seed=7)
    drive = Drive(kind="ramp", rise_time=20.0)
    ds = drive_dataset(SYSTEM, VITALI, drive, s)
    photons, q = _si_mean_field(VITALI, drive, ds.time_scaled.values)
    np.testing.assert_allclose(ds.photons.values, photons, rtol=1e-6, atol=1e-6 * photons.max())
    np.testing.assert_allclose(ds.displacement.values, q, rtol=1e-6, atol=1e-6 * np.abs(q).max())
    threshold = scipy.stats.t.ppf(1 - 1e-3 / (2 * 10 * ds.sizes["time"]), df=n - 1)
    assert np.nanmax(ds.zscore_max.values) < threshold
    assert ds.logneg_ref.values[0] == 0.0 and ds.logneg_ref.values[-1] == pytest.approx(0.299, abs=1e-3)
    sim, err = ds.logneg_sim.values[-5:, 0], ds.logneg_sim_err.values[-5:, 0]
    # E_N(t) at the last five times against the moment ODE's, in jackknife errors: normal, Bonferroni over the
    # five at α = 1e-3 (the discrete moments sit 1e-4 from the ODE's here, far below the errors of ~0.02)
    assert np.all(np.abs(sim - ds.logneg_ref.values[-5:, 0]) < scipy.stats.norm.ppf(1 - 1e-3 / 10) * err)
    assert list(ds.row.values) == ["X", "Y", "q", "p"] and ds.attrs["system"] == "single_cavity"
    assert list(ds.pair.values) == ["a-m"]


def test_a_constant_drive_from_the_steady_state_stays_there():
    """s = 1 from the branch's own mean field: the state is a fixed point (the drift's A is the branch's)."""
    from sde_com.simulation.drive import Drive, drive_dataset

    s = SimulationSettings(method="exact", dt=0.5, duration=50.0, trajectories=16, initial="thermal",
                           save_times=(0.0, 50.0), seed=2)
    ds = drive_dataset(SYSTEM, VITALI, Drive(), s, mean_field_start="steady")
    b = SYSTEM.branches(VITALI)[0]
    np.testing.assert_allclose(ds.photons.values, abs(b.mean_field["alpha"]) ** 2, rtol=1e-9)


def test_drive_scenarios_of_systems(tmp_path, capsys):
    """[drive] runs for a system with mean-field dynamics; a matrix system and [wigner] are refused."""
    from conftest import assert_refused, run_cli

    sim = ('[simulate]\nmethod = "exact"\ndt = 0.1\nduration = 10.0\ntrajectories = 64\ninitial = "thermal"\n'
           'save_every = 1.0\n')
    named = '[system]\nname = "single_cavity"\n[model]\ndetuning = 1.0\ndetuning_kind = "effective"\n' + sim
    assert run_cli(tmp_path, named + '[drive]\nkind = "ramp"\nrise_time = 5.0\n', tmp_path / "d.nc") == 0
    matrix = ('[system]\nmodes = ["a"]\ndrift = [[-1.0, 0.0], [0.0, -1.0]]\ndiffusion = [[1.0, 0.0], [0.0, 1.0]]\n'
              + sim.replace('initial = "thermal"', 'initial = [[0.5, 0.0], [0.0, 0.5]]') + "[drive]\n")
    assert_refused(tmp_path, capsys, matrix, r"\[drive\] needs the capability 'mean_field_dynamics': it needs a "
                   r"parametrised system \(its nonlinear mean-field dynamics\)")
    assert_refused(tmp_path, capsys, named + "[wigner]\n",
                   r"\[wigner\] needs the capability 'truncated_wigner': system 'single_cavity' lacks it")


def test_a_system_ensemble_runs_in_units_with_streamed_traces_as_in_memory(tmp_path):
    """A [system] ensemble runs as the resonator's (units of trajectories folded in order, traces streamed to
    the file): the same bits as ``simulate`` in memory, at both points of the sweep."""
    from conftest import run_cli

    text = ('[system]\nname = "single_cavity"\n[model]\ndetuning = 2.3\npower = 0.02\ntemperature = [0.01, 0.4]\n'
            '[simulate]\nmethod = "exact"\ndt = 0.2\nburn_in = 20.0\nduration = 40.0\ntrajectories = 600\n'
            'traces = 3\nseed = 4\n')
    out = tmp_path / "o.nc"
    assert run_cli(tmp_path, text, out) == 0
    s = SimulationSettings(method="exact", dt=0.2, burn_in=20.0, duration=40.0, trajectories=600, traces=3, seed=4)
    memory = simulate(s, system=SYSTEM, detuning=2.3, power=0.02, temperature=[0.01, 0.4])
    with sde_com.read_dataset(out) as ds:
        for name in ("cov_sim", "cov_sim_err", "logneg_sim", "logneg_sim_err", "zscore_max", "trace", "noise"):
            np.testing.assert_array_equal(ds[name].values, memory[name].values, err_msg=name)
        assert "(X, Y, q, p)" in ds["trace"].attrs["long_name"]
