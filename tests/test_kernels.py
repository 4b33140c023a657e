"""Tests of sde_com.kernels: generator known answers and layout, ziggurat exactness, reproducibility, statistics,
strong order.

Statistical thresholds come from the estimators' own standard errors with a Bonferroni correction so that
a correct kernel fails a test with probability about 1e-3 for a random seed; seeds are fixed.
"""

import math
import struct

import numba
import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats

from sde_com.kernels import ensemble as kernels
from sde_com.random import normals as rng_normals
from sde_com.random import philox

FAIL_PROBABILITY = 1e-3  # per statistical test, for a correct implementation and a random seed
NO_SNAPSHOTS = np.zeros(0, dtype=np.int64)
IU = np.triu_indices(6)
M32, M64 = 2**32 - 1, 2**64 - 1
N_LAYERS = rng_normals.ZIGGURAT_LAYERS
X, RATIO, HEIGHT, R = rng_normals._ZIG_X, rng_normals._ZIG_RATIO, rng_normals._ZIG_F, rng_normals.ZIGGURAT_R


def _system():
    """Three coupled damped oscillators in 6-D (slowest decay rate 0.2) and a correlated diffusion D."""
    A = np.zeros((6, 6))
    for k, (omega, gamma) in enumerate([(1.0, 0.2), (1.3, 0.3), (0.7, 0.25)]):
        i = 2 * k
        A[i, i] = A[i + 1, i + 1] = -gamma
        A[i, i + 1], A[i + 1, i] = omega, -omega
    A[0, 3] = A[2, 1] = 0.1
    A[2, 5] = A[4, 3] = 0.08
    D = np.diag([0.2, 0.2, 0.3, 0.3, 1.0, 1.0])
    D[0, 1] = D[1, 0] = 0.05
    D[4, 5] = D[5, 4] = 0.2
    return A, D


def _euler_maruyama(A, D, dt):
    return np.eye(6) + A * dt, np.linalg.cholesky(D * dt)


def _exact(A, D, dt):
    """Phi = expm(A dt) and chol(Q_dt) from one expm of [[-A, D], [0, A^T]] dt (Van Loan 1978)."""
    E = scipy.linalg.expm(np.block([[-A, D], [np.zeros((6, 6)), A.T]]) * dt)
    Phi = E[6:, 6:].T
    Q = Phi @ E[:6, 6:]
    return np.ascontiguousarray(Phi), np.linalg.cholesky(0.5 * (Q + Q.T))


def _z_scores(sum_u, sum_uu, n_avg, V):
    """z of the trajectory-mean of time averages of (u, u u^T upper triangle) against (0, V).

    Each trajectory starts in its own stationary state and has its own stream, so the per-trajectory
    averages are independent; the standard error is their sample std / sqrt(n_traj). The threshold is the
    two-sided Student-t quantile at FAIL_PROBABILITY / n_entries (Bonferroni over the 27 entries).
    """
    est = np.hstack([sum_u / n_avg, (sum_uu / n_avg)[:, IU[0], IU[1]]])
    target = np.concatenate([np.zeros(6), V[IU]])
    n = est.shape[0]
    z = (est.mean(axis=0) - target) / (est.std(axis=0, ddof=1) / np.sqrt(n))
    threshold = scipy.stats.t.isf(FAIL_PROBABILITY / (2 * z.size), df=n - 1)
    return z, threshold


def _stationary_run(F, L, V, seed, n_traj, n_steps):
    initial = rng_normals.sample_gaussian(np.linalg.cholesky(V), seed, 0, n_traj, 1)
    sum_u, sum_uu, n_avg, *_ = kernels.run_ensemble(F, L, initial, seed, 0, n_steps, 0, NO_SNAPSHOTS, 0, 1)
    return _z_scores(sum_u, sum_uu, n_avg, V)


def _small_run(seed=11, first=0, n_traj=100):
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    initial = rng_normals.sample_gaussian(np.eye(6), seed, first, n_traj, 1)
    snaps = np.array([0, 250, 250, 500], dtype=np.int64)
    return kernels.run_ensemble(F, L, initial, seed, first, 500, 100, snaps, min(5, n_traj), 7)


