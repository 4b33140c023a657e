"""Physics: systems behind one seam (the spinning resonator first), their steady states, linear models,
Lyapunov and moment solutions, Gaussian measures and output spectra. Imports nothing above it."""
