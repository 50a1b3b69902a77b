"""Operator command lines (python -m engine.cli.<name>)."""
