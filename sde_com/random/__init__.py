"""The counter-based generator (``philox``: Philox4x32-10 keying xoshiro256++ streams) and the bit-specified
ziggurat normal sampler (``normals``). Numba only; imports nothing from the rest of sde_com."""

from sde_com.random.normals import (
    ZIGGURAT_LAYERS,
    ZIGGURAT_R,
    fill_normals,
    sample_gaussian,
    standard_normals,
    uniform53,
)
from sde_com.random.philox import INITIAL_STREAM, STEP_STREAM, philox4x32, xoshiro_next, xoshiro_seed

__all__ = [
    "INITIAL_STREAM",
    "STEP_STREAM",
    "ZIGGURAT_LAYERS",
    "ZIGGURAT_R",
    "fill_normals",
    "philox4x32",
    "sample_gaussian",
    "standard_normals",
    "uniform53",
    "xoshiro_next",
    "xoshiro_seed",
]
