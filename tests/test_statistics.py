"""Sufficient statistics of the ensembles: per-block sums, their fold into jackknife groups, and the estimates
they give — bitwise independent of the unit size and of checkpointing (sde_com.simulation.estimators,
sde_com.kernels.accumulators, ensemble.run_block)."""

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from conftest import PEAK, resonator_thermal

import sde_com
from sde_com.kernels.accumulators import block_moments, block_outer_moments, sums_larger_than_samples
from sde_com.physics.resonator.device import Device
from sde_com.simulation.ensemble import PairEntanglement, statistics_layout
from sde_com.simulation.estimators import jackknife, snapshot_sums
from sde_com.simulation.simulate import (
    MomentAccumulator,
    SimulationSettings,
    assemble_simulation,
    estimate_point,
    point_accumulator,
    point_estimates,
    prepare_point,
    prepare_simulation,
    run_block,
    simulate,
    stat_block_size,
    trajectory_blocks,
)

# Sums of the same numbers in a different order differ by rounding only: |Σ error| ≤ n ε Σ|x| for n terms
# (ε = 1.1e-16); with n ≤ 4096 terms of one sign (x² and the diagonal of u uᵀ) or of mixed sign with
# Σ|x| ≤ 10 |Σx| here, 1e-12 relative covers it with a wide margin (a wrong term would show at ~1e-3).
RTOL = 1e-12


def _outcomes_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray) or np.ndim(a[k]) == 0 and isinstance(a[k], float):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # NaN at the same places, else the same bits
        elif a[k] is None or isinstance(a[k], (bool, np.bool_)):
            assert a[k] == b[k], k


def test_stat_block_size_and_units_are_whole_blocks():
    assert [stat_block_size(n) for n in (1, 31, 63, 64, 100, 4096, 8191, 8192, 10**7)] == \
        [1, 1, 1, 2, 2, 128, 128, 256, 256]
    s = SimulationSettings(dt=0.5, duration=50.0, trajectories=1000, chunk=40)
    S = stat_block_size(1000)  # 16
    blocks = trajectory_blocks(s)
    assert all(f % S == 0 for f, _ in blocks) and all(c == 48 for _, c in blocks[:-1])  # 40 → 3 S
    assert sum(c for _, c in blocks) == 1000 and blocks[-1] == (960, 40)


@pytest.fixture(scope="module")
def peak():
    d = Device()
    p = sde_com.resonator.operating_points(d, PEAK)[0]
    return d, p.drift, p.diffusion


def _settings(transient: bool, **kw):
    base = dict(method="exact", dt=0.5, duration=40.0, trajectories=1000, seed=3, initial="thermal")
    return SimulationSettings(**{**base, **kw}, **({"save_every": 5.0} if transient else {}))


@pytest.mark.parametrize("transient", [False, True])
def test_estimates_do_not_depend_on_the_unit_size(peak, transient):
    d, A, D = peak
    S = stat_block_size(1000)
    runs = []
    for chunk in (None, S, 2 * S, 3 * S + 5):  # the last one is rounded up to 4 S
        s = _settings(transient, chunk=chunk)
        model = prepare_point(A, D, d.omega_m, resonator_thermal(), s)
        runs.append(estimate_point(model, s, (run_block(model, s, f, c) for f, c in trajectory_blocks(s))))
    for other in runs[1:]:
        _outcomes_equal(runs[0], other)
    assert np.all(np.isfinite(runs[0]["cov_sim_err"] if not transient else runs[0]["cov_sim_err"][1:]))


