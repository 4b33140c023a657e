"""Runs: the declarative scenario schema, scenarios, the registry of run kinds, the engine (units of work,
checkpoints, Dask)."""
