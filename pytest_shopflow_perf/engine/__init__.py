"""The load engine: virtual users, the closed and open models, the recording transport. Knows nothing of pytest."""
