"""The spinning resonator's own conveniences (Jiao et al., Phys. Rev. Lett. 125, 143605 (2020),
doi:10.1103/PhysRevLett.125.143605), where they add something to the generic API: its ``Device`` (the paper's
parameters in SI units with the rates derived from them, Eq. (1)), its operating points from a ``Device``
(``operating_points``: every branch of Eq. (7) with A, D and V), the drift and diffusion matrices of Eq. (6) from
rates, and the revival factor of Eq. (14).

Everything else runs the resonator as any system: ``sde_com.sweep(**params)``, ``sde_com.simulate(settings,
system="spinning_resonator", **params)``, ``sde_com.drive``, ``sde_com.detect``, ``sde_com.wigner_check``.
"""

from sde_com.physics.gaussian import revival_factor
from sde_com.physics.model import OperatingPoint, operating_points
from sde_com.physics.resonator.device import Device
from sde_com.physics.resonator.drift import diffusion_matrix, drift_matrix

__all__ = ["Device", "OperatingPoint", "diffusion_matrix", "drift_matrix", "operating_points", "revival_factor"]
