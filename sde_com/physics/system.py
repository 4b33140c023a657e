"""The system seam: a linear quantum Langevin system du = A u dt + dW, E[dW dWᵀ] = D dt, and its registry.

u = (x₁, p₁, x₂, p₂, …) holds the fluctuation quadratures of N modes in mode order, (x, p) per mode, vacuum
variance 1/2; rates in rad/s. A system says what its parameters are (``spec.Key``: unit, range, default,
doc; they are the scenario's [model] keys), its reference rate ω_ref (the unit of every run time), and every
mean-field steady-state branch with its drift A and diffusion D. Everything downstream (Lyapunov V of
Eq. (11), moments, E_N of Eqs. (12)–(13), the time-domain kernels) works on A and D alone.

Optional capabilities, declared in ``capabilities``:

- ``"mean_field_dynamics"``: the nonlinear mean-field equations (drives, the truncated-Wigner check);
- ``"output_ports"``: decay rates into the detected output port of each optical mode (spectra, filtered
  modes, detection);
- ``"truncated_wigner"``: the nonlinear Langevin equations with the linearized noises, in a kernel of its
  own (``truncated_wigner_model``: the [wigner] check of the linearization).

What a system does faster or writes beyond the common variables is its own, too, and run kinds ask for it
without asking which system they run: a vectorized steady-state chain (``steady_chain``, the resonator's),
the one pair of modes its E_N is reported for (``reported_pair``), its mean-field output variables
(``mean_field_variables``).

The registry maps a name to a system class: built-ins register in code (``register_system``), plug-ins
through the entry-point group ``"sde_com.systems"`` (``name = "package.module:Class"``), loaded on the
first lookup of a name not registered yet, so the CLI and Dask workers find a plug-in by name. Scenario
files name a registered system; they never hold a path to code.
"""

from __future__ import annotations

import abc
import importlib
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from sde_com import spec
from sde_com.errors import UserError
from sde_com.physics.stability import Stability, decide_stability

ENTRY_POINT_GROUP = "sde_com.systems"
CAPABILITIES: tuple[str, ...] = ("mean_field_dynamics", "output_ports", "truncated_wigner", "periodic")


@dataclass(frozen=True)
class Branch:
    """One mean-field steady-state branch of a system and its linearized fluctuation dynamics.

    Attributes:
        index: position among the system's branches (ascending in the system's order parameter).
        mean_field: the system's mean-field values at this branch, by name (e.g. q_s, alpha_u).
        drift: A (2N×2N, rad/s).  diffusion: D (2N×2N, rad/s), E[dW dWᵀ] = D dt, vacuum variance 1/2.
    """

    index: int
    mean_field: Mapping[str, complex | float]
    drift: np.ndarray
    diffusion: np.ndarray


@dataclass(frozen=True)
class MeanFieldDynamics:
    """The nonlinear mean-field equations of a system in the time τ = ω_ref t.

    Attributes:
        rhs: (τ, z, s) → dz/dτ for the real mean-field state z and the drive envelope s (1: the constant
            drive of the parameters).
        drift: z → A/ω_ref, the drift of the fluctuations linearized around z.
        steady_state: branch → z at that branch (a fixed point of rhs with s = 1).
        observables: z over time (len(z), n_t) → the output variables of a driven run, by catalogue name
            (``photons``, ``displacement``, ...).
    """

    rhs: Callable[[float, np.ndarray, float], np.ndarray]
    drift: Callable[[np.ndarray], np.ndarray]
    steady_state: Callable[[Branch], np.ndarray]
    observables: Callable[[np.ndarray], dict[str, np.ndarray]] = lambda z: {}