def _assert_runs_identical(a, b):
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


# --- a slow, obviously-right reference of the module docstring's recipe ---------------------------------


def _philox_words(seed, trajectory, tag, block):
    """Philox block ``block`` of (seed, trajectory, tag) as two 64-bit words (the docstring's layout)."""
    w = [
        int(x)
        for x in philox.philox4x32(
            trajectory & M32, trajectory >> 32, block & M32, (block >> 32) | tag << 24, seed & M32, seed >> 32
        )
    ]
    return w[0] | w[1] << 32, w[2] | w[3] << 32


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def _xoshiro256pp(s):
    """One step of xoshiro256++ on a list of four Python ints (Blackman & Vigna's xoshiro256plusplus.c)."""
    out = (_rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
    t = (s[1] << 17) & M64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return out


def _uniform53(word):
    return (word >> 11) * 2.0**-53


def _reference_normal(word, seed, trajectory, tag, m):
    """Normal m of stream (seed, trajectory, tag) whose first candidate is ``word`` (docstring steps 2, 3)."""

    def fix_words():
        j = 0
        while True:
            yield from _philox_words(seed, trajectory, tag | 128, (m << 16) + j)
            j += 1

    fix = fix_words()
    while True:
        i = word & (N_LAYERS - 1)
        u = struct.unpack("<d", struct.pack("<Q", (word >> 12) | 0x4000000000000000))[0] - 3.0
        z = u * X[i]
        if abs(u) < RATIO[i]:
            return z
        if i == 0:
            while True:
                a = -math.log(_uniform53(next(fix)) + 2.0**-53) * (1.0 / R)
                b = -math.log(_uniform53(next(fix)) + 2.0**-53)
                if b + b > a * a:
                    return -(R + a) if (word >> 10) & 1 else R + a
        y = HEIGHT[i] + _uniform53(next(fix)) * (HEIGHT[i + 1] - HEIGHT[i])
        if y < math.exp(-0.5 * z * z):
            return z
        word = next(fix)


def _reference_normals(seed, trajectory, tag, n, first=0):
    seed %= 2**64
    s = [*_philox_words(seed, trajectory, tag, 0), *_philox_words(seed, trajectory, tag, 1)]
    words = [_xoshiro256pp(s) for _ in range(first + n)]
    return np.array([_reference_normal(words[m], seed, trajectory, tag, m) for m in range(first, first + n)])


def _forced_words(rng, layer, n):
    """n first candidates in ``layer`` that the fast path rejects: |U| uniform in [ratio, 1), random sign bits."""
    words = np.zeros(0, dtype=np.uint64)
    while words.size < n:
        w = rng.integers(0, 2**64, size=2 * n, dtype=np.uint64, endpoint=False)
        w = (w & ~np.uint64(N_LAYERS - 1)) | np.uint64(layer)
        words = np.concatenate([words, w[np.abs(_candidate_u(w)) >= RATIO[layer]]])
    return words[:n]


def _candidate_u(words):
    return ((words >> np.uint64(12)) | np.uint64(0x4000000000000000)).view(np.float64) - 3.0


def _slow_path(words, seed=77, trajectory=5, tag=0):
    """rng_normals._zig_slow on each word, normal index m = position (independent fix-up streams)."""
    s, t = np.uint64(seed), np.uint64(trajectory)
    k0, k1, t0, t1 = s & np.uint64(M32), s >> np.uint64(32), t & np.uint64(M32), t >> np.uint64(32)
    return np.array([rng_normals._zig_slow(w, k0, k1, t0, t1, np.uint64(tag), m) for m, w in enumerate(words)])


# --- generators: known answers and the documented layout -------------------------------------------------


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [  # Random123 kat_vectors, philox4x32_10
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(x) for x in philox.philox4x32(*counter, *key)) == expected


def test_xoshiro256pp_known_answers():
    # xoshiro256plusplus.c from the state (1, 2, 3, 4) (the reference vector of rand_xoshiro's test suite)
    expected = [41943041, 58720359, 3588806011781223, 3591011842654386, 9228616714210784205,
                9973669472204895162, 14011001112246962877, 12406186145184390807, 15849039046786891736,
                10450023813501588000]  # fmt: skip
    s = tuple(np.uint64(x) for x in (1, 2, 3, 4))
    for value in expected:
        out, *s = philox.xoshiro_next(*s)
        s = [np.uint64(x) for x in s]  # returned as Python ints
        assert int(out) == value
    s = [1, 2, 3, 4]
    assert [_xoshiro256pp(s) for _ in expected] == expected  # the test's own reference agrees


def test_uniform53_spans_zero_to_one_minus_ulp():
    assert rng_normals.uniform53(np.uint64(0)) == 0.0
    assert rng_normals.uniform53(np.uint64(2**11)) == 2.0**-53
    assert rng_normals.uniform53(np.uint64(M64)) == 1.0 - 2.0**-53


def test_normals_follow_the_documented_recipe():
    """standard_normals, fill_normals (offset, other tag) and sample_gaussian equal the docstring's recipe in
    plain Python, bitwise. The negative seed checks 'mod 2**64', the trajectory > 2**32 both counter words;
    12000 normals include ~50 fix-ups."""
    seed, trajectory = -5, 2**33 + 7
    assert np.array_equal(
        rng_normals.standard_normals(seed, trajectory, 12_000), _reference_normals(seed, trajectory, 0, 12_000)
    )
    out = np.empty(40)
    assert rng_normals.fill_normals(seed, trajectory, 100, 1, out) == 140
    assert np.array_equal(out, _reference_normals(seed, trajectory, 1, 40, first=100))
    z = rng_normals.sample_gaussian(np.eye(6), seed, trajectory, 3, 1)
    for i in range(3):
        assert np.array_equal(z[i], _reference_normals(seed, trajectory + i, 1, 6))


def test_fix_ups_follow_the_documented_recipe():
    rng = np.random.default_rng(5)
    words = np.concatenate([_forced_words(rng, 0, 100)] + [_forced_words(rng, i, 2) for i in range(1, N_LAYERS, 10)])
    expected = [_reference_normal(int(w), 77, 5, 0, m) for m, w in enumerate(words)]
    assert np.array_equal(_slow_path(words), expected)


# --- the ziggurat --------------------------------------------------------------------------------------


def _f(x):
    return np.exp(-0.5 * np.asarray(x) ** 2)


def _mass(a, b):
    """Integral of exp(-x^2/2) over [a, b], 0 <= a <= b, accurate in the tail."""
    return math.sqrt(math.pi / 2) * (scipy.special.erfc(a / math.sqrt(2)) - scipy.special.erfc(b / math.sqrt(2)))


def test_ziggurat_tables_have_equal_layers():
    v = R * _f(R) + _mass(R, np.inf)
    assert N_LAYERS == 1024 and X[1] == R and X[N_LAYERS] == 0.0 and HEIGHT[N_LAYERS] == 1.0
    np.testing.assert_allclose(X[0] * _f(R), v, rtol=1e-14)  # base strip: rectangle plus tail
    areas = X[1:N_LAYERS] * (_f(X[2:]) - _f(X[1:N_LAYERS]))
    areas[-1] = X[N_LAYERS - 1] * (1.0 - _f(X[N_LAYERS - 1]))  # top layer up to the peak
    np.testing.assert_allclose(areas, v, rtol=1e-10)
    np.testing.assert_allclose(HEIGHT[:N_LAYERS], _f(X[:N_LAYERS]), rtol=1e-15)
    # |U| < ratio[i] must imply |U| X[i] < X[i+1]: the ratios are rounded down, by one ulp at most
    assert np.all(RATIO * X[:N_LAYERS] <= X[1:]) and RATIO[-1] == 0.0
    np.testing.assert_allclose(RATIO[:-1], X[1:N_LAYERS] / X[: N_LAYERS - 1], rtol=4e-16)
    # the construction reproduces the published r of Marsaglia & Tsang (2000), 128 layers, to its 12 decimals
    # (their own round-off), and numpy's 256-layer r
    assert rng_normals._ziggurat_tables(128)[0] == pytest.approx(3.442619855899, abs=5e-12)
    assert rng_normals._ziggurat_tables(256)[0] == pytest.approx(3.6541528853610088, rel=1e-15)


def test_shipped_ziggurat_tables_are_the_construction_correctly_rounded():
    """The shipped tables (data, read at import) are _ziggurat_tables' widths, to the few ulp that libm's log
    and sqrt may round differently (the shipped bits are the spec), with heights exp(-X²/2) correctly rounded
    (Decimal's exp at 60 digits, then one rounding to double)."""
    from decimal import Decimal, localcontext

    r, x, _, _ = rng_normals._ziggurat_tables()
    assert R == pytest.approx(r, rel=4e-16)
    np.testing.assert_allclose(X, x, rtol=1e-14, atol=0)  # 1024 layers of log/sqrt: a few ulp each at most
    with localcontext() as ctx:
        ctx.prec = 60
        exact = [float((-(Decimal(v) * Decimal(v)) / 2).exp()) for v in X[:N_LAYERS]]
    assert HEIGHT[:N_LAYERS].tolist() == exact


# SHA-256 of the first 10⁶ normals of stream (seed 2024, trajectory 0, the stepping stream) as little-endian
# float64. Every committed result hangs on these bits: a change of CPU, compiler, numpy or numba that moved
# one of them fails here first, on any machine CI runs on.
NORMALS_SHA256 = "32d5f82c9fc3f747e139301192b516224f14d98d86016817131f8ce945ef002b"


def test_the_generator_bits_are_pinned():
    import hashlib

    z = rng_normals.standard_normals(2024, 0, 1_000_000)
    assert hashlib.sha256(z.astype("<f8").tobytes()).hexdigest() == NORMALS_SHA256


@pytest.fixture(scope="module")
def many_normals():
    return rng_normals.standard_normals(2024, 0, 10_000_000)


def test_normals_moments_and_distribution(many_normals):
    z = many_normals
    n = z.size
    # Standard errors of the sample mean, variance and fourth moment of N(0, 1): sqrt(1/n), sqrt(2/n),
    # sqrt((105 - 9)/n). |z| < 5 fails with probability ~6e-7 each.
    assert abs(z.mean()) / np.sqrt(1 / n) < 5
    assert abs(z.var() - 1) / np.sqrt(2 / n) < 5
    assert abs(np.mean(z**4) - 3) / np.sqrt(96 / n) < 5
    # Under H0 the KS p-value is uniform: p < FAIL_PROBABILITY happens with that probability.
    assert scipy.stats.kstest(z, "norm").pvalue > FAIL_PROBABILITY


def test_tail_mass_beyond_the_base_strip(many_normals):
    """Draws beyond r = 4.04 all come from the tail sampler: their count is Binomial(n, 2 Phi(-r)) (~540 of 1e7)."""
    n = many_normals.size
    p = scipy.special.erfc(R / math.sqrt(2))
    count = np.count_nonzero(np.abs(many_normals) > R)
    assert abs(count - n * p) / math.sqrt(n * p * (1 - p)) < scipy.stats.norm.isf(FAIL_PROBABILITY / 2)


def test_mass_of_every_layer_strip(many_normals):
    """Chi-square of |z| counted in the strips [X[i+1], X[i]) (each layer's wedge spans its strip) and the tail:
    1023 degrees of freedom, ~1e4 counts per strip; a wedge accepting too much or too little shows here."""
    edges = np.concatenate([X[:0:-1], [np.inf]])  # 0 = X[N] < X[N-1] < ... < X[1] = r < inf
    counts = np.histogram(np.abs(many_normals), bins=edges)[0]
    p = np.diff(scipy.special.erf(edges / math.sqrt(2)))
    assert scipy.stats.chisquare(counts, p * many_normals.size / p.sum()).pvalue > FAIL_PROBABILITY


def test_tail_sampler_is_the_conditional_normal_tail():
    """Forced base-strip rejections: every result lies beyond r with the candidate's bit-10 sign, and |z| follows
    P(|Z| <= x | |Z| > r) = 1 - erfc(x/sqrt 2) / erfc(r/sqrt 2) (KS, Bonferroni over the 2 checks)."""
    words = _forced_words(np.random.default_rng(6), 0, 20_000)
    z = _slow_path(words)
    assert np.all(np.abs(z) > R)
    assert np.array_equal(np.signbit(z), (words >> np.uint64(10)) & np.uint64(1) == 1)
    cdf = lambda x: 1 - scipy.special.erfc(x / math.sqrt(2)) / scipy.special.erfc(R / math.sqrt(2))  # noqa: E731
    assert scipy.stats.kstest(np.abs(z), cdf).pvalue > FAIL_PROBABILITY / 2
    assert scipy.stats.kstest(np.abs(z[::2]), cdf).pvalue > FAIL_PROBABILITY / 2  # half the draws (no pairing)


@pytest.mark.parametrize("layer", [1, 2, 300, N_LAYERS - 2, N_LAYERS - 1])
def test_wedge_accepts_exactly_the_area_under_the_curve(layer):
    """Forced wedge candidates of one layer: x = |z| is uniform on [a, b] = [X[i+1], X[i]] and y uniform on
    [f(b), f(a)]; the candidate is kept with probability p = (mass of f over [a, b] - f(b)(b - a)) / area,
    kept values have density proportional to f(x) - f(b), and the others are fresh N(0, 1) draws.
    Binomial z-test and two KS tests, Bonferroni over 3 checks x 5 layers."""
    n = 100_000
    words = _forced_words(np.random.default_rng(layer), layer, n)
    candidate = _candidate_u(words) * X[layer]
    z = _slow_path(words)
    kept = z == candidate
    a, b = X[layer + 1], X[layer]
    under = _mass(a, b) - _f(b) * (b - a)
    p = under / ((b - a) * (_f(a) - _f(b)))
    alpha = FAIL_PROBABILITY / 15
    assert abs(kept.mean() - p) / math.sqrt(p * (1 - p) / n) < scipy.stats.norm.isf(alpha / 2)

    def wedge_cdf(x):
        x = np.clip(x, a, b)
        return (_mass(a, x) - _f(b) * (x - a)) / under

    assert scipy.stats.kstest(np.abs(z[kept]), wedge_cdf).pvalue > alpha
    assert scipy.stats.kstest(z[~kept], "norm").pvalue > alpha


def test_streams_uncorrelated():
    # A sample correlation of independent streams is ~N(0, 1/n): |r| sqrt(n) < 5 fails w.p. ~6e-7 each.
    n = 200_000
    z0, z1 = rng_normals.standard_normals(7, 0, n), rng_normals.standard_normals(7, 1, n)
    other_seed = rng_normals.standard_normals(8, 0, n)
    init = rng_normals.sample_gaussian(np.eye(6), 7, 0, n // 6, 1).ravel()
    pairs = [
        (z0, z1),  # adjacent trajectories
        (z0, other_seed),  # adjacent seeds
        (z0[:-1], z0[1:]),  # lag 1 inside a stream
        (z0[0::6], z0[1::6]),  # components 0 and 1 of one xi_n
        (z0[:-6], z0[6:]),  # one component at consecutive steps
        (z0**2, z1**2),  # squares (the ziggurat layer) of adjacent trajectories
        (init, z0[: init.size]),  # initial-state stream against the stepping stream of the same trajectory
    ]
    for a, b in pairs:
        assert abs(np.corrcoef(a, b)[0, 1]) * np.sqrt(a.size) < 5


# --- reproducibility and bookkeeping -------------------------------------------------------------------


def test_same_seed_is_bitwise_identical_and_other_seed_differs():
    _assert_runs_identical(_small_run(), _small_run())
    assert not np.array_equal(_small_run()[0], _small_run(seed=12)[0])


def test_thread_count_does_not_change_results():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _small_run()
        numba.set_num_threads(2)
        two = _small_run()
    finally:
        numba.set_num_threads(previous)
    _assert_runs_identical(one, two)


def test_chunked_calls_equal_one_call():
    whole = _small_run()
    head, tail = _small_run(n_traj=37), _small_run(first=37, n_traj=63)
    for k in (0, 1, 3):  # sum_u, sum_uu, snapshots
        assert np.array_equal(whole[k], np.concatenate([head[k], tail[k]]))
    assert whole[2] == head[2] == tail[2] == 400
    _assert_runs_identical(whole[4:], head[4:])  # traces of the first 5 trajectories


def test_lane_of_a_trajectory_does_not_matter():
    """Trajectories are stepped in vectorized blocks of kernels._LANES: one trajectory alone (a padded block),
    or shifted to another lane, gives the same numbers as inside the whole run."""
    whole = _small_run()
    for first in (3, 53):
        alone = _small_run(first=first, n_traj=1)
        for k in (0, 1, 3):
            assert np.array_equal(alone[k][0], whole[k][first])
    shifted = _small_run(first=3, n_traj=20)
    assert np.array_equal(shifted[4][:2], whole[4][3:5])  # traces of trajectories 3, 4 from lanes 0, 1
    assert np.array_equal(shifted[5][:2], whole[5][3:5])


@pytest.mark.parametrize("zero_column", [False, True])
def test_outputs_follow_the_recursion_and_the_stream(zero_column):
    """With zero_column, L[:, 4] = 0 (an Euler-Maruyama L with a noiseless quadrature): the stepper skips xi[4],
    and the recursion still holds with the stream's normals."""
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    if zero_column:
        L[:, 4] = 0.0
    seed, first, n_steps, burn_in = 3, 5, 3000, 700  # > 1024 summed states: crosses a partial-sum flush
    initial = rng_normals.sample_gaussian(np.eye(6), seed, first, 2, 1)
    snaps = np.array([0, 1, 1500, 3000], dtype=np.int64)
    sum_u, sum_uu, n_avg, snapshots, traces, noises = kernels.run_ensemble(
        F, L, initial, seed, first, n_steps, burn_in, snaps, 1, 1
    )
    path, noise = traces[0], noises[0]
    xi = rng_normals.standard_normals(seed, first, 6 * n_steps).reshape(n_steps, 6)
    assert n_avg == n_steps - burn_in and path.shape == (n_steps + 1, 6)
    assert np.array_equal(path[0], initial[0]) and np.array_equal(noise[0], np.zeros(6))
    assert np.array_equal(snapshots[0], path[snaps])
    np.testing.assert_allclose(noise[1:], xi @ L.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(path[1:], path[:-1] @ F.T + noise[1:], rtol=1e-12, atol=1e-13)
    kept = path[burn_in + 1 :]
    np.testing.assert_allclose(sum_u[0], kept.sum(axis=0), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(sum_uu[0], kept.T @ kept, rtol=1e-11, atol=1e-11)

    n_batches = 7
    bsum_u, bsum_uu, batch_len = kernels.run_batch_means(F, L, initial, seed, first, n_steps, burn_in, 7)
    assert batch_len == (n_steps - burn_in) // n_batches
    batches = kept[: n_batches * batch_len].reshape(n_batches, batch_len, 6)
    np.testing.assert_allclose(bsum_u[0], batches.sum(axis=1), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(bsum_uu[0], np.einsum("bni,bnj->bij", batches, batches), rtol=1e-11, atol=1e-11)


# --- statistics ----------------------------------------------------------------------------------------


def test_euler_maruyama_stationary_covariance_matches_discrete_lyapunov():
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    V_dt = scipy.linalg.solve_discrete_lyapunov(F, L @ L.T)
    # 256 trajectories of 20000 steps (T = 1000, 200 decay times of the slowest mode), started stationary.
    z, threshold = _stationary_run(F, L, V_dt, 101, 256, 20_000)
    assert np.abs(z).max() < threshold
    # Power: twice the noise covariance doubles V; the same test must reject it.
    z_wrong, _ = _stationary_run(F, L * np.sqrt(2), V_dt, 101, 256, 20_000)
    assert np.abs(z_wrong).max() > threshold
    # Resolution: the O(dt) bias of EM (V_dt differs from the continuous V by up to 5 %) is detected.
    z_continuous, _ = _stationary_run(F, L, scipy.linalg.solve_continuous_lyapunov(A, -D), 101, 256, 20_000)
    assert np.abs(z_continuous).max() > threshold


def test_exact_recursion_reproduces_continuous_lyapunov_at_large_dt():
    A, D = _system()
    dt = 0.5
    assert np.abs(np.linalg.eigvals(np.eye(6) + A * dt)).max() > 1  # Euler-Maruyama would diverge here
    Phi, L = _exact(A, D, dt)
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    z, threshold = _stationary_run(Phi, L, V, 202, 256, 4_000)
    assert np.abs(z).max() < threshold


def test_snapshots_follow_the_discrete_moment_recursion():
    A, D = _system()
    F, L = _euler_maruyama(A, D, 0.05)
    V0 = np.diag([0.5, 0.5, 0.5, 0.5, 3.5, 3.5])  # vacuum optics, thermal mechanics
    steps = np.array([0, 20, 100], dtype=np.int64)
    n_traj = 20_000
    initial = rng_normals.sample_gaussian(np.linalg.cholesky(V0), 303, 0, n_traj, 1)
    snapshots = kernels.run_ensemble(F, L, initial, 303, 0, 100, 100, steps, 0, 1)[3]
    assert np.array_equal(snapshots[:, 0], initial)
    Vn, V_of_step = V0, {}
    for n in range(101):
        V_of_step[n] = Vn
        Vn = F @ Vn @ F.T + L @ L.T
    # For zero-mean Gaussian u, Var(u_i u_j) = V_ii V_jj + V_ij^2 (Isserlis): the exact standard error of
    # the ensemble mean of u_i u_j. Bonferroni over 21 entries x 3 snapshots.
    threshold = scipy.stats.norm.isf(FAIL_PROBABILITY / (2 * 21 * len(steps)))
    for k, n in enumerate(steps):
        V = V_of_step[n]
        est = np.einsum("ti,tj->ij", snapshots[:, k], snapshots[:, k]) / n_traj
        se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V**2) / n_traj)
        assert np.abs((est - V) / se)[IU].max() < threshold


def _em_endpoints(normals, A, B, T, n_fine, ratio):
    """u(T) of Euler-Maruyama with dt = ratio T / n_fine, one path per row of ``normals`` (fine xi's).

    Coarse increments are sums of ``ratio`` fine ones, dW = B sqrt(dt_fine) xi: all dt share the path.
    """
    n_paths = normals.shape[0]
    dt_fine = T / n_fine
    dW = normals.reshape(n_paths, n_fine // ratio, ratio, 6).sum(axis=2) @ B.T * np.sqrt(dt_fine)
    u = np.ones((n_paths, 6))
    for increment in dW.transpose(1, 0, 2):
        u = u + u @ A.T * (ratio * dt_fine) + increment
    return u


def test_euler_maruyama_strong_order_one():
    """EM driven by the kernel's stepping streams (standard_normals; the recursion test shows the kernel's
    increments are L times exactly these), in numpy, because the strong order needs one Brownian path at
    several dt. Reference: EM at dt_fine = T / 2048; coarse dt >= 16 dt_fine, so the reference's own
    O(dt_fine) error moves the fitted slope by a few hundredths at most.
    Band 0.8-1.2: additive noise makes EM a Milstein scheme, strong order 1; with 256 paths each mean error
    carries ~5 % noise (spread of |e| / sqrt(256)), ~0.03 in a slope fitted over a factor 16 in dt.
    Order 0.5, or 0 for the unrelated path below, falls outside.
    """
    A, D = _system()
    B = np.linalg.cholesky(D)
    T, n_fine, n_paths = 1.0, 2048, 256
    ratios = [16, 32, 64, 128, 256]  # dt = T/128 .. T/8
    log_dt = np.log(np.array(ratios) * T / n_fine)
    normals = np.array([rng_normals.standard_normals(404, k, 6 * n_fine) for k in range(n_paths)])
    reference = _em_endpoints(normals, A, B, T, n_fine, 1)

    def slope(paths):
        errors = [np.linalg.norm(_em_endpoints(paths, A, B, T, n_fine, r) - reference, axis=1).mean() for r in ratios]
        return np.polyfit(log_dt, np.log(errors), 1)[0]

    assert 0.8 < slope(normals) < 1.2
    # Power: coarse runs on another Brownian path do not converge to the reference at all.
    other = np.array([rng_normals.standard_normals(405, k, 6 * n_fine) for k in range(n_paths)])
    assert not 0.8 < slope(other) < 1.2
