"""Numba kernels: a counter-based RNG and the ensemble stepper of the linear SDE du = A u dt + dW.

Plain array functions that check nothing; the Python layer validates shapes, dtypes and finiteness.
Quadrature order of every 6-vector: u = (xU, yU, xV, yV, q, p).

Random numbers
    A stream is fixed by (seed, trajectory, stream_tag) alone: no dependence on threads, on chunking, or on
    the block of trajectories that the stepper processes together. seed: int64 or uint64, taken mod 2**64.
    Limits: 0 <= stream_tag < 128 (tag 0 is the stepping stream, initial states use 1); normal index
    m < 2**40 (n_steps < 1.8e11).

    Philox4x32-10 (Salmon et al., SC'11; the generator of Random123 and numpy.random.Philox) keys all of it:
        key     = (seed & 0xffffffff, seed >> 32)
        counter = (trajectory & 0xffffffff, trajectory >> 32,      global trajectory index
                   block & 0xffffffff, (block >> 32) | tag << 24)  block < 2**56, tag < 256
    and a block's four uint32 (w0, w1, w2, w3) are read as two uint64 words w0 | w1 << 32, w2 | w3 << 32.
    1. Sequential state: xoshiro256++ (Blackman & Vigna 2021), s = (s0, s1, s2, s3) = the words of blocks
       0 and 1 with tag = stream_tag. An all-zero s (probability 2**-256) is replaced by s0 = 0x9E3779B97F4A7C15.
    2. Normal m (m = 0, 1, ...) of the stream: x_m, output m of that xoshiro256++ sequence, is the first
       candidate of a ziggurat of ZIGGURAT_LAYERS = 1024 equal-area layers under f(x) = exp(-x^2/2)
       (Marsaglia & Tsang 2000, 64-bit candidates as in Doornik 2005; layer widths X[0] > X[1] = r > ... >
       X[1024] = 0, see _ziggurat_tables): layer i = x_m & 1023, U = (2 + (x_m >> 12) 2**-51) - 3 in
       [-1, 1), candidate z = U X[i]; accepted at once if |U| < X[i+1] / X[i] (99.57 % of candidates).
    3. Otherwise normal m continues with the words of its own fix-up blocks (m << 16) + j, j = 0, 1, ...,
       tag = stream_tag | 128, read in order: layer 0 goes to Marsaglia's (1964) tail beyond
       r = ZIGGURAT_R = 4.0388...: two words -> uniforms u1, u2 in (0, 1], a = -log(u1) / r, b = -log(u2),
       until 2 b > a^2; z = +-(r + a) with the sign from bit 10 of the candidate. Layer i >= 1 goes to its
       wedge: one word -> y = f(X[i]) + u (f(X[i+1]) - f(X[i])), u in [0, 1); z is accepted if
       y < exp(-z^2 / 2), else the next word is a fresh candidate (step 2). Uniforms are
       uniform53(w) = (w >> 11) 2**-53 in [0, 1), plus 2**-53 where a logarithm is taken.
    So normal m depends only on x_m and its own fix-up blocks: normals can be computed in any order,
    vectorized across trajectories, or skipped (the xoshiro sequence still advances one output per normal).

Ensemble stepper (both integrators of docs/physics.md "The stochastic picture")
    u_{n+1} = F u_n + L xi_n,  xi_n ~ N(0, I_6) = normals 6n .. 6n+5 of the stepping stream.
    Euler-Maruyama: F = I + A dt, L L^T = D dt.  Exact: F = expm(A dt), L L^T = Q_dt (Van Loan).
    A component xi_n[c] whose column L[:, c] is entirely zero cannot enter u; the stepper skips it (uses 0).
    Trajectories are stepped in blocks of _LANES = 16 (a partial block is padded with lanes that are
    computed and discarded): the xoshiro steps, F u + L xi and the sums are SIMD loops across the block,
    the ziggurat's table lookups a scalar loop (AVX2 gathers do not pay), fix-ups a rare scalar pass.
    Each lane's numbers come from its own stream only, and only IEEE adds and multiplies (no FMA
    contraction) touch u, so results are bitwise independent of the lane, the block and the thread.

    run_ensemble(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps,
                 snapshot_steps, trace_count, trace_every)
        F, L           (6, 6) float64
        initial        (n_traj, 6) float64; local trajectory i has global index first_trajectory + i
        snapshot_steps (n_snap,) int64, sorted, values in [0, n_steps] (step 0 = initial state)
        trace_count    record full paths of local trajectories i < trace_count, at steps
                       0, trace_every, 2 trace_every, ... <= n_steps (n_trace = n_steps // trace_every + 1)
      -> sum_u     (n_traj, 6)       sum of u_n over n = burn_in_steps + 1 .. n_steps
         sum_uu    (n_traj, 6, 6)    sum of u_n u_n^T over the same n (symmetric)
         n_avg     int               number of summed states, max(n_steps - burn_in_steps, 0)
         snapshots (n_traj, n_snap, 6)
         traces    (trace_count, n_trace, 6)   u_n at the trace steps
         noises    (trace_count, n_trace, 6)   L xi_{n-1}, the increment that entered u_n; zero at n = 0
    Chunking is exact: trajectories [0, 100) in one call equal [0, 37) and [37, 100) in two, bitwise.
    Memory is independent of n_steps except for the requested snapshots and traces.

    run_batch_means(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, n_batches)
      -> batch_sum_u (n_traj, n_batches, 6), batch_sum_uu (n_traj, n_batches, 6, 6), batch_len:
         the states n = burn_in_steps + 1 .. burn_in_steps + n_batches * batch_len split into n_batches
         consecutive batches of batch_len = (n_steps - burn_in_steps) // n_batches states; the remainder
         at the end is stepped but not summed.

    fill_normals(seed, trajectory, first, stream_tag, out): normals first .. first + len(out) - 1 of a
    stream into out (reaching ``first`` costs one xoshiro step per skipped normal); returns first + len(out).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)
_TWO_M53 = 2.0**-53
_FLUSH = 1024  # partial sums are added to the totals every _FLUSH states (limits rounding growth)
_LANES = 16  # trajectories per vectorized block
STEP_STREAM = 0
INITIAL_STREAM = 1

_U1 = np.uint64(1)
_U11 = np.uint64(11)
_U12 = np.uint64(12)
_U16 = np.uint64(16)
_U17 = np.uint64(17)
_U23 = np.uint64(23)
_U24 = np.uint64(24)
_U41 = np.uint64(41)
_U45 = np.uint64(45)
_U19 = np.uint64(19)
_FIX_TAG = np.uint64(128)
_ZERO_STATE_FIX = np.uint64(0x9E3779B97F4A7C15)
_TWO_BITS = np.uint64(0x4000000000000000)  # the bits of 2.0: (k >> 12) | _TWO_BITS is 2 + k 2**-51
ZIGGURAT_LAYERS = 1024
_LAYER = np.uint64(ZIGGURAT_LAYERS - 1)
_U10 = np.uint64(10)


def _ziggurat_tables(n_layers=ZIGGURAT_LAYERS):
    """Ziggurat of n_layers equal-area layers under f(x) = exp(-x^2/2) (Marsaglia & Tsang 2000).

    X[0] = v / f(r) (the base strip: rectangle [0, r] x [0, f(r)] plus the tail, area v), X[1] = r,
    X[i + 1] = f^-1(f(X[i]) + v / X[i]), X[n] = 0; r solves X[n] = 0 (the top layer has area v exactly).
    Returns (r, widths X (n + 1,), ratios X[i+1]/X[i] rounded down (n,), heights f(X) (n + 1,), f(X[n]) = 1).
    """

    def f(x):
        return math.exp(-0.5 * x * x)

    def layers(r):
        v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
        x = [v / f(r), r]
        for i in range(1, n_layers - 1):
            y = f(x[i]) + v / x[i]
            if y >= 1.0:
                return None, 1.0
            x.append(math.sqrt(-2.0 * math.log(y)))
        return x, f(x[-1]) + v / x[-1] - 1.0  # top layer: area v iff this residual vanishes

    lo, hi = 3.0, 4.5  # residual > 0 (layers overshoot the peak) at lo, < 0 at hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if layers(mid)[1] > 0:
            lo = mid
        else:
            hi = mid
    r = hi
    x = np.array(layers(r)[0] + [0.0])
    ratio = np.nextafter(x[1:] / x[:-1], 0.0)  # |U| < ratio[i] implies |U| X[i] < X[i+1]
    ratio[-1] = 0.0  # the top layer always goes to its wedge
    heights = np.exp(-0.5 * x * x)
    heights[-1] = 1.0
    return r, x, ratio, heights


ZIGGURAT_R, _ZIG_X, _ZIG_RATIO, _ZIG_F = _ziggurat_tables()
_ZIG_INV_R = 1.0 / ZIGGURAT_R


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret the 64 bits of a uint64 as a float64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@njit(cache=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 block function of Salmon et al. (2011): 4 counter words, 2 key words -> 4 uint32.

    Words are held in uint64 and masked to 32 bits; returns a tuple of four uint64 < 2**32.
    """
    x0 = np.uint64(c0) & _MASK32
    x1 = np.uint64(c1) & _MASK32
    x2 = np.uint64(c2) & _MASK32
    x3 = np.uint64(c3) & _MASK32
    y0 = np.uint64(k0) & _MASK32
    y1 = np.uint64(k1) & _MASK32
    for _ in range(10):
        p0 = _PHILOX_M0 * x0
        p1 = _PHILOX_M1 * x2
        x0, x1, x2, x3 = (
            (p1 >> _SHIFT32) ^ x1 ^ y0,
            p1 & _MASK32,
            (p0 >> _SHIFT32) ^ x3 ^ y1,
            p0 & _MASK32,
        )
        y0 = (y0 + _PHILOX_W0) & _MASK32
        y1 = (y1 + _PHILOX_W1) & _MASK32
    return x0, x1, x2, x3


