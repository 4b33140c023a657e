"""Measurement-based feedback on the filtered state ([feedback]; sde_com.physics.feedback, Eqs. (F1)–(F4)).

The closed loop's steady state against an independent route (the joint Lyapunov equation of the state and the
estimate), the LQG gain against the control Riccati equation solved by the Hamiltonian matrix's stable subspace
(and against perturbed gains: it is the optimum), cold damping of one oscillator against its closed form, and
closed-loop ensembles (exact and Euler–Maruyama) against the loop's moment solution, with the alternatives a
wrong loop would give (the force on the true state, the gain's sign flipped) rejected by the same data.
"""

import json
import math

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import norm

import sde_com
from sde_com.benchmarks.end_to_end import WATCHED_CAVITY
from sde_com.physics import feedback as fb
from sde_com.physics.measurement import channels, check_measures, kalman_gain, measurement_matrices

ALPHA = 1e-3  # the chance that a correct code fails a Bonferroni-bounded comparison had the seed been random


def _bonferroni(m: int) -> float:
    return float(norm.ppf(1 - ALPHA / (2 * m)))


# One mechanical oscillator (ω = 1 = ω_ref) in a hot bath (amplitude rate γ, n = 100) with an output port of
# amplitude rate κ on the same mode (the light that reads it out), watched by homodyne of x at η.
OMEGA, GAMMA, KAPPA, N_TH, ETA = 1.0, 0.01, 0.05, 100.0, 0.5
DAMP = GAMMA + KAPPA  # the mode's amplitude decay rate
DIFFUSION = GAMMA * (2 * N_TH + 1) + KAPPA  # on each quadrature: the bath's and the port's vacuum noise


def oscillator() -> sde_com.MatrixSystem:
    return sde_com.MatrixSystem(["m"], [[-DAMP, OMEGA], [-OMEGA, -DAMP]], np.eye(2) * DIFFUSION, time_scale=1.0,
                                outputs={"m": KAPPA})


MEASURE = [{"mode": "m", "efficiency": ETA}]


def _open_loop(system, params=None, measures=MEASURE):
    """(A, D, C, Γ, V_c, K) of a system's first branch, in the scaled time."""
    params = system.resolve(params or {})
    w = system.reference_rate(params)
    op = sde_com.physics.model.points(system, params)[0]
    ports = system.output_ports(params)
    chans = channels(check_measures(measures, system.modes, ports), system.modes)
    C, G = measurement_matrices(chans, [ports[system.modes[c.mode]] for c in chans], len(system.modes))
    A, D, C, G = op.drift / w, op.diffusion / w, C / math.sqrt(w), G / math.sqrt(w)
    Vc = scipy.linalg.solve_continuous_are(A.T, C.T, D, np.eye(C.shape[0]), s=G)
    return A, D, C, G, 0.5 * (Vc + Vc.T), kalman_gain(Vc, C, G)


CAVITY = dict(system="single_cavity", detuning=1.0, detuning_kind="effective")
CAVITY_MEASURE = [{"mode": "a", "efficiency": 0.8}]


@pytest.mark.parametrize("loop", [{"force": ["p"], "effort": 1e-3}, {"force": ["p"], "control": "gain",
                                                                      "gain": [[0.0, 0.0, 0.0, 0.05]]}])
