"""Counter-based streams: Philox4x32-10 keys one xoshiro256++ sequence per (seed, trajectory, stream_tag).

A stream is fixed by (seed, trajectory, stream_tag) alone: no dependence on threads, on chunking, or on
the block of trajectories that a stepper processes together. seed: int64 or uint64, taken mod 2**64.
Limits: 0 <= stream_tag < 128 (tag STEP_STREAM = 0 is the stepping stream, initial states use
INITIAL_STREAM = 1); normal index m < 2**40 (n_steps < 1.8e11 at d = 6).

Philox4x32-10 (Salmon et al., SC'11; the generator of Random123 and numpy.random.Philox) keys all of it:
    key     = (seed & 0xffffffff, seed >> 32)
    counter = (trajectory & 0xffffffff, trajectory >> 32,      global trajectory index
               block & 0xffffffff, (block >> 32) | tag << 24)  block < 2**56, tag < 256
and a block's four uint32 (w0, w1, w2, w3) are read as two uint64 words w0 | w1 << 32, w2 | w3 << 32.
1. Sequential state: xoshiro256++ (Blackman & Vigna 2021), s = (s0, s1, s2, s3) = the words of blocks
   0 and 1 with tag = stream_tag. An all-zero s (probability 2**-256) is replaced by s0 = 0x9E3779B97F4A7C15.
Steps 2 and 3 (the normals read from this sequence and from fix-up blocks) are in ``sde_com.random.normals``.
"""

import numpy as np
from numba import njit

STEP_STREAM = 0
INITIAL_STREAM = 1

MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)
_ZERO_STATE_FIX = np.uint64(0x9E3779B97F4A7C15)
_U17 = np.uint64(17)
_U19 = np.uint64(19)
_U23 = np.uint64(23)
_U24 = np.uint64(24)
_U41 = np.uint64(41)
_U45 = np.uint64(45)


@njit(cache=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 block function of Salmon et al. (2011): 4 counter words, 2 key words -> 4 uint32.

    Words are held in uint64 and masked to 32 bits; returns a tuple of four uint64 < 2**32.
    """
    x0 = np.uint64(c0) & MASK32
    x1 = np.uint64(c1) & MASK32
    x2 = np.uint64(c2) & MASK32
    x3 = np.uint64(c3) & MASK32
    y0 = np.uint64(k0) & MASK32
    y1 = np.uint64(k1) & MASK32
    for _ in range(10):
        p0 = _PHILOX_M0 * x0
        p1 = _PHILOX_M1 * x2
        x0, x1, x2, x3 = (
            (p1 >> SHIFT32) ^ x1 ^ y0,
            p1 & MASK32,
            (p0 >> SHIFT32) ^ x3 ^ y1,
            p0 & MASK32,
        )
        y0 = (y0 + _PHILOX_W0) & MASK32
        y1 = (y1 + _PHILOX_W1) & MASK32
    return x0, x1, x2, x3


@njit(cache=True)
def split64(x):
    """The 32-bit halves (x & 0xffffffff, x >> 32) of x read as uint64: the key or trajectory words."""
    x = np.uint64(x)
    return x & MASK32, x >> SHIFT32


@njit(cache=True)
def philox_words(k0, k1, t0, t1, tag_word, block):
    """Block ``block`` of Philox for key (k0, k1), trajectory words (t0, t1), tag: two uint64 words."""
    w0, w1, w2, w3 = philox4x32(t0, t1, block & MASK32, (block >> SHIFT32) | (tag_word << _U24), k0, k1)
    return w0 | (w1 << SHIFT32), w2 | (w3 << SHIFT32)


@njit(cache=True)
def xoshiro_seed(seed, trajectory, stream_tag):
    """The xoshiro256++ state (s0, s1, s2, s3) of stream (seed, trajectory, stream_tag): Philox blocks 0, 1."""
    k0, k1 = split64(seed)
    t0, t1 = split64(trajectory)
    tag_word = np.uint64(stream_tag)
    s0, s1 = philox_words(k0, k1, t0, t1, tag_word, np.uint64(0))
    s2, s3 = philox_words(k0, k1, t0, t1, tag_word, np.uint64(1))
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