@njit(cache=True)
def uniform53(word):
    """Uniform in [0, 1) from the top 53 bits of a uint64 word: (word >> 11) 2**-53."""
    return float(np.uint64(word) >> _U11) * _TWO_M53


@njit(cache=True)
def _philox_words(k0, k1, t0, t1, tag_word, block):
    """Block ``block`` of Philox for key (k0, k1), trajectory words (t0, t1), tag: two uint64 words."""
    w0, w1, w2, w3 = philox4x32(t0, t1, block & _MASK32, (block >> _SHIFT32) | (tag_word << _U24), k0, k1)
    return w0 | (w1 << _SHIFT32), w2 | (w3 << _SHIFT32)


@njit(cache=True)
def xoshiro_seed(seed, trajectory, stream_tag):
    """The xoshiro256++ state (s0, s1, s2, s3) of stream (seed, trajectory, stream_tag): Philox blocks 0, 1."""
    s = np.uint64(seed)
    t = np.uint64(trajectory)
    k0, k1, t0, t1 = s & _MASK32, s >> _SHIFT32, t & _MASK32, t >> _SHIFT32
    tag_word = np.uint64(stream_tag)
    s0, s1 = _philox_words(k0, k1, t0, t1, tag_word, np.uint64(0))
    s2, s3 = _philox_words(k0, k1, t0, t1, tag_word, np.uint64(1))
    if (s0 | s1 | s2 | s3) == np.uint64(0):
        s0 = _ZERO_STATE_FIX
    return s0, s1, s2, s3


