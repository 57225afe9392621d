"""coaps:// end to end: records from the real broker, through real `faust` workers, over DTLS to libcoap's
servers, for every credential form and suite of the matrix; a wrong PSK stops the worker under THROW.

The workers run side by side (one consumer-group join, ~30 s, for all of them). Logs, `check` output and the
stats page must never show a secret.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from streamapp_harness.kafka_broker import KafkaBroker
from streamapp_harness.libcoap import CoapsCredentials, LibcoapServer
from tests.certs import Pki

pytestmark = pytest.mark.slow

PSK = "Sup3r-S3cret-PSK"
IDENTITY = "device-e2e"
RECORDS = 20


def variants(pki: Pki) -> dict[str, tuple[dict, dict[str, str]]]:
    """name -> (LibcoapServer keyword arguments, worker properties besides uri and kcql)."""
    psk_reader = CoapsCredentials(psk=PSK.encode(), identity=IDENTITY)
    psk_props = {"connect.coap.username": IDENTITY, "connect.coap.password": PSK}
    cert_reader = CoapsCredentials(cert=pki.client_cert, key=pki.client_key, ca=pki.ca)
    x509_server = {
        "flavour": "openssl",
        "cert": pki.server_cert,
        "key": pki.server_key,
        "ca": pki.ca,
        "client_credentials": cert_reader,
    }
    found: dict[str, tuple[dict, dict[str, str]]] = {
        "psk-openssl-ccm8": (
            {"flavour": "openssl", "psk": PSK.encode(), "client_credentials": psk_reader},
            {**psk_props, "connect.coap.cipher.suites": "TLS_PSK_WITH_AES_128_CCM_8"},
        ),
        "psk-gnutls-ccm8": (
            {"flavour": "gnutls", "psk": PSK.encode(), "client_credentials": psk_reader},
            {**psk_props, "connect.coap.cipher.suites": "TLS_PSK_WITH_AES_128_CCM_8"},
        ),
        "psk-gnutls-cbc": (
            {"flavour": "gnutls", "psk": PSK.encode(), "client_credentials": psk_reader},
            {**psk_props, "connect.coap.cipher.suites": "TLS_PSK_WITH_AES_128_CBC_SHA256"},
        ),
        "x509-pem": (
            x509_server,
            {
                "connect.coap.private.key.file": str(pki.client_key),
                "connect.coap.public.key.file": str(pki.client_cert),
                "connect.coap.truststore.path": str(pki.ca),
            },
        ),
        "x509-pkcs12": (
            x509_server,
            {
                "connect.coap.keystore.path": str(pki.client_p12),
                "connect.coap.keystore.pass": "rootPass",
                "connect.coap.truststore.path": str(pki.trust_p12),
            },
        ),
    }
    if pki.client_jks is not None:
        found["x509-jks"] = (
            x509_server,
            {
                "connect.coap.keystore.path": str(pki.client_jks),
                "connect.coap.truststore.path": str(pki.trust_jks),
                "connect.coap.certs": "ca",
                "connect.coap.cert.chain.key": "client",
            },
        )
    return found


async def test_every_credential_form_delivers_from_the_broker_and_a_wrong_psk_stops_the_worker(
    broker: KafkaBroker, pki: Pki, start_worker, unique: str, tmp_path: Path
) -> None:
    cases = variants(pki)
    if pki.client_jks is None:
        print(f"x509-jks not run: {pki.jks_skip_reason}")
    with ExitStack() as stack:
        workers = {}
        servers = {}
        for name, (server_args, props) in cases.items():
            server = stack.enter_context(LibcoapServer(log_path=tmp_path / f"{name}.log", **server_args))
            host = "localhost" if name.startswith("x509") else "127.0.0.1"
            topic = f"{unique}-{name}"
            await broker.create_topic(topic, partitions=1)
            await broker.produce(topic, [json.dumps({"n": n, "via": name}).encode() for n in range(RECORDS)])
            servers[name] = server
            workers[name] = start_worker(
                {
                    "name": f"{unique}-{name}",
                    "connect.coap.uri": f"coaps://{host}:{server.dtls_port}",
                    "connect.coap.kcql": f"INSERT INTO dtls/{name} SELECT n, via FROM {topic}",
                    **props,
                }
            )
        wrong = stack.enter_context(LibcoapServer(flavour="openssl", psk=PSK.encode()))
        wrong_topic = f"{unique}-wrong"
        await broker.create_topic(wrong_topic, partitions=1)
        await broker.produce(wrong_topic, [b'{"n": 0}'])
        wrong_worker = start_worker(
            {
                "name": f"{unique}-wrong",
                "connect.coap.uri": wrong.coaps_uri,
                "connect.coap.kcql": f"INSERT INTO never SELECT * FROM {wrong_topic}",
                "connect.coap.username": IDENTITY,
                "connect.coap.password": "Not-The-Right-Key-42",
            }
        )

        for name, worker in workers.items():
            last = json.dumps({"n": RECORDS - 1, "via": name}, separators=(",", ":")).encode()
            worker.wait_until(
                lambda server=servers[name], name=name, last=last: (
                    server.get(f"dtls/{name}", dtls=True) == last
                ),
                what=f"the last record at dtls/{name}",
            )
            stats = worker.stats()
            assert stats is not None and stats["statements"][0]["delivered"] == RECORDS, name

        assert wrong_worker.wait_exit(timeout=120) != 0
        (stop,) = wrong_worker.events("worker.stopping")
        assert (stop["topic"], stop["partition"], stop["offset"]) == (wrong_topic, 0, 0)
        assert (stop["resource"], stop["error_class"], stop["retriable"]) == ("never", "DeliveryError", True)
        assert "wrong PSK (connect.coap.password)" in stop["why"]

        for name, worker in {**workers, "wrong": wrong_worker}.items():
            text = worker.log_text() + json.dumps(worker.stats() or {})
            if worker.returncode is None:  # a running worker's page and metrics too
                stats = worker.stats() or {}
                assert stats["worker"]["security"].startswith("DTLS 1.2: "), stats["worker"]["security"]
                for path in ("/coap/", "/metrics"):
                    url = f"http://127.0.0.1:{worker.web_port}{path}"
                    with urllib.request.urlopen(url, timeout=10) as response:
                        text += response.read().decode()
            for secret in (PSK, "Not-The-Right-Key-42", "rootPass", "PRIVATE KEY"):
                assert secret not in text, f"{secret!r} in the log or stats of {name}"
        for worker in workers.values():
            assert worker.stop() == 0