# bitwise agreement of two paths: a thermal start without burn-in (warned of as biased) is as good as any
@pytest.mark.filterwarnings("ignore:burn_in = 0 is shorter")
@pytest.mark.parametrize("transient, n", [(False, 1000), (True, 1000), (True, 150)])
def test_folded_units_equal_the_in_memory_simulation(transient, n, tmp_path):
    """150 trajectories: blocks of 4, whose units hand over their snapshots (``sums_larger_than_samples``);
    a unit that waits for its turn is kept as its blocks' sums."""
    s = _settings(transient, chunk=96, trajectories=n)
    a = simulate(s, detuning=[0.7, 0.8])
    b = simulate(replace(s, chunk=None), detuning=[0.7, 0.8])
    xr.testing.assert_identical(a, b)
    # the engine's merge: units added in reverse completion order wait for their turn, then fold in order
    from sde_com.runs.mergers import SimulationMerger
    from sde_com.runs.scenario import parse_scenario

    scenario = parse_scenario("[model]\ndetuning = [0.7, 0.8]\n[simulate]\ndt = 0.5\nduration = 1.0\n")
    scenario = replace(scenario, simulation=s)
    units = scenario.kind.plan(scenario)
    models = scenario.kind.models(scenario, units)
    merger = SimulationMerger(scenario, units, models, tmp_path, None)
    for i in reversed(range(len(units))):
        merger.add(i, scenario.kind.run_unit(scenario, units[i], models[i]))
    folded = assemble_simulation(s, dict(detuning=[0.7, 0.8]), prepare_simulation(s, dict(detuning=[0.7, 0.8])),
                                 merger.estimates)
    xr.testing.assert_identical(a, folded)


def _unit_results(peak, s):
    d, A, D = peak
    model = prepare_point(A, D, d.omega_m, resonator_thermal(), s)
    return model, [run_block(model, s, f, c) for f, c in trajectory_blocks(s)]


def test_accumulator_refuses_out_of_order_units_and_round_trips(peak):
    s = _settings(True, chunk=64)
    model, results = _unit_results(peak, s)
    acc = point_accumulator(model, s)
    with pytest.raises(ValueError, match="expected next"):
        acc.add(results[1])
    for r in results[:5]:
        acc.add(r)
    with pytest.raises(ValueError, match="expected next"):
        acc.add(results[3])
    saved = {k: v.copy() for k, v in acc.to_arrays().items()}
    restored = MomentAccumulator.from_arrays(saved)
    assert not restored.complete
    for r in results[5:]:
        acc.add(r)
        restored.add(r)
    assert acc.complete and restored.complete
    for k, v in acc.to_arrays().items():
        np.testing.assert_array_equal(v, restored.to_arrays()[k])
    _outcomes_equal(point_estimates(model, s, acc), point_estimates(model, s, restored))