@njit(cache=True)
def xoshiro_next(s0, s1, s2, s3):
    """One step of xoshiro256++: returns (output, s0, s1, s2, s3), all uint64."""
    s0, s1, s2, s3 = np.uint64(s0), np.uint64(s1), np.uint64(s2), np.uint64(s3)
    a = s0 + s3
    out = ((a << _U23) | (a >> _U41)) + s0
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _U45) | (s3 >> _U19)
    return out, s0, s1, s2, s3


@njit(cache=True)
def _zig_fast(word):
    """First ziggurat candidate of a uint64 word: (z, accepted)."""
    i = word & _LAYER
    uni = _bits_to_float((word >> _U12) | _TWO_BITS) - 3.0
    return uni * _ZIG_X[i], abs(uni) < _ZIG_RATIO[i]


@njit(cache=True)
def _fix_word(k0, k1, t0, t1, fix_tag, base, j, spare):
    """Fix-up word j of a normal: (word, spare); an even j computes Philox block base + j // 2, whose
    second word is the spare that the odd j after it returns."""
    if j % 2 == 0:
        return _philox_words(k0, k1, t0, t1, fix_tag, base + np.uint64(j // 2))
    return spare, spare


@njit(cache=True)
def _zig_slow(word, k0, k1, t0, t1, tag_word, m):
    """Normal m of a stream whose first ziggurat candidate is ``word``: the fast path, then wedge, tail
    and fresh candidates from the fix-up words of normal m (module docstring, step 3)."""
    base = np.uint64(m) << _U16
    fix_tag = tag_word | _FIX_TAG
    j = 0  # fix-up words used
    spare = np.uint64(0)
    while True:
        i = word & _LAYER
        uni = _bits_to_float((word >> _U12) | _TWO_BITS) - 3.0
        z = uni * _ZIG_X[i]
        if abs(uni) < _ZIG_RATIO[i]:
            return z
        if i == 0:  # base strip beyond r: the tail, by Marsaglia (1964)
            while True:
                w1, spare = _fix_word(k0, k1, t0, t1, fix_tag, base, j, spare)
                w2, spare = _fix_word(k0, k1, t0, t1, fix_tag, base, j + 1, spare)
                j += 2
                a = -math.log(uniform53(w1) + _TWO_M53) * _ZIG_INV_R
                b = -math.log(uniform53(w2) + _TWO_M53)
                if b + b > a * a:
                    return -(ZIGGURAT_R + a) if (word >> _U10) & _U1 else ZIGGURAT_R + a
        # wedge of layer i: y uniform between the heights f(X[i]) and f(X[i+1])
        w, spare = _fix_word(k0, k1, t0, t1, fix_tag, base, j, spare)
        j += 1
        y = _ZIG_F[i] + uniform53(w) * (_ZIG_F[i + 1] - _ZIG_F[i])
        if y < math.exp(-0.5 * z * z):
            return z
        word, spare = _fix_word(k0, k1, t0, t1, fix_tag, base, j, spare)
        j += 1


@njit(cache=True)
def fill_normals(seed, trajectory, first, stream_tag, out):
    """Fill ``out`` with normals first .. first + len(out) - 1 of stream (seed, trajectory, stream_tag).

    Returns first + len(out). See the module docstring for the construction.
    """
    s0, s1, s2, s3 = xoshiro_seed(seed, trajectory, stream_tag)
    for _ in range(first):
        _, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
    s = np.uint64(seed)
    t = np.uint64(trajectory)
    tag_word = np.uint64(stream_tag)
    for i in range(out.shape[0]):
        word, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
        z, ok = _zig_fast(word)
        if not ok:
            z = _zig_slow(word, s & _MASK32, s >> _SHIFT32, t & _MASK32, t >> _SHIFT32, tag_word, first + i)
        out[i] = z
    return first + out.shape[0]


@njit(cache=True)
def standard_normals(seed, trajectory, n):
    """The first n normals of the stepping stream of one trajectory (xi_k[j] is item 6 k + j)."""
    out = np.empty(n)
    fill_normals(seed, trajectory, 0, STEP_STREAM, out)
    return out


@njit(cache=True, parallel=True)
def sample_gaussian(chol, seed, first_trajectory, n_traj, stream_tag=INITIAL_STREAM):
    """Initial states u0 = chol @ z, z ~ N(0, I_6) = normals 0..5 of stream (seed, first_trajectory + i,
    stream_tag). Use stream_tag >= 1 so the draws never overlap the stepping stream (tag 0). Returns (n_traj, 6).
    """
    out = np.empty((n_traj, 6))
    for i in prange(n_traj):
        z = np.empty(6)
        fill_normals(seed, first_trajectory + i, 0, stream_tag, z)
        for r in range(6):
            acc = 0.0
            for c in range(6):
                acc += chol[r, c] * z[c]
            out[i, r] = acc
    return out


@njit(cache=True)
def _block(
    F,
    L,
    initial,
    seed,
    first_trajectory,
    i0,
    n_steps,
    burn_in_steps,
    batch_len,
    snapshot_steps,
    snapshots,
    trace_count,
    trace_every,
    traces,
    noises,
    sum_u,
    sum_uu,
):
    """Local trajectories i0 .. i0 + _LANES - 1 (those < n_traj are kept) of u_{n+1} = F u_n + L xi_n,
    vectorized across the lanes: snapshots, traces and batch sums (sum_u (n_traj, n_batch, 6), sum_uu
    (n_traj, n_batch, 6, 6); batch b sums states burn_in + b batch_len + 1 .. burn_in + (b + 1) batch_len)
    written in place."""
    B = _LANES
    n_traj = initial.shape[0]
    n_valid = min(B, n_traj - i0)
    n_batch = sum_u.shape[1]
    n_summed = n_batch * batch_len
    n_snap = snapshot_steps.shape[0]
    n_traced = max(min(n_valid, trace_count - i0), 0)

    f00, f01, f02, f03, f04, f05 = F[0, 0], F[0, 1], F[0, 2], F[0, 3], F[0, 4], F[0, 5]
    f10, f11, f12, f13, f14, f15 = F[1, 0], F[1, 1], F[1, 2], F[1, 3], F[1, 4], F[1, 5]
    f20, f21, f22, f23, f24, f25 = F[2, 0], F[2, 1], F[2, 2], F[2, 3], F[2, 4], F[2, 5]
    f30, f31, f32, f33, f34, f35 = F[3, 0], F[3, 1], F[3, 2], F[3, 3], F[3, 4], F[3, 5]
    f40, f41, f42, f43, f44, f45 = F[4, 0], F[4, 1], F[4, 2], F[4, 3], F[4, 4], F[4, 5]
    f50, f51, f52, f53, f54, f55 = F[5, 0], F[5, 1], F[5, 2], F[5, 3], F[5, 4], F[5, 5]
    l00, l01, l02, l03, l04, l05 = L[0, 0], L[0, 1], L[0, 2], L[0, 3], L[0, 4], L[0, 5]
    l10, l11, l12, l13, l14, l15 = L[1, 0], L[1, 1], L[1, 2], L[1, 3], L[1, 4], L[1, 5]
    l20, l21, l22, l23, l24, l25 = L[2, 0], L[2, 1], L[2, 2], L[2, 3], L[2, 4], L[2, 5]
    l30, l31, l32, l33, l34, l35 = L[3, 0], L[3, 1], L[3, 2], L[3, 3], L[3, 4], L[3, 5]
    l40, l41, l42, l43, l44, l45 = L[4, 0], L[4, 1], L[4, 2], L[4, 3], L[4, 4], L[4, 5]
    l50, l51, l52, l53, l54, l55 = L[5, 0], L[5, 1], L[5, 2], L[5, 3], L[5, 4], L[5, 5]
    used = 0  # bit c: column c of L has a nonzero entry (xi[c] enters u)
    for c in range(6):
        for r in range(6):
            if L[r, c] != 0.0:
                used |= 1 << c
                break

    U = np.zeros((6, B))
    W = np.zeros((6, B))
    XI = np.zeros((6, B))
    RAW = np.zeros((6, B), dtype=np.uint64)
    REJ = np.zeros(B, dtype=np.int64)
    S0 = np.empty(B, dtype=np.uint64)
    S1 = np.empty(B, dtype=np.uint64)
    S2 = np.empty(B, dtype=np.uint64)
    S3 = np.empty(B, dtype=np.uint64)
    PU = np.zeros((6, B))
    PUU = np.zeros((21, B))
    s = np.uint64(seed)
    k0, k1 = s & _MASK32, s >> _SHIFT32
    for j in range(B):
        S0[j], S1[j], S2[j], S3[j] = xoshiro_seed(seed, first_trajectory + i0 + j, STEP_STREAM)
        if j < n_valid:
            for r in range(6):
                U[r, j] = initial[i0 + j, r]

    js = 0
    while js < n_snap and snapshot_steps[js] == 0:
        for j in range(n_valid):
            for r in range(6):
                snapshots[i0 + j, js, r] = U[r, j]
        js += 1
    for j in range(n_traced):
        for r in range(6):
            traces[i0 + j, 0, r] = U[r, j]

    count = 0
    for n in range(1, n_steps + 1):
        # 1. words x_m of normals m = 6 (n - 1) .. 6 (n - 1) + 5 of all lanes (vectorized), then the
        #    ziggurat's first candidates (scalar table lookups) and the lanes' bit masks of rejections
        for j in range(B):
            a0, a1, a2, a3 = S0[j], S1[j], S2[j], S3[j]
            w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            RAW[0, j] = w
            w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            RAW[1, j] = w
            w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            RAW[2, j] = w
            w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            RAW[3, j] = w
            w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            RAW[4, j] = w
            w, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            RAW[5, j] = w
            S0[j], S1[j], S2[j], S3[j] = a0, a1, a2, a3
        for j in range(B):
            REJ[j] = 0
        for c in range(6):
            if (used >> c) & 1:
                for j in range(B):
                    z, ok = _zig_fast(RAW[c, j])
                    XI[c, j] = z
                    REJ[j] |= (1 - np.int64(ok)) << c
        any_rej = 0
        for j in range(B):
            any_rej |= REJ[j]
        # 2. rare scalar fix-ups (wedges, tail) of the components that enter u
        if any_rej:
            for j in range(n_valid):
                rej = REJ[j]
                if rej:
                    t = np.uint64(first_trajectory + i0 + j)
                    for c in range(6):
                        if (rej >> c) & 1:
                            XI[c, j] = _zig_slow(
                                RAW[c, j], k0, k1, t & _MASK32, t >> _SHIFT32, np.uint64(STEP_STREAM), 6 * (n - 1) + c
                            )
        # 3. u <- F u + L xi, and after the burn-in the sums of u and u u^T (upper triangle, row-major)
        m = n - burn_in_steps  # 1-based index of the summed state
        if 1 <= m <= n_summed:
            for j in range(B):
                u0, u1, u2, u3, u4, u5 = U[0, j], U[1, j], U[2, j], U[3, j], U[4, j], U[5, j]
                x0, x1, x2, x3, x4, x5 = XI[0, j], XI[1, j], XI[2, j], XI[3, j], XI[4, j], XI[5, j]
                w0 = l00 * x0 + l01 * x1 + l02 * x2 + l03 * x3 + l04 * x4 + l05 * x5
                w1 = l10 * x0 + l11 * x1 + l12 * x2 + l13 * x3 + l14 * x4 + l15 * x5
                w2 = l20 * x0 + l21 * x1 + l22 * x2 + l23 * x3 + l24 * x4 + l25 * x5
                w3 = l30 * x0 + l31 * x1 + l32 * x2 + l33 * x3 + l34 * x4 + l35 * x5
                w4 = l40 * x0 + l41 * x1 + l42 * x2 + l43 * x3 + l44 * x4 + l45 * x5
                w5 = l50 * x0 + l51 * x1 + l52 * x2 + l53 * x3 + l54 * x4 + l55 * x5
                v0 = f00 * u0 + f01 * u1 + f02 * u2 + f03 * u3 + f04 * u4 + f05 * u5 + w0
                v1 = f10 * u0 + f11 * u1 + f12 * u2 + f13 * u3 + f14 * u4 + f15 * u5 + w1
                v2 = f20 * u0 + f21 * u1 + f22 * u2 + f23 * u3 + f24 * u4 + f25 * u5 + w2
                v3 = f30 * u0 + f31 * u1 + f32 * u2 + f33 * u3 + f34 * u4 + f35 * u5 + w3
                v4 = f40 * u0 + f41 * u1 + f42 * u2 + f43 * u3 + f44 * u4 + f45 * u5 + w4
                v5 = f50 * u0 + f51 * u1 + f52 * u2 + f53 * u3 + f54 * u4 + f55 * u5 + w5
                U[0, j], U[1, j], U[2, j], U[3, j], U[4, j], U[5, j] = v0, v1, v2, v3, v4, v5
                W[0, j], W[1, j], W[2, j], W[3, j], W[4, j], W[5, j] = w0, w1, w2, w3, w4, w5
                PU[0, j] += v0
                PU[1, j] += v1
                PU[2, j] += v2
                PU[3, j] += v3
                PU[4, j] += v4
                PU[5, j] += v5
                PUU[0, j] += v0 * v0
                PUU[1, j] += v0 * v1
                PUU[2, j] += v0 * v2
                PUU[3, j] += v0 * v3
                PUU[4, j] += v0 * v4
                PUU[5, j] += v0 * v5
                PUU[6, j] += v1 * v1
                PUU[7, j] += v1 * v2
                PUU[8, j] += v1 * v3
                PUU[9, j] += v1 * v4
                PUU[10, j] += v1 * v5
                PUU[11, j] += v2 * v2
                PUU[12, j] += v2 * v3
                PUU[13, j] += v2 * v4
                PUU[14, j] += v2 * v5
                PUU[15, j] += v3 * v3
                PUU[16, j] += v3 * v4
                PUU[17, j] += v3 * v5
                PUU[18, j] += v4 * v4
                PUU[19, j] += v4 * v5
                PUU[20, j] += v5 * v5
        else:
            for j in range(B):
                u0, u1, u2, u3, u4, u5 = U[0, j], U[1, j], U[2, j], U[3, j], U[4, j], U[5, j]
                x0, x1, x2, x3, x4, x5 = XI[0, j], XI[1, j], XI[2, j], XI[3, j], XI[4, j], XI[5, j]
                w0 = l00 * x0 + l01 * x1 + l02 * x2 + l03 * x3 + l04 * x4 + l05 * x5
                w1 = l10 * x0 + l11 * x1 + l12 * x2 + l13 * x3 + l14 * x4 + l15 * x5
                w2 = l20 * x0 + l21 * x1 + l22 * x2 + l23 * x3 + l24 * x4 + l25 * x5
                w3 = l30 * x0 + l31 * x1 + l32 * x2 + l33 * x3 + l34 * x4 + l35 * x5
                w4 = l40 * x0 + l41 * x1 + l42 * x2 + l43 * x3 + l44 * x4 + l45 * x5
                w5 = l50 * x0 + l51 * x1 + l52 * x2 + l53 * x3 + l54 * x4 + l55 * x5
                U[0, j] = f00 * u0 + f01 * u1 + f02 * u2 + f03 * u3 + f04 * u4 + f05 * u5 + w0
                U[1, j] = f10 * u0 + f11 * u1 + f12 * u2 + f13 * u3 + f14 * u4 + f15 * u5 + w1
                U[2, j] = f20 * u0 + f21 * u1 + f22 * u2 + f23 * u3 + f24 * u4 + f25 * u5 + w2
                U[3, j] = f30 * u0 + f31 * u1 + f32 * u2 + f33 * u3 + f34 * u4 + f35 * u5 + w3
                U[4, j] = f40 * u0 + f41 * u1 + f42 * u2 + f43 * u3 + f44 * u4 + f45 * u5 + w4
                U[5, j] = f50 * u0 + f51 * u1 + f52 * u2 + f53 * u3 + f54 * u4 + f55 * u5 + w5
                W[0, j], W[1, j], W[2, j], W[3, j], W[4, j], W[5, j] = w0, w1, w2, w3, w4, w5
        # 4. snapshots and traces
        while js < n_snap and snapshot_steps[js] == n:
            for j in range(n_valid):
                for r in range(6):
                    snapshots[i0 + j, js, r] = U[r, j]
            js += 1
        if n_traced > 0 and n % trace_every == 0:
            k = n // trace_every
            for j in range(n_traced):
                for r in range(6):
                    traces[i0 + j, k, r] = U[r, j]
                    noises[i0 + j, k, r] = W[r, j]
        # 5. flush the partial sums
        if 1 <= m <= n_summed:
            count += 1
            if count == _FLUSH or m % batch_len == 0:
                b = (m - 1) // batch_len
                for j in range(n_valid):
                    i = i0 + j
                    q = 0
                    for r in range(6):
                        sum_u[i, b, r] += PU[r, j]
                        PU[r, j] = 0.0
                        for c in range(r, 6):
                            sum_uu[i, b, r, c] += PUU[q, j]
                            PUU[q, j] = 0.0
                            q += 1
                count = 0
    for j in range(n_valid):
        for b in range(n_batch):
            for r in range(6):
                for c in range(r + 1, 6):
                    sum_uu[i0 + j, b, c, r] = sum_uu[i0 + j, b, r, c]


@njit(cache=True, parallel=True)
def _run_blocks(
    F,
    L,
    initial,
    seed,
    first_trajectory,
    n_steps,
    burn_in_steps,
    batch_len,
    snapshot_steps,
    snapshots,
    trace_count,
    trace_every,
    traces,
    noises,
    sum_u,
    sum_uu,
):
    """All blocks of _LANES trajectories in parallel (prange over blocks); outputs written in place."""
    n_blocks = (initial.shape[0] + _LANES - 1) // _LANES
    for blk in prange(n_blocks):
        _block(
            F,
            L,
            initial,
            seed,
            first_trajectory,
            blk * _LANES,
            n_steps,
            burn_in_steps,
            batch_len,
            snapshot_steps,
            snapshots,
            trace_count,
            trace_every,
            traces,
            noises,
            sum_u,
            sum_uu,
        )


@njit(cache=True)
def run_ensemble(
    F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, snapshot_steps, trace_count, trace_every
):
    """Ensemble of the linear recursion u_{n+1} = F u_n + L xi_n; see the module docstring."""
    n_traj = initial.shape[0]
    n_avg = max(n_steps - burn_in_steps, 0)
    n_trace = n_steps // trace_every + 1 if trace_count > 0 else 0
    sum_u = np.zeros((n_traj, 1, 6))
    sum_uu = np.zeros((n_traj, 1, 6, 6))
    snapshots = np.zeros((n_traj, snapshot_steps.shape[0], 6))
    traces = np.zeros((trace_count, n_trace, 6))
    noises = np.zeros((trace_count, n_trace, 6))
    _run_blocks(
        F,
        L,
        initial,
        seed,
        first_trajectory,
        n_steps,
        burn_in_steps,
        max(n_avg, 1),
        snapshot_steps,
        snapshots,
        trace_count,
        trace_every,
        traces,
        noises,
        sum_u,
        sum_uu,
    )
    return (sum_u.reshape((n_traj, 6)), sum_uu.reshape((n_traj, 6, 6)), n_avg, snapshots, traces, noises)


@njit(cache=True)
def run_batch_means(F, L, initial, seed, first_trajectory, n_steps, burn_in_steps, n_batches):
    """Batch sums of u and u u^T along each trajectory (batch-means error bars for long runs);
    same recursion and streams as run_ensemble, see the module docstring."""
    n_traj = initial.shape[0]
    batch_len = max(n_steps - burn_in_steps, 0) // n_batches
    sum_u = np.zeros((n_traj, n_batches, 6))
    sum_uu = np.zeros((n_traj, n_batches, 6, 6))
    if batch_len > 0:
        no_rows = np.zeros((0, 0, 6))
        _run_blocks(
            F,
            L,
            initial,
            seed,
            first_trajectory,
            n_steps,
            burn_in_steps,
            batch_len,
            np.zeros(0, dtype=np.int64),
            np.zeros((n_traj, 0, 6)),
            np.int64(0),  # no traces (non-literal ints: share run_ensemble's compiled _run_blocks)
            np.int64(1),
            no_rows,
            no_rows,
            sum_u,
            sum_uu,
        )
    return sum_u, sum_uu, batch_len


@njit(cache=True)
def accumulate_outer_products(snapshots, first, n_total, n_groups, total, total_sq, group_sum, group_count):
    """Add the snapshots u(t) of trajectories first, first + 1, … to running sums of u uᵀ, of (u uᵀ)²
    (elementwise) and of u uᵀ per trajectory group (group of trajectory i: i·n_groups // n_total).

    Trajectory by trajectory in index order, so feeding blocks in order gives the same bits for any
    block size; memory is that of the sums, not of the ensemble.
    """
    n_t = snapshots.shape[1]
    for i in range(snapshots.shape[0]):
        g = ((first + i) * n_groups) // n_total
        group_count[g] += 1
        for t in range(n_t):
            for a in range(6):
                for b in range(6):
                    x = snapshots[i, t, a] * snapshots[i, t, b]
                    total[t, a, b] += x
                    total_sq[t, a, b] += x * x
                    group_sum[g, t, a, b] += x


@njit(cache=True, parallel=True)
def run_ensemble_varying(Fs, Ls, initial, seed, first_trajectory, snapshot_steps):
    """Ensemble of u_{n+1} = F_n u_n + L_n xi_n with one map per step (a drift A(t) that changes in time).

    Fs, Ls (n_steps, 6, 6); xi_n = normals 6n .. 6n+5 of the stepping stream of (seed, trajectory), the
    same numbers ``run_ensemble`` uses, so a constant map reproduces it up to rounding. Returns the
    snapshots (n_traj, n_snap, 6) at the sorted steps ``snapshot_steps`` (0 = initial state).
    """
    n_traj = initial.shape[0]
    n_steps = Fs.shape[0]
    n_snap = snapshot_steps.shape[0]
    out = np.zeros((n_traj, n_snap, 6))
    for i in prange(n_traj):
        xi = np.empty(6 * n_steps)
        fill_normals(seed, first_trajectory + i, 0, STEP_STREAM, xi)
        u = initial[i].copy()
        v = np.empty(6)
        j = 0
        while j < n_snap and snapshot_steps[j] == 0:
            out[i, j] = u
            j += 1
        for n in range(n_steps):
            for r in range(6):
                acc = 0.0
                for c in range(6):
                    acc += Fs[n, r, c] * u[c]
                w = 0.0
                for c in range(6):
                    w += Ls[n, r, c] * xi[6 * n + c]
                v[r] = acc + w
            for r in range(6):
                u[r] = v[r]
            while j < n_snap and snapshot_steps[j] == n + 1:
                out[i, j] = u
                j += 1
    return out


@njit(cache=True, parallel=True)
def run_truncated_wigner(rates, initial, reference, seed, first_trajectory, n_steps, dt, burn_in_steps):
    """Euler–Maruyama for the full nonlinear Langevin equations (Eq. (3), corrected in docs/physics.md) with
    the Gaussian noises of the linearized model (truncated Wigner), in units of ω_m.

    rates = (δ_U, δ_V, k, j, g0, e, g, thermal): Δ_j, κ, J, G₀, ε, γ_m over ω_m and thermal = 2n_m + 1.
    State per trajectory (Re α_U, Im α_U, Re α_V, Im α_V, q, p); the radiation-pressure force uses
    |α|² − 1/2 per mode (the Wigner function's symmetric ordering). The noise of step n is normals
    6n .. 6n+5 of the stepping stream, entering as the linear kernel's EM noise does (xU, yU, xV, yV, –, p),
    so the same seed drives the linearized and the nonlinear model alike. Returns the per-trajectory sums
    of u uᵀ over the states after the burn-in, u the fluctuation about ``reference`` in quadrature units.
    """
    n_traj = initial.shape[0]
    d_u, d_v, k, j, g0, e, g, thermal = rates[0], rates[1], rates[2], rates[3], rates[4], rates[5], rates[6], \
        rates[7]
    s_opt = math.sqrt(k * dt / 2.0)
    s_mech = math.sqrt(g * thermal * dt)
    sq2 = math.sqrt(2.0)
    sum_uu = np.zeros((n_traj, 6, 6))
    for i in prange(n_traj):
        xi = np.empty(6 * n_steps)
        fill_normals(seed, first_trajectory + i, 0, STEP_STREAM, xi)
        ur, ui, vr, vi, q, p = initial[i, 0], initial[i, 1], initial[i, 2], initial[i, 3], initial[i, 4], \
            initial[i, 5]
        u = np.empty(6)
        for n in range(n_steps):
            b = 6 * n
            # complex arithmetic written out: a' = −(iδ + k) a − i j a_other + i g0 q a (+ e for U)
            dur = k * -ur + d_u * ui + j * vi - g0 * q * ui + e
            dui = -d_u * ur - k * ui - j * vr + g0 * q * ur
            dvr = -k * vr + d_v * vi + j * ui - g0 * q * vi
            dvi = -d_v * vr - k * vi - j * ur + g0 * q * vr
            force = -q - g * p + g0 * (ur * ur + ui * ui + vr * vr + vi * vi - 1.0)
            ur, ui = ur + dt * dur + s_opt * xi[b], ui + dt * dui + s_opt * xi[b + 1]
            vr, vi = vr + dt * dvr + s_opt * xi[b + 2], vi + dt * dvi + s_opt * xi[b + 3]
            q, p = q + dt * p, p + dt * force + s_mech * xi[b + 5]
            if n + 1 > burn_in_steps:
                u[0] = sq2 * (ur - reference[0])
                u[1] = sq2 * (ui - reference[1])
                u[2] = sq2 * (vr - reference[2])
                u[3] = sq2 * (vi - reference[3])
                u[4] = q - reference[4]
                u[5] = p - reference[5]
                for r in range(6):
                    for c in range(6):
                        sum_uu[i, r, c] += u[r] * u[c]
    return sum_uu
