"""Turning results into things people read: terminal, files, HTML, JUnit."""
