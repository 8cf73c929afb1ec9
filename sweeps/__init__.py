"""Ray Tune sweeps of the tutorial experiments."""