def test_fold_equals_numpy_mean_and_variance(peak):
    """The one-pass moments of the folded sums against numpy's two-pass mean and std of the same x."""
    d, A, D = peak
    s = _settings(True, chunk=64)
    model, results = _unit_results(peak, s)
    n_items, S = statistics_layout(s)
    acc = MomentAccumulator(n_items, S, (s.snapshot_steps.size, 6, 6))  # every entry of the groups
    for r in results:
        acc.add(r)
    V, err = acc.moments()
    weights = acc.group_count
    groups = acc._unpack(np.stack(acc.finished) / weights.reshape(-1, 1, 1))
    from sde_com.kernels import ensemble as kernels
    from sde_com.random import INITIAL_STREAM, sample_gaussian

    u0 = sample_gaussian(model.C0, s.seed, 0, 1000, INITIAL_STREAM)
    snaps = kernels.run_ensemble(model.F, model.L, u0, s.seed, 0, s.n_steps, s.burn_in_steps, s.snapshot_steps,
                                 0, 1)[3]
    x = np.einsum("ita,itb->itab", snaps, snaps)
    np.testing.assert_allclose(V, x.mean(axis=0), rtol=RTOL)
    # the one-pass variance Σx²/n − V² cancels: relative error ≈ ε Σx²/(n s²), here ≤ ~10 ε (u uᵀ has a
    # relative spread of order one), so 1e-12 still holds; t = 0 (thermal start) is exact in both
    np.testing.assert_allclose(err[1:], x.std(axis=0, ddof=1)[1:] / np.sqrt(1000), rtol=RTOL)
    K = 1000 // stat_block_size(1000) + 1  # 63 blocks of 16 (the last of 8), 32 groups of whole blocks
    edges = [min(1000, 16 * next(k for k in range(K) if k * 32 // K == g)) for g in range(32)] + [1000]
    np.testing.assert_array_equal(weights, np.diff(edges))
    ref = np.stack([x[a:b].mean(axis=0) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    np.testing.assert_allclose(groups, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    # the jackknife of many times at once equals the one-time jackknife at each time: the same formula, but the
    # weighted means (tensordot over a window, or over one time) may round in another order: ≤ G ε ≈ 32 ×
    # 1.1e-16 ≈ 4e-15 relative in V. E_N = −ln 2ν⁻ amplifies that by ν⁻'s condition, at most ~1e3 for these
    # well-separated symplectic eigenvalues → ≲ 4e-12; the delete-one spread (the error) likewise relative to
    # itself. 1e-9 leaves a wide margin and still catches any change of formula (≥ 1e-3 here).
    en, en_err = acc.jackknife(model.entanglement, window=7)
    for k in (0, 5, len(en) - 1):
        e1, s1 = jackknife(groups[:, k], weights.astype(float), model.entanglement)
        np.testing.assert_allclose([en[k], en_err[k]], [e1, s1], rtol=1e-9, atol=1e-12)


def test_steady_statistics_and_batch_means(peak):
    d, A, D = peak
    s = _settings(False, chunk=64)
    model, results = _unit_results(peak, s)
    assert set(results[0]) == {"first_block", "stat_count", "stat_sum", "stat_sum_sq"}
    assert results[1]["first_block"] == 64 // stat_block_size(1000) and results[0]["stat_sum"].shape == (4, 21)
    one = SimulationSettings(method="exact", dt=1.0, burn_in=50.0, duration=3200.0, trajectories=1, seed=21)
    model, (r,) = _unit_results(peak, one)
    assert r["stat_sum"].shape == (32, 21) and np.all(r["stat_count"] == 1)
    np.testing.assert_array_equal(r["stat_sum_sq"], r["stat_sum"] ** 2)  # one batch average per block


@pytest.mark.parametrize("n", [8, 100, 203])
def test_snapshots_fold_to_the_bits_of_their_blocks_sums(peak, n):
    """Small blocks (1, 2, 4 trajectories; 203: a partial last block) hand over their snapshots, folded at once
    (``fold_outer_moments``); the same units as block sums (``snapshot_sums``) must fold to the same bits."""
    s = _settings(True, chunk=48, trajectories=n)
    S = stat_block_size(n)
    assert sums_larger_than_samples(S, 6)
    model, results = _unit_results(peak, s)
    assert all("stat_snapshots" in r and "stat_sum" not in r for r in results)
    samples, sums = point_accumulator(model, s), point_accumulator(model, s)
    for r in results:
        samples.add(r)
        sums.add(snapshot_sums(r, S))
    for k, v in sums.to_arrays().items():
        np.testing.assert_array_equal(samples.to_arrays()[k], v, err_msg=k)
    _outcomes_equal(point_estimates(model, s, samples), point_estimates(model, s, sums))


def test_block_outer_moments_equal_numpy_and_do_not_depend_on_the_cut():
    rng = np.random.default_rng(7)
    u = rng.standard_normal((1000, 5, 4)) * np.array([1.0, 3.0, 0.1, 10.0])
    S = 64
    total, total_sq = block_outer_moments(u, S)
    r, c = np.triu_indices(4)
    x = np.einsum("ita,itb->itab", u, u)[..., r, c]  # packed: the upper triangle, row-major
    ref = np.stack([x[a:a + S].sum(axis=0) for a in range(0, 1000, S)])
    ref_sq = np.stack([(x[a:a + S] ** 2).sum(axis=0) for a in range(0, 1000, S)])
    np.testing.assert_allclose(total, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    np.testing.assert_allclose(total_sq, ref_sq, rtol=RTOL)
    assert total.shape == (16, 5, 10)
    for cut in (S, 3 * S, 15 * S):  # units of whole blocks: the same bits
        a, a_sq = block_outer_moments(u[:cut], S)
        b, b_sq = block_outer_moments(u[cut:], S)
        assert np.array_equal(np.concatenate([a, b]), total) and np.array_equal(np.concatenate([a_sq, b_sq]), total_sq)
    y = x.reshape(1000, -1)
    s, s_sq = block_moments(y, S)
    np.testing.assert_allclose(s, ref.reshape(s.shape), rtol=RTOL, atol=RTOL * np.abs(ref).max())
    c, c_sq = block_moments(y[3 * S:], S)
    assert np.array_equal(c, s[3:]) and np.array_equal(c_sq, s_sq[3:])


def test_spilled_groups_give_the_same_bits_and_survive_a_checkpoint(peak, tmp_path):
    """Finished jackknife groups kept in a file (what a long transient does) change nothing, and a
    checkpoint taken half-way (state arrays + the file) continues to the same estimates."""
    s = _settings(True, chunk=64)
    model, results = _unit_results(peak, s)
    memory = point_accumulator(model, s)
    spilled = point_accumulator(model, s, tmp_path / "groups.bin")
    half = len(results) // 2
    for r in results[:half]:
        memory.add(r)
        spilled.add(r)
    spilled.sync()
    state = {k: v.copy() for k, v in spilled.to_arrays().items()}
    spilled.add(results[half])  # work after the checkpoint, lost in a kill: the file is cut back on resume
    resumed = MomentAccumulator.from_arrays(state, tmp_path / "groups.bin")
    for r in results[half:]:
        memory.add(r)
        resumed.add(r)
    _outcomes_equal(point_estimates(model, s, memory), point_estimates(model, s, resumed))
    # the file holds the 10 entries of the reported pair's 4×4 block, of 21, per group and time
    assert len(memory.kept) == 10
    assert (tmp_path / "groups.bin").stat().st_size == memory.n_groups * memory.total[..., memory.kept].nbytes


@pytest.mark.parametrize("pair", [(0, 2), (2, 0), (1, 2)])
def test_groups_of_the_pair_entries_give_the_jackknife_of_all_entries(peak, pair):
    """Keeping only the entries E_N reads (``PairEntanglement.packed_entries``) changes no bit of the jackknife
    (E_N and its error at every time), for the pair in either order."""
    s = _settings(True, chunk=64)
    model, results = _unit_results(peak, s)
    entanglement = PairEntanglement(*pair)
    n_items, S = statistics_layout(s)
    shape = (s.snapshot_steps.size, 6, 6)
    every = MomentAccumulator(n_items, S, shape)
    kept = MomentAccumulator(n_items, S, shape, kept=entanglement.packed_entries(6)[0])
    for r in results:
        every.add(r)
        kept.add(r)
    assert kept.finished[0].shape[-1] == 10 and every.finished[0].shape[-1] == 21
    running = np.zeros_like(kept.finished[0])  # the kept entries of the sums the total adds up
    for group in kept.finished:
        running += group
    np.testing.assert_array_equal(running, kept.total[..., kept.kept])
    for a, b in zip(every.jackknife(entanglement), kept.jackknife(entanglement), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(every.jackknife(entanglement)[1][1:]).all()  # a real test: errors, not NaN throughout


@pytest.mark.parametrize("n", [256, 1000, 64 * 7 + 5])
def test_moments_made_in_the_stepper_equal_the_pass_over_the_snapshots(peak, n):
    """``run_ensemble_moments`` adds each lane block's products while it is in cache; the sums must be those
    of ``block_outer_moments`` over the same snapshots, bit for bit (partial last lane block included)."""
    from sde_com.kernels import ensemble as kernels

    s = _settings(True, chunk=64)
    d, A, D = peak
    model = prepare_point(A, D, d.omega_m, resonator_thermal(), s)
    u0 = np.random.default_rng(n).standard_normal((n, 6))
    S = 64 if n >= 64 * 32 else 16
    snaps, traces, noises = kernels.run_ensemble(model.F, model.L, u0, 5, 32, s.n_steps, 0, s.snapshot_steps, 3,
                                                 1)[3:]
    total, total_sq, t2, n2 = kernels.run_ensemble_moments(model.F, model.L, u0, 5, 32, s.n_steps, s.snapshot_steps,
                                                          3, 1, S)
    ref, ref_sq = block_outer_moments(snaps, S)
    assert np.array_equal(total, ref) and np.array_equal(total_sq, ref_sq)
    assert np.array_equal(traces, t2) and np.array_equal(noises, n2)