class LinearSystem(abc.ABC):
    """A linear quantum Langevin system du = A u dt + dW, E[dW dWᵀ] = D dt (module docstring).

    Subclasses set the class attributes ``name`` (registry key), ``modes`` (N mode names), ``quadratures``
    (2N labels, (x, p) per mode in mode order), ``parameters`` (name → ``spec.Key``) and ``capabilities``
    (and ``mean_field_variables`` with ``mean_field_outputs``, where a sweep should write mean-field values),
    and implement ``reference_rate`` and ``branches`` (and ``thermal_covariance``, where the system has a
    thermal state). Systems hold no state: ``params`` is passed to each
    method, a mapping of parameter values (absent keys take the Key's default, see ``resolve``).
    """

    name: ClassVar[str]
    modes: ClassVar[tuple[str, ...]]
    quadratures: ClassVar[tuple[str, ...]]
    parameters: ClassVar[Mapping[str, spec.Key]]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    mean_field_variables: ClassVar[tuple[str, ...]] = ()  # output variables of ``mean_field_outputs``
    # The one pair of modes (indices) whose E_N a run reports as ``logneg`` / ``logneg_sim`` without a ``pair``
    # dimension (the resonator: its driven mode and the mechanics, the paper's Eq. (12)); None: every pair of
    # modes, over ``pair``.
    reported_pair: ClassVar[tuple[int, int] | None] = None
    # Whether the catalogue's long_names already use this system's words (its modes, quadratures, ω_m: the
    # spinning resonator's, for which the catalogue was written); otherwise a file is relabelled for it
    # (``results.catalogue.label_for_system``).
    catalogue_words: ClassVar[bool] = False
    # What a file of this system cites (the CF ``references`` attribute): its papers, by DOI.
    references: ClassVar[str] = ""
    # The symbol of ω_ref in figures and labels (the resonator's and the single cavity's ω_m).
    reference_symbol: ClassVar[str] = "ω_ref"
    # The sde_com modules (dotted below the package) whose Numba kernels its steady state compiles on an empty
    # cache: the Lyapunov solve and E_N, and a system's own (the resonator's chain).
    kernel_modules: ClassVar[tuple[str, ...]] = ("physics.linear", "physics.gaussian")
    # "module:function" compiling part of its steady state's kernels in a second process on a first run
    # (``kernel_cache.compile_aside``), or None
    compile_aside: ClassVar[str | None] = None
    # How a scenario gives this kind of system a capability it lacks (capability → what to write), for the
    # message that refuses a run needing it.
    capability_hints: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def definition(self) -> dict:
        """What regenerates this system, for the ``system_definition`` attribute of every file: its registered
        name (its parameters are the file's ``parameters``); a system given otherwise (its matrices) says so."""
        return {"name": self.name}

    def parameter_values(self, name: str, value) -> tuple[np.ndarray, bool]:
        """(1-D array of values, is_dimension) of one [model] parameter, checked against its ``Key``: a list of
        a key that may be swept is a dimension (``sweep.parameter_grid``, the one grid rule)."""
        key = self.parameters[name]
        if not _is_swept(key, value):
            spec.check_value(key, value, key.name)
            values = np.empty(1, dtype=object)
            values[0] = value
            return (values if isinstance(value, (list, tuple, np.ndarray)) else np.asarray([value])), False
        items = np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value)
        if np.ndim(items) != 1:
            raise UserError(f"{key.name} must be a scalar or a non-empty 1-D sequence, got {spec.show(value)}")
        spec.check_value(key, items, key.name, forms=("list",))
        kind = {"number": float, "integer": np.int64, "boolean": bool}.get(key.types[0], str)
        return np.asarray(items, dtype=kind), True

    def mean_field_outputs(self, mean_field: Mapping[str, complex | float],
                           params: Mapping[str, object]) -> dict[str, float]:
        """The branch's mean-field values as output variables (catalogue names, ``mean_field_variables``):
        none unless a system declares them."""
        return {}

    @property
    def dimension(self) -> int:
        """2N, the number of quadratures."""
        return 2 * len(self.modes)

    def resolve(self, params: Mapping[str, object] | None = None) -> dict[str, object]:
        """Every parameter by name: ``params`` checked against ``parameters`` (type, range, choices), absent
        ones at their default. Raises UserError naming an unknown key or a bad value and what is allowed."""
        params = {} if params is None else dict(params)
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise UserError(f"unknown parameter(s) {unknown} of system {self.name!r}; known: "
                            f"{list(self.parameters)}")
        out = {}
        for key in self.parameters.values():
            value = params.get(key.name, key.default)
            spec.check_value(key, value, key.name, error=UserError)
            out[key.name] = value
        return out

    @abc.abstractmethod
    def reference_rate(self, params: Mapping[str, object]) -> float:
        """ω_ref (rad/s): the unit of every run time (times in 1/ω_ref, frequencies in ω_ref)."""

    @abc.abstractmethod
    def branches(self, params: Mapping[str, object]) -> list[Branch]:
        """Every mean-field steady-state branch, ascending, with its drift A and diffusion D (rad/s)."""

    def stability(self, branch: Branch, params: Mapping[str, object]) -> Stability:
        """The stability decision (``decide_stability``) of a branch, Routh–Hurwitz on A/ω_ref."""
        return decide_stability(branch.drift, self.reference_rate(params))

    def check_grid(self, grid: tuple) -> None:
        """Refuse (UserError) a grid point this system cannot run, before any work: what its parameters' Keys
        cannot say (``grid``: ``results.sweep.parameter_grid``'s tuple). Default: nothing more."""
        return None

    def thermal_covariance(self, params: Mapping[str, object]) -> np.ndarray:
        """The covariance (2N×2N, vacuum variance 1/2) of the thermal state: each mode in its bath's thermal
        state; vacuum (½ I) for optical modes. The initial state ``initial = "thermal"`` of a run."""
        raise UserError(f"system {self.name!r} does not define a thermal state (thermal_covariance): "
                        "use initial = 'steady', 'zero' or a given covariance")

    def mean_field_dynamics(self, params: Mapping[str, object]) -> MeanFieldDynamics:
        """The nonlinear mean-field equations (capability ``"mean_field_dynamics"``)."""
        require(self, "mean_field_dynamics", "mean-field dynamics")
        raise NotImplementedError(f"{type(self).__name__} declares mean_field_dynamics but does not define it")

    def output_ports(self, params: Mapping[str, object]) -> dict[str, float]:
        """Mode → amplitude decay rate κ into its detected output port, rad/s (capability ``"output_ports"``;
        a_out = √(2κ) a − a_in, so the mode's energy leaks into the port at 2κ)."""
        require(self, "output_ports", "output ports")
        raise NotImplementedError(f"{type(self).__name__} declares output_ports but does not define it")

    def truncated_wigner_model(self, params: Mapping[str, object], branch: int) -> dict:
        """The nonlinear Langevin equations at a branch (capability ``"truncated_wigner"``): ``branch`` (the
        ``Branch``), ``photons`` (its mean-field photon number), ``initial`` (fluctuations u₀ (n, 2N) → the
        nonlinear state the kernel starts from), and ``run(state0, seed, first, n_steps, dt, burn_in_steps)``
        → the time-summed u uᵀ of each trajectory about the nonlinear drift's fixed point (Euler–Maruyama on
        the stepping stream's normals, the same ξ as the linear kernel's)."""
        require(self, "truncated_wigner", "truncated Wigner")
        raise NotImplementedError(f"{type(self).__name__} declares truncated_wigner but does not define it")


