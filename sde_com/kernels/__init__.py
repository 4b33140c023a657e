"""Numba kernels only: plain functions on arrays, no validation, no xarray, any even dimension d = 2N.

``ensemble`` (the linear-SDE stepper u <- F u + L xi), ``accumulators`` (snapshots, traces, sums of u u^T),
``wigner`` (the nonlinear truncated-Wigner drift). Random numbers come from ``sde_com.random``.
"""
