"""The configuration: every key once (``keys.py``), a resolved configuration (``settings.py``), the domains
that keys are checked against (``uris.py``: server URI schemes and discovery hosts; ``dtls_suites.py``: the
DTLS cipher suites; ``jaas.py``: ``sasl.jaas.config``; ``oscore_context.py``: an OSCORE context directory),
and the files a configuration names (``keystores.py``: JKS and PKCS#12 stores; ``workdir.py``: where the
worker writes).

Only KCQL (``streamapp.kcql``) and the shared records, errors and logs lie below it; everything that runs —
the CoAP client, the Kafka client, the engine, the web views — reads its options from here, and nothing here
imports them: a key's validator that needs a table or a file format finds it in this package
(docs/architecture.md, "The tree").
"""
