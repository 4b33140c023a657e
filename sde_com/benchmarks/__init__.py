"""Benchmarks: speed ratios against a baseline measured in the same run, medians (``sde-com bench``).

``kernels``: the steady-state chain against a scipy loop, the SDE kernels against NumPy, Dask against
in-process. ``end_to_end``: what ``sde-com run`` costs against the kernels alone, memory and scratch
included. ``startup``: import and compile times.
"""
