"""Estimators and math, no I/O: the win model (``win``), its explanation (``explain``),
scores, priority, drift and forecast (``scoring``), and the interventions (``interventions``)."""
