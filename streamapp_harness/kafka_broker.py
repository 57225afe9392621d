"""Apache Kafka, the broker operators run, for the tests and benchmarks: one KRaft node (broker and
controller in one JVM) from Maven Central's jars (``jvm/kafka/pom.xml``, fetched once by ``jvm.py``).

Kafka serves every security the worker offers, itself (no terminator in front): besides ``PLAINTEXT`` a
broker given a :class:`BrokerTls` listens on

* ``SSL`` (server certificate only), ``MTLS`` (``SSL`` with ``ssl.client.auth=required``: mutual TLS),
* ``SASL_SSL`` and, with ``sasl_users``, ``SASL_PLAINTEXT``: each offers PLAIN, SCRAM-SHA-256 and
  SCRAM-SHA-512 to the same users (PLAIN's users are listed in the listener's JAAS line, SCRAM's are created
  with ``StorageTool format --add-scram``, before the first start: KRaft keeps them in its metadata log),
* any number of extra ``SSL`` listeners with identities of their own (``extra_tls``), for a certificate that
  names the wrong host, say.

:meth:`KafkaBroker.listener` gives a listener's ``127.0.0.1:port``; :attr:`bootstrap` is the plain one, which
the tests' own producers and admin clients use.

How it runs (read from Kafka's ``bin/`` scripts and ``config/``, then measured here):

* Kafka reads PEM stores itself (``ssl.keystore.type=PEM``: one file with the PKCS#8 key and the chain;
  ``ssl.truststore.type=PEM``): no keytool step. The server certificate needs SAN ``IP:127.0.0.1``.
* ``kafka.tools.StorageTool format --standalone -t <id> -c server.properties`` formats the log directory
  once; ``controller.quorum.bootstrap.servers`` (not ``controller.quorum.voters``) goes with
  ``--standalone``. The cluster id is the readiness check: the metadata must name it, so a probe never
  mistakes another broker on the port for this one.
* ``kafka.Kafka server.properties`` with ``-Xmx512m``; logs through log4j2 to stdout (Kafka 4 logs through
  slf4j 1.7: the pom adds ``log4j-slf4j-impl`` + ``log4j-core``), which goes to ``log_path``.
* Start to ready: ~3 s on a 2-core machine (formatting ~1 s more, once).
* :meth:`restart` SIGKILLs the JVM and starts it again on the same ports and log directory: topics,
  records and group commits survive (Kafka's own log; no object store).
* Replication factors are 1 (one node) for the offsets, transaction and share-state topics, and a group's
  first rebalance is not delayed (``group.initial.rebalance.delay.ms=0``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from streamapp_harness import jvm
from streamapp_harness.kafka_clients import KafkaClients
from streamapp_harness.process import (
    LOCALHOST,
    PeerError,
    PeerProcess,
    async_wait_until,
    free_port,
    run_in_fresh_loop,
)

__all__ = ["SASL_MECHANISMS", "BrokerTls", "KafkaBroker", "TlsIdentity", "kafka_version"]

#: What the SASL listeners offer, each to every user of ``sasl_users``.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

_PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"

#: Names and passwords go unquoted into StorageTool's ``[name=…,password=…]`` and a JAAS line.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9._-]+$")

_LOG4J2 = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


@dataclass(frozen=True)
class TlsIdentity:
    """A certificate (PEM, with its chain) and its PKCS#8 PEM key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class BrokerTls:
    """The broker's identity and the CA it trusts for client certificates (the ``MTLS`` listener)."""

    identity: TlsIdentity
    client_ca: Path


