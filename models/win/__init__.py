"""The win-probability model: the stacked ensemble and its members, calibration, tuning,
out-of-time validation, the scorecard baseline and the metrics it is judged by."""