SCALAR_TYPES = ("number", "integer", "string", "boolean")  # key types whose lists are sweep dimensions


def _is_swept(key: spec.Key, value) -> bool:
    """A list of values of a key that may be swept (a "list" form of scalar values) is a dimension."""
    return ("list" in key.forms and all(t in SCALAR_TYPES for t in key.types)
            and (isinstance(value, (list, tuple)) or isinstance(value, np.ndarray) and value.ndim > 0))


def pair_labels(modes) -> list[str]:
    """'a-b' for every pair of modes (i < j, in mode order): the labels of the ``pair`` dimension."""
    return [f"{a}-{b}" for a, b in itertools.combinations(modes, 2)]


def require(system: LinearSystem, capability: str, run_kind: str) -> None:
    """Raise UserError naming the run kind, the system and the capability, unless ``system`` has it."""
    if capability not in CAPABILITIES:
        raise ValueError(f"capability must be one of {CAPABILITIES}, got {capability!r}")
    if capability not in system.capabilities:
        have = sorted(system.capabilities) or "none"
        hint = getattr(system, "capability_hints", {}).get(capability)
        raise UserError(f"run kind {run_kind!r} needs the capability {capability!r}, which system "
                        f"{system.name!r} does not have (its capabilities: {have}){f': {hint}' if hint else ''}")


