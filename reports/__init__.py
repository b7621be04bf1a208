"""Rendering from RunResult / metrics only: figures (matplotlib) and Markdown reports.

Imports ``sim``; ``sim`` (apart from its CLI) never imports this package.
"""
