"""Dramatiq: broker factory, thin actors (ids in, one service call), the worker runner and the reconciler."""
