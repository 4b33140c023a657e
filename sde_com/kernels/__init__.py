"""Numba kernels only: plain functions on arrays, no validation, no xarray."""
