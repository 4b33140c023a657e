"""The scenario tables of the simulation layer, declared here with the ``sde_com.spec`` vocabulary: [simulate]
(``SimulationSettings``), [drive] (``Drive``), [wigner] and [detect]. ``sde_com.runs.schema`` assembles them
with the other tables into the scenario schema; the simulation modules read their defaults and checks here.
The [simulate] method's choices and doc come from the scheme registry (``schemes.SCHEMES``).
"""

from __future__ import annotations

from sde_com.simulation.estimators import MAX_STAT_BLOCK, N_JACKKNIFE_GROUPS
from sde_com.simulation.schemes import SCHEMES
from sde_com.spec import RATE, TIME, Key, Table, make_table

SIMULATE = make_table(
    "simulate", "Time-domain runs of the linearized Langevin equations du = A u dt + dW at every [model] "
                "point: steady-state estimates with error bars, or a transient (save_times / save_every).",
    Key("method", "string", " or ".join(f"{name!r} ({s.doc})" for name, s in SCHEMES.items()), default="exact",
        choices=tuple(SCHEMES)),
    Key("dt", "number", "time step; a list runs a time-step study (one run per dt, a `dt` dimension). The "
                        "other times are taken to the nearest whole step, with a warning when they are not "
                        "whole steps", TIME,
        0.1, minimum=0.0, exclusive_minimum=True, forms=("list",)),
    Key("burn_in", "number", "simulated and discarded before the time averages start", TIME, 0.0,
        minimum=0.0),
    Key("duration", "number", "simulated time after the burn-in", TIME, 100.0, minimum=0.0,
        exclusive_minimum=True),
    Key("trajectories", "integer", "ensemble size", "1", 100, minimum=1),
    Key("seed", "integer", "with the trajectory index, keys every random number (counter-based generator)",
        "1", 0, minimum=0, maximum=2**63 - 1),
    Key("initial", "string | matrix", "initial state: 'steady' N(0, V) (a modulated system's: the periodic state "
                                      "at the modulation's t = 0), 'thermal' (each mode in its bath's thermal "
                                      "state: optical vacuum, thermal mechanics), 'zero', or a 2N × 2N covariance "
                                      "(list of rows)",
        default="steady", choices=("steady", "thermal", "zero"),
        # entries beyond 1e15 (vacuum units) overflow the second moments summed over a run (x²·1e18 steps)
        minimum=-1e15, maximum=1e15),
    Key("save_times", "list[number]", "ensemble snapshots at these ascending times from t = 0, within "
                                      "burn_in + duration (a transient run; absent: none)", TIME,
        minimum=0.0, min_items=1),
    Key("save_every", "number", "ensemble snapshots every so often, >= dt (a transient run; with traces, "
                                "their recording interval; absent: none)", TIME, minimum=0.0,
        exclusive_minimum=True),
    Key("traces", "integer", "record u(t) and its noise for this many trajectories (<= trajectories)", "1", 0,
        minimum=0),
    Key("allow_unstable", "boolean", "run a transient at an operating point without a steady state",
        default=False),
    Key("chunk", "integer", "trajectories per unit of work, rounded up to a whole number of statistics blocks "
                            f"(S: the largest power of two <= trajectories/{N_JACKKNIFE_GROUPS}, from 1 to "
                            f"{MAX_STAT_BLOCK}); results do not depend on it (absent: about 5e7 trajectory-steps per "
                            "unit, fewer while traces are recorded)", "1", minimum=1),
)

