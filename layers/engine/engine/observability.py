"""Powertools Logger, Tracer and Metrics shared by the handlers and the engine."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["logger", "metrics", "tracer"]

logger = Logger()
tracer = Tracer()
metrics = Metrics()
