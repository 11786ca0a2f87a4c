"""Evaluation: metrics, significance, comparisons, failures, sweeps and reports over runs."""
