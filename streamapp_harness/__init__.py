"""The machinery around the sink, not part of it: real peer processes (a Tansu broker, libcoap servers),
the worker launcher the tests and the demo share, and the demo. Not installed with ``streamapp``
(pyproject.toml packages only ``streamapp`` and ``agents``); used from a clone (``make demo``, ``make test``).
"""
