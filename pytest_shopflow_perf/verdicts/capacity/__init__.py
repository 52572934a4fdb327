"""Capacity search: the levels to run (``search.py``) and the comparison with a stored capacity (``baseline.py``)."""
