"""The spinning whispering-gallery resonator of Jiao et al., Phys. Rev. Lett. 125, 143605 (2020),
doi:10.1103/PhysRevLett.125.143605: device constants (Eq. 1), mean-field branches (Eq. 7), the fast
steady-state chain."""