# Registry ----------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[LinearSystem]] = {}
SYSTEMS: Mapping[str, type[LinearSystem]] = MappingProxyType(_REGISTRY)  # name → class, read-only view


def _check_system_class(cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, LinearSystem)):
        raise TypeError(f"a system must be a subclass of LinearSystem, got {cls!r}")
    for attr in ("name", "modes", "quadratures", "parameters"):
        if not hasattr(cls, attr):
            raise TypeError(f"system class {cls.__name__} does not set {attr!r}")
    if len(cls.quadratures) != 2 * len(cls.modes):
        raise TypeError(f"system {cls.name!r}: {len(cls.modes)} modes need {2 * len(cls.modes)} quadratures, "
                        f"got {len(cls.quadratures)}")
    unknown = set(cls.capabilities) - set(CAPABILITIES)
    if unknown:
        raise TypeError(f"system {cls.name!r}: unknown capabilities {sorted(unknown)}; known {CAPABILITIES}")


def register_system(cls: type[LinearSystem]) -> type[LinearSystem]:
    """Add a system class to the registry under ``cls.name`` (usable as a class decorator).

    Re-registering the same class is a no-op; another class under a taken name is a TypeError.
    """
    _check_system_class(cls)
    present = _REGISTRY.get(cls.name)
    if present is not None and present is not cls:
        raise TypeError(f"system name {cls.name!r} is taken by {present.__module__}.{present.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_point(name: str) -> None:
    """Register the plug-in system ``name`` of the entry-point group ``sde_com.systems``, if there is one."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if getattr(cls, "name", None) != name:
                raise TypeError(f"entry point {name!r} of {ENTRY_POINT_GROUP!r} ({ep.value}) loads a system "
                                f"named {getattr(cls, 'name', None)!r}")
            register_system(cls)
            return


# The built-in systems by name, resolved on first use the way xarray finds its backends: "module:Class"
# strings, so that this module imports none of its subclasses (they import it). The default comes first.
BUILTIN_SYSTEMS: Mapping[str, str] = MappingProxyType({
    "spinning_resonator": "sde_com.physics.resonator.system:SpinningResonator",
    "single_cavity": "sde_com.physics.cavity:SingleCavity",
})


def _resolve(target: str) -> type[LinearSystem]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def builtin_systems() -> tuple[type[LinearSystem], ...]:
    """The built-in system classes, the default first (``BUILTIN_SYSTEMS``, resolved and registered)."""
    _builtins()
    return tuple(_REGISTRY[name] for name in BUILTIN_SYSTEMS)


def _builtins() -> None:
    """Register the built-in systems not registered yet."""
    for name, target in BUILTIN_SYSTEMS.items():
        if name not in _REGISTRY:
            register_system(_resolve(target))


def system_names() -> list[str]:
    """Names of the registered systems and of the installed plug-ins (entry points), sorted."""
    _builtins()
    return sorted(set(_REGISTRY) | {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def get_system(name: str) -> LinearSystem:
    """The system registered as ``name`` (an instance); plug-ins load on first lookup. UserError listing the
    known names if there is none."""
    _builtins()
    if not isinstance(name, str):
        raise UserError(f"a system name must be a string, got {name!r}; known systems: {system_names()}")
    if name not in _REGISTRY:
        _load_entry_point(name)
    if name not in _REGISTRY:
        raise UserError(f"unknown system {name!r}; known systems: {system_names()}")
    return _REGISTRY[name]()
