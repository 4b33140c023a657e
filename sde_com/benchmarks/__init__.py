"""Benchmarks: speed ratios against a baseline measured in the same run, medians (``sde-com bench``).

``kernels``: the steady-state chain against a scipy loop, the SDE kernels against NumPy, Dask against
in-process. ``end_to_end``: what ``sde-com run`` costs against the kernels alone, memory and scratch
included. ``startup``: import and compile times.
"""

BLAS_THREADS = 1
# every baseline runs with BLAS pinned: thread pools are sized when numpy loads, so in a child's environment
BLAS_ENV = {var: str(BLAS_THREADS) for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