# rad a step of the fastest periodic change (a sine drive, a modulation's top harmonic): A(t) is frozen within
# each step, and the mean fields are integrated along it
MAX_PHASE_STEP = 0.5
DRIVE = make_table(
    "drive", "A time-dependent drive ε(t) = s(ω_ref t)·ε at one operating point: the mean fields follow the "
             "nonlinear mean-field equations, the fluctuations A(t). Needs a transient [simulate]; beside "
             "[periodic] instead (kind 'sine'), the periodic state along its limit cycle over any [model] grid.",
    Key("kind", "string", "envelope s: 'constant' (1), 'ramp' (half-cosine switch-on), 'pulse' (Gaussian), "
                          "'sine' (1 + depth·sin(frequency·t + phase)), 'samples' (interpolated)",
        default="constant", choices=("constant", "ramp", "pulse", "sine", "samples")),
    Key("start", "number", "switch-on time (ramp) or centre (pulse)", TIME, 0.0, only_with=("ramp", "pulse")),
    Key("rise_time", "number", "duration of the half-cosine rise (ramp); at least 2 dt", TIME, 10.0, minimum=0.0,
        exclusive_minimum=True, only_with=("ramp",)),
    Key("width", "number", "standard deviation of the Gaussian (pulse); at least 2 dt", TIME, 10.0, minimum=0.0,
        exclusive_minimum=True, only_with=("pulse",)),
    Key("depth", "number", "modulation depth (sine)", "1", 0.5, minimum=-1e3, maximum=1e3,
        only_with=("sine",)),
    Key("frequency", "number", "modulation angular frequency (sine); the step must resolve it (frequency·dt "
                               "<= 0.5)", RATE, 0.1, only_with=("sine",)),
    # |angle| <= 1e6 rad: beyond it float64 keeps too few digits below 2π for the angle to mean anything
    Key("phase", "number", "modulation phase (sine)", "rad", 0.0, minimum=-1e6, maximum=1e6, only_with=("sine",)),
    Key("times", "list[number]", "sample times, strictly increasing (samples)", TIME, (),
        only_with=("samples",)),
    Key("values", "list[number]", "envelope at the sample times (samples)", "1", (), minimum=-1e3, maximum=1e3,
        only_with=("samples",)),
    Key("file", "string", "two-column text file (time, value) of samples, relative to the scenario file, "
                          "instead of times/values (samples; absent: none)", only_with=("samples",)),
    Key("mean_field_start", "string", "mean fields at t = 0: 'empty' (empty cavity, mechanics at rest: a "
                                      "switch-on) or 'steady' (the steady state of the constant drive)",
        default="empty", choices=("empty", "steady")),
)

WIGNER = make_table(
    "wigner", "The truncated-Wigner check of the linearization at one operating point: the nonlinear "
              "Langevin equations against the linear model on the same noise. Needs [simulate] method = "
              "'em', a single dt, no snapshots.",
    Key("branch", "integer", "mean-field branch (ascending in q_s) to check", "1", 0, minimum=0),
)

DETECT = make_table(
    "detect", "What a detector sees at one operating point: homodyne records of the output, their spectra, "
              "filtered-mode E_N beside the intracavity E_N. Needs [simulate] method = 'em' with traces recorded "
              "at every step, and a system with output ports (the spinning resonator's U and V; a named "
              "system's; a [system] table's `outputs`).",
    Key("mode", "string", "detected output mode: 'U' (driven) or 'V' (reflected) of the spinning resonator; "
                          "for another system a mode with an output port (absent: the first port, U for the "
                          "resonator)"),
    Key("partner", "string", "the mode the filtered output's E_N is taken with (absent: the last mode, the "
                             "mechanics of both built-in systems)"),
    Key("theta", "number", "local-oscillator phase θ", "rad", 0.0, minimum=-1e6, maximum=1e6),
    Key("segment", "integer", "Welch segment length, in samples (steps); at most the record's samples", "1", 1024,
        minimum=16),
    Key("filter_bandwidths", "list[number]", "bandwidths 1/τ of the filtered output modes (where the frequency "
                                             "integral is resolved: 1e-3 to 1e3)", RATE,
        (0.1, 0.3, 1.0, 3.0), minimum=1e-3, maximum=1e3, min_items=1),
    Key("filter_center", "number", "centre of the output filter, relative to the laser (−1: the Stokes "
                                   "sideband)", RATE, -1.0, minimum=-1e3, maximum=1e3),
)


TABLES: tuple[Table, ...] = (SIMULATE, DRIVE, WIGNER, DETECT)
