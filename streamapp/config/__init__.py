"""The configuration: every key once (``keys.py``), a resolved configuration (``settings.py``), and the files
a configuration names (``keystores.py``: JKS and PKCS#12 stores; ``workdir.py``: where the worker writes).

Only KCQL (``streamapp.kcql``) and the shared records and errors lie below it; everything that runs — the
CoAP client, the Kafka client, the engine, the web views — reads its options from here (docs/architecture.md).
"""
