"""What an operator sees of a running worker, on Faust's web server and in the log: the stats page and
``stats.json`` (``views.py``, ``stats_page.html``), Prometheus ``/metrics`` (``metrics.py``), the
``/healthz`` and ``/readyz`` probes (``health.py``) and the progress lines (``progress.py``).

It only reads: the counters are the engine's (``streamapp.engine.stats``), the state is the consumer's and
the sender's. Nothing in the record path imports this package (docs/architecture.md).
"""
