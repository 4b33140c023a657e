"""Time-domain simulation: settings, schemes, ensembles, estimators with error bars, drives, detection and
the truncated-Wigner check."""
