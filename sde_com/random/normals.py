"""Standard normals from the streams of ``sde_com.random.philox``: a 1024-layer ziggurat, bit-specified.

2. Normal m (m = 0, 1, ...) of a stream: x_m, output m of its xoshiro256++ sequence, is the first
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
Step 1 (the stream and its key/counter layout) is in ``sde_com.random.philox``.

The vectorized steppers call the two halves separately: ``_zig_fast`` (step 2, branch-free) for all lanes,
``_zig_slow`` (steps 2-3 from the candidate word) for the rare rejections.

fill_normals(seed, trajectory, first, stream_tag, out): normals first .. first + len(out) - 1 of a
stream into out (reaching ``first`` costs one xoshiro step per skipped normal); returns first + len(out).
"""

import math
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from sde_com.random.philox import INITIAL_STREAM, STEP_STREAM, philox_words, split64, xoshiro_next, xoshiro_seed

ZIGGURAT_LAYERS = 1024
_TWO_M53 = 2.0**-53
# int64 constants for calls: a literal int argument makes Numba compile the callee twice (Literal[int], int64)
ZERO = np.int64(0)
STEP_STREAM_ID = np.int64(STEP_STREAM)
_LAYER = np.uint64(ZIGGURAT_LAYERS - 1)
_U1 = np.uint64(1)
_U10 = np.uint64(10)
_U11 = np.uint64(11)
_U12 = np.uint64(12)
_U16 = np.uint64(16)
_FIX_TAG = np.uint64(128)
_TWO_BITS = np.uint64(0x4000000000000000)  # the bits of 2.0: (k >> 12) | _TWO_BITS is 2 + k 2**-51


def _ziggurat_tables(n_layers=ZIGGURAT_LAYERS):
    """Ziggurat of n_layers equal-area layers under f(x) = exp(-x^2/2) (Marsaglia & Tsang 2000).

    X[0] = v / f(r) (the base strip: rectangle [0, r] x [0, f(r)] plus the tail, area v), X[1] = r,
    X[i + 1] = f^-1(f(X[i]) + v / X[i]), X[n] = 0; r solves X[n] = 0 (the top layer has area v exactly).
    Returns (r, widths X (n + 1,), ratios X[i+1]/X[i] rounded down (n,), heights f(X) (n + 1,), f(X[n]) = 1).
    How the shipped tables (``TABLE_FILE``, read by ``_load_tables``) were made; their heights are then
    rounded correctly, which libm's exp and numpy's do not promise.
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


TABLE_FILE = Path(__file__).with_name("ziggurat_1024.txt")


def _load_tables(path=TABLE_FILE):
    """The shipped tables (r, X, ratios, heights) of ``_ziggurat_tables``, read as exact hexadecimal floats.

    They are data, so the stream depends on no libm and no SIMD path of numpy (whose exp rounds some heights
    differently on AVX-512 CPUs); the heights are exp(-X²/2) correctly rounded. The ratios are IEEE divisions
    of the widths rounded down, the same on every CPU.
    """
    rows = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
    r = float.fromhex(rows[0][1])
    x = np.array([float.fromhex(a) for a, _ in rows[1:]])
    heights = np.array([float.fromhex(b) for _, b in rows[1:]])
    ratio = np.nextafter(x[1:] / x[:-1], 0.0)  # |U| < ratio[i] implies |U| X[i] < X[i+1]
    ratio[-1] = 0.0  # the top layer always goes to its wedge
    return r, x, ratio, heights


ZIGGURAT_R, _ZIG_X, _ZIG_RATIO, _ZIG_F = _load_tables()
_ZIG_INV_R = 1.0 / ZIGGURAT_R


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret the 64 bits of a uint64 as a float64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@njit(cache=True)
def uniform53(word):
    """Uniform in [0, 1) from the top 53 bits of a uint64 word: (word >> 11) 2**-53."""
    return float(np.uint64(word) >> _U11) * _TWO_M53


@njit(cache=True)
def _zig_fast(word):
    """First ziggurat candidate of a uint64 word (step 2): (z, accepted)."""
    i = word & _LAYER
    uni = _bits_to_float((word >> _U12) | _TWO_BITS) - 3.0
    return uni * _ZIG_X[i], abs(uni) < _ZIG_RATIO[i]


@njit(cache=True)
def _fix_word(k0, k1, t0, t1, fix_tag, base, j, spare):
    """Fix-up word j of a normal: (word, spare); an even j computes Philox block base + j // 2, whose
    second word is the spare that the odd j after it returns."""
    if j % 2 == 0:
        return philox_words(k0, k1, t0, t1, fix_tag, base + np.uint64(j // 2))
    return spare, spare


@njit(cache=True)
def _zig_slow(word, k0, k1, t0, t1, tag_word, m):
    """Normal m of a stream whose first ziggurat candidate is ``word``: the fast path, then wedge, tail
    and fresh candidates from the fix-up words of normal m (module docstring, step 3)."""
    base = np.uint64(m) << _U16
    fix_tag = tag_word | _FIX_TAG
    j = np.int64(0)  # fix-up words used (int64, not a literal 0: _fix_word compiles once)
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
    state = np.array([s0, s1, s2, s3], dtype=np.uint64)
    return continue_normals(state, seed, trajectory, stream_tag, first, out)


@njit(cache=True)
def continue_normals(state, seed, trajectory, stream_tag, first, out):
    """Normals first .. first + len(out) − 1 of stream (seed, trajectory, stream_tag) into ``out``, from the
    stream's xoshiro state at normal ``first`` (``state``: uint64[4], advanced past them): a stream drawn in
    blocks without walking it again. Returns first + len(out)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    k0, k1 = split64(seed)
    t0, t1 = split64(trajectory)
    tag_word = np.uint64(stream_tag)
    for i in range(out.shape[0]):
        word, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
        z, ok = _zig_fast(word)
        if not ok:
            z = _zig_slow(word, k0, k1, t0, t1, tag_word, first + i)
        out[i] = z
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return first + out.shape[0]


@njit(cache=True)
def standard_normals(seed, trajectory, n):
    """The first n normals of the stepping stream of one trajectory (xi_k[j] is item d k + j in d dimensions)."""
    out = np.empty(n)
    fill_normals(seed, trajectory, ZERO, STEP_STREAM_ID, out)
    return out


@njit(cache=True)
def sample_gaussian(chol, seed, first_trajectory, n_traj, stream_tag=INITIAL_STREAM):
    """Initial states u0 = chol @ z, z ~ N(0, I_d) = normals 0 .. d-1 of stream (seed, first_trajectory + i,
    stream_tag), d = chol.shape[0]. Use stream_tag >= 1 so the draws never overlap the stepping stream (tag 0).
    Returns (n_traj, d).
    """
    d = chol.shape[0]
    out = np.empty((n_traj, d))
    for i in range(n_traj):  # serial: d normals per trajectory are cheap, parfors cost ~0.7 s of compile
        z = np.empty(d)
        fill_normals(seed, first_trajectory + i, ZERO, stream_tag, z)
        for r in range(d):
            acc = 0.0
            for c in range(d):
                acc += chol[r, c] * z[c]
            out[i, r] = acc
    return out
