"""Datasets: BEIR folders, zip imports, hub downloads, the catalog, and benchmarks built from source trees."""