def kafka_version() -> str:
    """The Kafka version the pom fetches (``kafka.version`` in ``jvm/kafka/pom.xml``)."""
    pom = (jvm.POMS / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    if found is None:
        raise PeerError("jvm/kafka/pom.xml names no <kafka.version>")
    return found.group(1)


class KafkaBroker(PeerProcess, KafkaClients):
    """A single-node Apache Kafka (KRaft) on 127.0.0.1 with a fresh log directory under ``log_dir``.

    Usage::

        with KafkaBroker(tmp_path / "kafka") as broker:
            await broker.create_topic("orders", partitions=3)
            await broker.produce("orders", [b"1", b"2"])
            broker.listener("SASL_SSL")  # "127.0.0.1:P"

    ``start()``/``stop()``/``restart()`` are synchronous and safe inside a running loop (the readiness probe
    runs in a private loop in a worker thread); the client helpers (``kafka_clients.py``) are coroutines.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        tls: BrokerTls | None = None,
        extra_tls: Mapping[str, TlsIdentity] | None = None,
        sasl_users: Mapping[str, str] | None = None,
        heap: str = "512m",
        startup_timeout: float = 90.0,
    ) -> None:
        self.log_dir = Path(log_dir)
        PeerProcess.__init__(self, "kafka broker", self.log_dir / "broker.log")
        self._tls = tls
        self._extra_tls = {name.upper(): identity for name, identity in (extra_tls or {}).items()}
        if self._extra_tls and tls is None:
            raise ValueError("extra_tls listeners need tls= (the CA their clients trust)")
        self._sasl_users = dict(sasl_users or {})
        for name, password in self._sasl_users.items():
            if not (_PLAIN_WORD.match(name) and _PLAIN_WORD.match(password)):
                raise ValueError(f"SASL user {name!r}: use letters, digits, '.', '_' and '-' only")
        self._heap = heap
        self._startup_timeout = startup_timeout
        self._ports: dict[str, int] = {}
        self.cluster_id = ""
        KafkaClients.__init__(self, "")

    # -- addresses -------------------------------------------------------------------------------------------

    def _listener_protocols(self) -> dict[str, str]:
        """Listener name -> security protocol, the controller's last."""
        listeners = {"PLAINTEXT": "PLAINTEXT"}
        if self._sasl_users:
            listeners["SASL_PLAINTEXT"] = "SASL_PLAINTEXT"
        if self._tls is not None:
            listeners |= {"SSL": "SSL", "MTLS": "SSL"}
            listeners |= dict.fromkeys(self._extra_tls, "SSL")
            if self._sasl_users:
                listeners["SASL_SSL"] = "SASL_SSL"
        listeners["CONTROLLER"] = "PLAINTEXT"
        return listeners

    @property
    def listeners(self) -> tuple[str, ...]:
        """The client listeners' names."""
        return tuple(name for name in self._listener_protocols() if name != "CONTROLLER")

    def listener(self, name: str) -> str:
        """``127.0.0.1:port`` of a client listener (``PLAINTEXT``, ``SSL``, ``MTLS``, ``SASL_SSL`` …)."""
        if not self._ports:
            raise PeerError("the broker has no ports before its first start")
        if name.upper() not in self.listeners:
            raise KeyError(f"no listener {name!r}: this broker has {', '.join(self.listeners)}")
        return f"{LOCALHOST}:{self._ports[name.upper()]}"

    @property
    def version(self) -> str:
        return kafka_version()

    # -- configuration ---------------------------------------------------------------------------------------

    def _server_properties(self) -> str:
        protocols = self._listener_protocols()
        ports = self._ports
        data = self.log_dir / "data"
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{LOCALHOST}:{ports['CONTROLLER']}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(f"{name}://{LOCALHOST}:{ports[name]}" for name in protocols),
            "advertised.listeners": ",".join(f"{n}://{LOCALHOST}:{ports[n]}" for n in self.listeners),
            "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self._tls is not None:
            props |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self._keystore("server", self._tls.identity)),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self._tls.client_ca),
                "listener.name.mtls.ssl.client.auth": "required",
            }
            for name, identity in self._extra_tls.items():
                keystore = self._keystore(name.lower(), identity)
                props[f"listener.name.{name.lower()}.ssl.keystore.location"] = str(keystore)
        if self._sasl_users:
            props["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            plain_users = " ".join(f'user_{u}="{p}"' for u, p in self._sasl_users.items())
            for name, protocol in protocols.items():
                if not protocol.startswith("SASL_"):
                    continue
                prefix = f"listener.name.{name.lower()}"
                props[f"{prefix}.plain.sasl.jaas.config"] = f"{_PLAIN_LOGIN} required {plain_users};"
                for mechanism in ("scram-sha-256", "scram-sha-512"):
                    props[f"{prefix}.{mechanism}.sasl.jaas.config"] = f"{_SCRAM_LOGIN} required;"
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _keystore(self, name: str, identity: TlsIdentity) -> Path:
        """Kafka's PEM keystore: the PKCS#8 key and the certificate chain in one file."""
        path = self.log_dir / f"{name}-keystore.pem"
        path.write_text(identity.key.read_text().strip() + "\n" + identity.cert.read_text().strip() + "\n")
        path.chmod(0o600)
        return path

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _java(self, main: str, *args: str, heap: str | None = None) -> list[str]:
        return jvm.java(
            [
                *([f"-Xmx{heap}"] if heap else []),
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.log_dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.log_dir}",
                "-cp",
                jvm.classpath("kafka"),
                main,
                *args,
            ]
        )

    def _format(self) -> None:
        """A fresh log directory: new ports, a new cluster id, SCRAM users created."""
        shutil.rmtree(self.log_dir / "data", ignore_errors=True)
        self._ports = {name: free_port("tcp") for name in self._listener_protocols()}
        self._bootstrap = f"{LOCALHOST}:{self._ports['PLAINTEXT']}"
        (self.log_dir / "server.properties").write_text(self._server_properties())
        tool = "kafka.tools.StorageTool"
        cluster_id = subprocess.run(
            self._java(tool, "random-uuid"), capture_output=True, text=True, check=True
        ).stdout.strip()
        scram = [
            arg
            for user, password in self._sasl_users.items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")
        ]
        formatted = subprocess.run(
            self._java(tool, "format", "--standalone", "-t", cluster_id, "-c", self._properties, *scram),
            capture_output=True,
            text=True,
            check=False,
        )
        # The tool prints the SCRAM records it wrote (salted keys, not passwords): kept out of any output.
        (self.log_dir / "format.log").write_text(formatted.stdout + formatted.stderr)
        if formatted.returncode != 0:
            raise PeerError(f"kafka-storage format failed; see {self.log_dir / 'format.log'}")
        self.cluster_id = cluster_id

    @property
    def _properties(self) -> str:
        return str(self.log_dir / "server.properties")

    def start(self) -> Self:
        """Launch the broker (formatting its log directory the first time) and return once its metadata
        names its cluster id. A first start whose ports were taken meanwhile is retried on new ports."""
        if self.running:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "log4j2.properties").write_text(_LOG4J2)
        first = not self.cluster_id
        for attempt in range(1, 4 if first else 2):
            if first:
                self._format()
            self._spawn(self._java("kafka.Kafka", self._properties, heap=self._heap))
            try:
                run_in_fresh_loop(self._await_ready)
                return self
            except PeerError:
                self.stop()
                if not first or attempt == 3:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def restart(self, *, crash: bool = True) -> Self:
        """Stop the broker (SIGKILL by default, as a crash) and start it on the same ports and log
        directory: its topics, records and commits are still there."""
        self.stop(kill=crash)
        return self.start()

    def stop(self, timeout: float = 30.0, *, kill: bool = False) -> None:
        """SIGTERM (a controlled shutdown takes a few seconds), or SIGKILL with ``kill``."""
        super().stop(timeout, kill=kill)

    async def _await_ready(self) -> None:
        async def answers() -> bool:
            self._check_alive()
            return await self.cluster_id_answered() == self.cluster_id

        await async_wait_until(
            answers,
            self._startup_timeout,
            interval=0.1,
            what=f"kafka on {self.bootstrap} to answer a metadata request",
        )

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
