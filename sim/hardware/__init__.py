"""Hardware: GPU specs and compute cost models (calibrated models come with the calibration work)."""
