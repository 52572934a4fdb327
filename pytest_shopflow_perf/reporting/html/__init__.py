"""The pytest-html integration: hooks, rendering and SVG charts."""
