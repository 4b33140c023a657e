"""The errors of sde_com, in three kinds (the CLI maps them to exit statuses):

- a user's error (a scenario, a file, an argument, or a request the physics refuses, such as simulating an
  unstable point): ``UserError``, exit 2, with a message naming what to change;
- a numerical failure (a singular system, no convergence): ``NumericalError``, exit 3, with a message
  saying what failed and for which parameters;
- anything else is a bug: a traceback and exit 1.

What a run does not refuse but a user should know goes out as a ``RunWarning`` (a Python warning: the CLI
prints it as ``sde-com: warning: ...`` on stderr, always, ``--quiet`` or not).
"""


class UserError(ValueError):
    """Input that cannot be run: the message names the key, file or argument, the value and what is allowed."""


class ScenarioError(UserError):
    """A scenario file that cannot be run; the message names the offending key and what is allowed."""


class NumericalError(RuntimeError):
    """A computation that failed on valid input: the message says what failed and for which parameters."""


class UnitFailed(RuntimeError):
    """Units of a run raised (a mix, or not of the kinds above): reported, exit 1; the others' results are kept
    in the checkpoint for ``--resume``."""


class RunWarning(UserWarning):
    """Something a run does not refuse but the user should know (e.g. ``--resume`` with nothing to resume)."""