def test_the_closed_loop_covariance_is_the_joint_lyapunov_solution(loop):
    """The single cavity at Δ = ω_m (LQG on the mechanics' momentum, and cold damping of p̂ at 0.05 ω_m): V_fb =
    V_c + Σ (Eq. (F3)) against the steady covariance Z of the joint process (u, x̂), du = (A u − B L x̂) dt + dW_sys,
    dx̂ = (K C (u − x̂) + (A − B L) x̂) dt + K dW, whose noises have covariance [[D, Γ Kᵀ], [K Γᵀ, K Kᵀ]] (one
    8 × 8 Lyapunov solve, not the separation principle): Z's u-block is V_fb and the estimate is uncorrelated
    with its error. Both are double-precision Lyapunov solves of rates within 1e5 of each other: 1e-8 of the
    covariance's scale is far above their rounding and far below any physics."""
    system = sde_com.get_system("single_cavity")
    params = {k: v for k, v in CAVITY.items() if k != "system"}
    ds = sde_com.conditional_sweep(CAVITY_MEASURE, feedback=loop, **CAVITY).isel(branch=0)
    A, D, C, G, Vc, K = _open_loop(system, params, CAVITY_MEASURE)
    L = ds.feedback_gain.values
    B = fb.force_matrix([system.quadratures.index("p")], 4)
    M = np.block([[A, -B @ L], [K @ C, A - B @ L - K @ C]])
    N = np.block([[D, G @ K.T], [K @ G.T, K @ K.T]])
    Z = scipy.linalg.solve_continuous_lyapunov(M, -N)
    scale = np.abs(Z).max()
    np.testing.assert_allclose(ds.cov_feedback.values, Z[:4, :4], rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(Z[:4, 4:] - Z[4:, 4:], 0.0, atol=1e-8 * scale)  # E[(u − x̂) x̂ᵀ] = 0
    # the force's variance from the same Σ: the same 1e-8 of the covariance's scale, carried through L twice
    np.testing.assert_allclose(ds.force_variance.values, np.diag(L @ Z[4:, 4:] @ L.T), rtol=0,
                               atol=1e-8 * scale * np.abs(L).sum(axis=1).max() ** 2)
    if loop.get("control") != "gain":  # the regulator cools the mirror (a plain gain may heat it: 8.23 > 8.05)
        assert ds.occupation_feedback.values[1] < ds.occupation.values[1]


def test_the_lqg_gain_solves_the_control_riccati_equation_and_is_the_optimum():
    """The regulator of Eq. (F4) against the stable invariant subspace of the Hamiltonian matrix
    [[A, −B Bᵀ/r], [−Q, −Aᵀ]] (its n stable eigenvectors [X₁; X₂] give S = X₂ X₁⁻¹; an independent method to
    scipy's Schur solver), to 1e-7 relative (the eigenvector route loses a few digits to X₁'s conditioning).
    And the separation principle's promise: the cost tr(Q V_fb) + r tr(L Σ Lᵀ) of the LQG gain is below that of
    every gain 5 % off it in any single entry."""
    system = sde_com.get_system("single_cavity")
    params = {k: v for k, v in CAVITY.items() if k != "system"}
    effort = 1e-2
    ds = sde_com.conditional_sweep(CAVITY_MEASURE, feedback={"force": ["p"], "effort": effort}, **CAVITY)
    L = ds.feedback_gain.values[0]
    A, D, C, G, Vc, K = _open_loop(system, params, CAVITY_MEASURE)
    B = fb.force_matrix([3], 4)
    Q = fb.target_weight(["m"], system.modes)
    ham = np.block([[A, -B @ B.T / effort], [-Q, -A.T]])
    values, vectors = np.linalg.eig(ham)
    stable = vectors[:, values.real < 0]
    S = np.real(stable[4:] @ np.linalg.inv(stable[:4]))
    np.testing.assert_allclose(L, B.T @ S / effort, rtol=1e-7, atol=1e-9 * np.abs(L).max())

    def cost(gain):
        out = fb.closed_loop(A, B, gain, K, Vc)
        return np.trace(Q @ out["cov"]) + effort * out["force_variance"].sum()

    best = cost(L)
    for j in range(4):
        if L[0, j] == 0:
            continue
        for step in (0.95, 1.05):
            other = L.copy()
            other[0, j] *= step
            assert cost(other) > best, (j, step)


def test_cold_damping_of_an_oscillator_has_its_closed_form():
    """Cold damping: the force −g p̂ on p (gain g = 0.1 ω on p̂ only). With the estimate's loop matrix
    A_cl = A − B L = [[−Γ, ω], [−ω, −Γ − g]] and the filter's gain k (one channel), Eq. (F3) is a 2 × 2 Lyapunov
    equation A_cl Σ + Σ A_clᵀ + k kᵀ = 0, whose solution by Cayley–Hamilton (adj A_cl = tr A_cl · I − A_cl) is
    Σ = −[det A_cl · k kᵀ + (A_cl − tr A_cl I) k kᵀ (A_cl − tr A_cl I)ᵀ] / (2 tr A_cl det A_cl); then
    V_fb = V_c + Σ, with V_c the Riccati solution. Agreement to 1e-10 of V_fb (closed form against a Schur
    solve: rounding)."""
    g = 0.1
    ds = sde_com.conditional_sweep(MEASURE, feedback={"force": ["p_m"], "control": "gain", "gain": [[0.0, g]]},
                                   system=oscillator()).isel(branch=0)
    A, D, C, G, Vc, K = _open_loop(oscillator())
    Acl = np.array([[-DAMP, OMEGA], [-OMEGA, -DAMP - g]])
    N = K @ K.T
    M = Acl - np.trace(Acl) * np.eye(2)
    sigma = -(np.linalg.det(Acl) * N + M @ N @ M.T) / (2 * np.trace(Acl) * np.linalg.det(Acl))
    V = Vc + sigma
    np.testing.assert_allclose(ds.cov_feedback.values, V, rtol=0, atol=1e-10 * np.abs(V).max())
    assert ds.occupation_feedback.item() == pytest.approx((V[0, 0] + V[1, 1] - 1) / 2, rel=1e-12)
    # the loop cools: from n = 16.7 (the port's light already cools the hot bath's 100) to 11.7
    assert ds.occupation_feedback.item() < ds.occupation.item()


def _cold_damping_run(method: str, gain: float, dt: float):
    return sde_com.conditional_simulate(MEASURE, dt=dt, duration=120.0, trajectories=3000, seed=11,
                                        save_every=20.0, initial=np.eye(2) * (N_TH + 0.5), method=method, traces=2,
                                        feedback={"force": ["p_m"], "control": "gain", "gain": [[0.0, gain]]},
                                        system=oscillator())


@pytest.mark.parametrize("method, dt", [("exact", 0.05), ("em", 0.02)])
def test_a_closed_loop_ensemble_follows_its_moments_and_rejects_a_wrong_loop(method, dt):
    """3000 trajectories of the cold-damped oscillator (g = 0.1) from a thermal state (n = 100) to its closed-
    loop steady state (t = 120/ω, 7 saved times × 3 independent entries): ⟨u uᵀ⟩ against the loop's moment
    solution, exact for the scheme, within the Bonferroni bound. The exact scheme's ensemble at its last time
    also rejects (|z| beyond the bound) the steady states of the loops a bug would run: the gain's sign flipped
    (−g: anti-damping, still stable through Γ) and the force acting on the true state instead of the estimate
    (the zero-order hold's bias, 8e-4 of V_fb at this dt, is far below the ensemble's 2 % error; Euler–Maruyama's
    11 % is not, so its scheme is checked against its own moments only, and its convergence below). The traced
    force is −L x̂."""
    ds = _cold_damping_run(method, 0.1, dt)
    rows, cols = np.triu_indices(2)
    z = np.abs(ds.zscore_feedback.values[:, rows, cols])
    bound = _bonferroni(z.size)
    assert z.max() < bound, z.max()
    if method == "exact":
        last, err = ds.cov_feedback_sim.values[-1], ds.cov_feedback_sim_err.values[-1]
        A, D, C, G, Vc, K = _open_loop(oscillator())
        B = fb.force_matrix([1], 2)
        flipped = fb.closed_loop(A, B, np.array([[0.0, -0.1]]), K, Vc)["cov"]
        true_state = scipy.linalg.solve_continuous_lyapunov(A - B @ np.array([[0.0, 0.1]]), -D)
        for wrong in (flipped, true_state):
            assert np.abs((last - wrong)[rows, cols] / err[rows, cols]).max() > bound
    np.testing.assert_allclose(ds.feedback_force.values, -ds.estimate.values @ np.array([[0.0, 0.1]]).T)


@pytest.mark.parametrize("method", ["exact", "em"])
def test_the_loops_moments_converge_to_its_steady_state_at_first_order_in_dt(method):
    """The closed loop's moment recursion (what the ensembles are checked against) run to its steady state
    (t = 150/ω, from V_c) against V_fb of Eq. (F3): the gap halves with dt (slope 1 within 0.8–1.2; the force
    held over a step, and Euler–Maruyama's step, are first-order). A force moved by twice or half its G_u, or a
    record missing its G_y, converges to another loop: the gap stops shrinking."""
    A, D, C, G, Vc, K = _open_loop(oscillator())
    B = fb.force_matrix([1], 2)
    L = np.array([[0.0, 0.1]])
    target = fb.closed_loop(A, B, L, K, Vc)["cov"]
    gaps = []
    for dt in (0.02, 0.01):
        from sde_com.simulation.conditional import prepare_conditional

        model = prepare_conditional(MEASURE, oscillator(), {}, dt=dt, duration=150.0, initial=Vc, save_every=150.0,
                                    method=method, feedback=fb.check_feedback(
                                        {"force": ["p_m"], "control": "gain", "gain": [[0.0, 0.1]]}, ["m"],
                                        ["x_m", "p_m"]))
        gaps.append(np.abs(model["moments"][-1] - target).max())
    slope = np.log2(gaps[0] / gaps[1])
    assert 0.8 < slope < 1.2, (gaps, slope)


def test_the_force_held_over_a_step_moves_state_and_record_as_the_quadratures_say():
    """G_u = ∫₀^dt e^{As} ds B and G_y = ∫₀^dt C ∫₀^s e^{Ar} dr B ds (``control_step``, from one matrix
    exponential) against adaptive quadrature of the integrands (scipy quad_vec, relative 1e-12), on the watched
    oscillator with a force on p over dt = 0.3: agreement to 1e-10."""
    from scipy.integrate import quad_vec

    A, D, C, G, Vc, K = _open_loop(oscillator())
    B = fb.force_matrix([1], 2)
    dt = 0.3
    Gu, Gy = fb.control_step(A, C, B, dt)
    inner = lambda s: quad_vec(lambda r: scipy.linalg.expm(A * r) @ B, 0, s, epsrel=1e-12)[0]  # noqa: E731
    np.testing.assert_allclose(Gu, inner(dt), rtol=0, atol=1e-10)
    np.testing.assert_allclose(Gy, quad_vec(lambda s: C @ inner(s), 0, dt, epsrel=1e-12)[0], rtol=0, atol=1e-10)


LOOP = WATCHED_CAVITY  # the single cavity at Δ = ω_m watched at η = 0.8 (the filter benchmark's scenario)


@pytest.mark.parametrize("text, message", [
    (LOOP.replace('[[measure]]\nmode = "a"\nefficiency = 0.8\n', "") + '[feedback]\nforce = ["p"]\n',
     r"\[feedback\] needs \[\[measure\]\] tables .* beside it"),
    (LOOP + '[feedback]\nforce = ["q_m"]\n', r"feedback.force: 'q_m' is not a quadrature of this system; its "
                                             r"quadratures: \['X', 'Y', 'q', 'p'\]"),
    (LOOP + '[feedback]\nforce = ["p"]\ntarget = ["b"]\n', r"feedback.target: 'b' is not a mode of this system"),
    (LOOP + '[feedback]\nforce = ["p"]\neffort = 0.0\n', r"feedback.effort must be > 0"),
    (LOOP + '[feedback]\nforce = ["p"]\ncontrol = "gain"\ngain = [[0.0, 0.1]]\n',
     r"feedback.gain must be 1 × 4 \(forces × quadratures\), got 1 × 2"),
    (LOOP + '[feedback]\nforce = ["p"]\ncontrol = "gain"\ngain = [[0.0, 0.0, 0.0, -1.0]]\n',
     r"feedback.gain destabilises the loop at the operating point: A − B L grows at"),
    (LOOP + '[feedback]\nforce = ["p"]\ncontrol = "gain"\n', r"feedback.gain is needed with control = 'gain'"),
    (LOOP + '[feedback]\nforce = ["p"]\ngain = [[0.0, 0.0, 0.0, 1.0]]\n',
     r"feedback.gain has no meaning with control = 'lqg'"),
    (LOOP + '[feedback]\neffort = 1.0\n', r"feedback.force is needed"),
    (LOOP + '[feedback]\nforce = ["q", "p"]\ncontrol = "gain"\ngain = [[0.0, 0.0, 0.0, 0.1], [0.0, 0.0]]\n',
     r"feedback.gain must be 2 × 4 \(forces × quadratures\), got 2 × 2 × 4 \(rows of unequal length\)"),
])
def test_bad_feedback_is_refused_in_one_line(tmp_path, capsys, text, message):
    from conftest import assert_refused

    assert_refused(tmp_path, capsys, text, message)


def test_a_scenario_with_feedback_sweeps_the_closed_loop_and_writes_it_cf_clean(tmp_path):
    """[feedback] beside [[measure]] over a [model] grid: the closed loop's variables on every point, the
    feedback table kept in the attributes, CF-clean."""
    from conftest import run_cli
    from test_cf import assert_cf_clean

    from sde_com.results.io import read_dataset

    out = tmp_path / "loop.nc"
    text = LOOP.replace("detuning = 1.0", "detuning = [0.8, 1.0]") + '[feedback]\nforce = ["p"]\neffort = 0.01\n'
    assert run_cli(tmp_path, text, out) == 0
    ds = read_dataset(out)
    assert ds.cov_feedback.dims == ("detuning", "branch", "row", "col")
    assert list(ds.force.values) == ["p"] and ds.feedback_gain.dims == ("detuning", "branch", "force", "quadrature")
    assert np.all(ds.occupation_feedback.isel(branch=0, mode=1) < ds.occupation.isel(branch=0, mode=1))
    assert '"effort": 0.01' in ds.attrs["feedback"]
    assert_cf_clean(out)


@pytest.mark.parametrize("method", ["exact", "em"])
def test_the_filter_of_a_closed_loops_record_reproduces_its_estimate(method):
    """``kalman_filter`` told the loop (the force it knows, Eq. (F2)) over a closed-loop run's record saved at
    every step gives the run's estimate back to rounding (the same gains and the same step matrices: measured to
    1e-15 of the estimate's size)."""
    loop = {"force": ["p_m"], "control": "gain", "gain": [[0.0, 0.1]]}
    V0 = np.eye(2) * (N_TH + 0.5)
    ds = sde_com.conditional_simulate(MEASURE, dt=0.05, duration=10.0, trajectories=4, traces=3, seed=2,
                                      save_every=0.05, initial=V0, method=method, feedback=loop, system=oscillator())
    out = sde_com.kalman_filter(ds.record.values, 0.05, MEASURE, initial=V0, method=method, feedback=loop,
                                system=oscillator())
    scale = np.abs(ds.estimate.values).max()
    np.testing.assert_allclose(out["estimate"], ds.estimate.values, rtol=0, atol=1e-12 * scale)
    untold = sde_com.kalman_filter(ds.record.values, 0.05, MEASURE, initial=V0, method=method, system=oscillator())
    assert np.abs(untold["estimate"] - ds.estimate.values).max() > 1e-3 * scale  # the loop matters
    # a record file that says it was taken under feedback is refused without that loop
    from sde_com.simulation.conditional import filter_record_file

    with pytest.raises(sde_com.errors.UserError, match="the record was taken under the feedback"):
        filter_record_file(ds.assign_attrs(feedback=json.dumps(fb.loop_attrs(fb.check_feedback(
            loop, ["m"], ["x_m", "p_m"])))), MEASURE, initial=V0, method=method, system=oscillator())


def test_the_outline_knows_the_loops_variables_before_the_run():
    """What a figure or [output] may name is decided before any work: the steady loop's variables exist with
    [feedback] (a lines figure of occupation_feedback is accepted), the closed-loop ensemble's do not without it
    (refused naming the variable)."""
    from sde_com.runs.scenario import parse_scenario

    swept = LOOP.replace("detuning = 1.0", "detuning = [0.8, 1.0]")
    parse_scenario(swept + '[feedback]\nforce = ["p"]\n[plot]\nkind = "lines"\ny = ["occupation_feedback"]\n')
    open_loop = LOOP + '[simulate]\nmethod = "exact"\ndt = 0.01\nduration = 1.0\ntrajectories = 4\n'
    with pytest.raises(sde_com.errors.ScenarioError, match="'zscore_feedback' cannot be written by this run"):
        parse_scenario(open_loop + '[output]\nvariables = ["zscore_feedback"]\n')
    parse_scenario(open_loop + '[feedback]\nforce = ["p"]\n[output]\nvariables = ["zscore_feedback"]\n')
