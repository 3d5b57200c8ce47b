"""Estimators and math: ensemble, calibration, explanation, uplift, ranking (no I/O)."""
