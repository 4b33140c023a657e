"""Results: the one catalogue of output variables, Dataset assembly, atomic CF-1.8 netCDF io."""
