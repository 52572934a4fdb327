"""Measurements: HDR histograms, per-endpoint recorders and 1-second windows."""
