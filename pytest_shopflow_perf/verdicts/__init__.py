"""Verdicts on results: SLO thresholds, the regression gate against baselines, recovery, the public asserts."""
