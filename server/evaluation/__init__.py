"""Metrics a model-risk team reads: discrimination, calibration, and score-distribution stability."""
