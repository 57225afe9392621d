"""Every configuration key once: its name and spellings, type (parser), default, unit, validator and doc.

``KEYS`` is the one definition the rest reads: ``settings.py`` resolves a configuration from it, KCQL
``PROPERTIES`` parse with it, option objects take their defaults from it (``default_of``,
``default_seconds``), the README's tables are checked against it (docs/configuration.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from streamapp.coap.discovery import discovery_group
from streamapp.coap.oscore import check_context_directory
from streamapp.coap.suites import check_suite_names

#: More retransmissions than this make one exchange last hours (the waits double each time).
MAX_RETRANSMIT_LIMIT = 10


class Secret:
    """A configuration value that must never be printed: ``repr``/``str`` show ``[hidden]``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "[hidden]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def revealed(secret: Secret | None) -> str | None:
    """The text of a secret that may be unset (None stays None)."""
    return None if secret is None else secret.reveal()


# --- value parsers: text -> typed value; raise ValueError with a human message --------------------------


def _parse_str(text: str) -> str:
    return text.strip()


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {text.strip()!r}") from None


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(f"expected true or false, got {text.strip()!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    """Kafka's comma-separated list; ``[a, b]`` as Connect prints a list in its start-up log is read too."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_secret(text: str) -> Secret:
    return Secret(text.strip())


def _choice(*allowed: str, upper: bool = True) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text.strip()!r}")
        return value

    return parse


CONVERTER_ALIASES = {
    "auto": "auto",
    "json": "json",
    "string": "string",
    "avro": "avro",
    "org.apache.kafka.connect.json.JsonConverter": "json",
    "org.apache.kafka.connect.storage.StringConverter": "string",
    "io.confluent.connect.avro.AvroConverter": "avro",
}


def _parse_converter(text: str) -> str:
    value = text.strip()
    short = CONVERTER_ALIASES.get(value) or CONVERTER_ALIASES.get(value.lower())
    if short is None:
        raise ValueError(f"expected one of {', '.join(CONVERTER_ALIASES)}, got {value!r}")
    return short


# --- validators: typed value -> None; raise ValueError ---------------------------------------------------


def _port_range(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"expected a port number 0..65535, got {value}")


def _positive(value: int) -> None:
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {value}")


def _non_negative(value: int) -> None:
    if value < 0:
        raise ValueError(f"expected 0 or a positive integer, got {value}")


def _retransmissions(value: int) -> None:
    if not 0 <= value <= MAX_RETRANSMIT_LIMIT:
        raise ValueError(f"expected 0..{MAX_RETRANSMIT_LIMIT} retransmissions, got {value}")


def _not_negative(value: int) -> None:
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {value}")


#: The server URI schemes: CoAP over UDP and DTLS (RFC 7252), over TCP and TLS (RFC 8323 §8).
COAP_SCHEMES = ("coap", "coaps", "coap+tcp", "coaps+tcp")


def _coap_uri(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in COAP_SCHEMES:
        raise ValueError(f"expected a coap://, coaps://, coap+tcp:// or coaps+tcp:// URI, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"a query or fragment is not allowed in the base URI {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    group = discovery_group(value)
    if group is not None and parts.scheme == "coaps":
        raise ValueError(
            f"{group.name} finds the server by a plain-CoAP multicast, and DTLS has no multicast "
            "(RFC 7252 §9.1): name the coaps:// server"
        )
    if group is not None and parts.scheme != "coap":
        raise ValueError(
            f"{group.name} finds the server by a CoAP multicast over UDP, and TCP has no multicast: name the "
            f"{parts.scheme}:// server"
        )


def _http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {without_password(value)!r}")


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":[hidden]@", 1)


def _content_format(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"expected a CoAP content-format number 0..65535, got {value}")


def _bootstrap(value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("expected at least one host:port")
    for server in value:
        hostport = server.split("://", 1)[-1]
        host, sep, port = hostport.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {server!r}")


REQUIRED = object()
#: Kafka Connect's ``errors.tolerance`` as an error policy.
TOLERANCE_POLICY = {"all": "NOOP", "none": "THROW"}


@dataclass(frozen=True)
class Key:
    """One configuration key: how to parse, validate and document it."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    validate: Callable[[Any], None] | None = None
    aliases: tuple[str, ...] = ()
    env_aliases: tuple[str, ...] = ()
    #: Older stream-reactor spellings: accepted with the same meaning, one warning at start.
    deprecated: tuple[str, ...] = ()
    #: The unit of an integer value: ``"ms"`` for durations (read in seconds through :func:`in_seconds`).
    unit: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def env_name(self) -> str:
        return env_name(self.name)


def env_name(key: str) -> str:
    return key.upper().replace(".", "_").replace("-", "_")


KEYS: tuple[Key, ...] = (
    # --- kept from stream-reactor -------------------------------------------------------------------------
    Key(
        "name",
        _parse_str,
        "coap-sink",
        "The sink's name: the consumer group is connect-<name> (as Kafka Connect names a sink's group).",
    ),
    Key(
        "topics",
        _parse_list,
        None,
        "Optional list of source topics; when given it must equal the set of topics the KCQL reads.",
    ),
    Key(
        "connect.coap.uri",
        _parse_str,
        REQUIRED,
        "Base URI of the CoAP server: coap://host[:port][/base/path], coaps:// (DTLS), coap+tcp:// or "
        "coaps+tcp:// (TCP, TLS: docs/tcp.md). Each statement's resource is appended.",
        validate=_coap_uri,
    ),
    Key("connect.coap.kcql", _parse_str, REQUIRED, "KCQL statements, separated by ';'."),
    Key(
        "connect.coap.host",
        _parse_str,
        "localhost",
        "Local address the DTLS client binds to (only when set: by default the system chooses).",
        deprecated=("connect.coap.bind.host", "connect.coap.sink.bind.host"),
    ),
    Key(
        "connect.coap.port",
        _parse_int,
        0,
        "Local port the DTLS client binds to (0 = any).",
        validate=_port_range,
        deprecated=("connect.coap.bind.port", "connect.coap.sink.bind.port"),
    ),
    Key(
        "connect.coap.username",
        _parse_str,
        None,
        "DTLS PSK identity.",
    ),
    Key(
        "connect.coap.password",
        _parse_secret,
        None,
        "DTLS PSK secret.",
    ),
    Key(
        "connect.coap.private.key.file",
        _parse_str,
        None,
        "PEM private key (PKCS#8, EC or RSA) for DTLS.",
    ),
    Key(
        "connect.coap.public.key.file",
        _parse_str,
        None,
        "PEM certificate (chain, leaf first) for DTLS, with connect.coap.private.key.file.",
    ),
    Key(
        "connect.coap.keystore.path",
        _parse_str,
        None,
        "JKS or PKCS#12 keystore holding the client key and certificate chain.",
    ),
    Key("connect.coap.keystore.pass", _parse_secret, Secret("rootPass"), "Keystore password."),
    Key(
        "connect.coap.truststore.path",
        _parse_str,
        None,
        "JKS or PKCS#12 truststore with the trusted certificates.",
    ),
    Key("connect.coap.truststore.pass", _parse_secret, Secret("rootPass"), "Truststore password."),
    Key(
        "connect.coap.certs",
        _parse_list,
        (),
        "Aliases of the trusted certificates in the truststore (empty = all).",
    ),
    Key(
        "connect.coap.cert.chain.key",
        _parse_str,
        "client",
        "Alias of the key entry in the keystore.",
    ),
    Key(
        "connect.coap.cipher.suites",
        _parse_list,
        (),
        "DTLS cipher suites to offer, IANA names (empty = every suite of the credentials' kind).",
        validate=check_suite_names,
    ),
    Key(
        "connect.coap.handshake.timeout",
        _parse_int,
        8000,
        "Milliseconds a DTLS handshake may take (a wrong PSK shows as silence until then); for coap+tcp:// "
        "and coaps+tcp://, the TCP connect, TLS handshake and the server's CSM together.",
        validate=_positive,
        unit="ms",
    ),
    Key(
        "connect.coap.error.policy",
        _choice("NOOP", "THROW", "RETRY"),
        "THROW",
        "What to do when a record cannot be delivered: NOOP, THROW or RETRY.",
    ),
    Key(
        "errors.tolerance",
        _choice("none", "all", upper=False),
        None,
        "Kafka Connect's error tolerance, read as the error policy: all = NOOP (records that fail go to the "
        "dead-letter topic when one is set, else are skipped with a log line), none = THROW.",
    ),
    Key(
        "errors.log.enable",
        _parse_bool,
        True,
        "Log a line for every record the sink skips or dead-letters (Kafka Connect's key; its default is "
        "false, streamapp's true: a record is never let go without a line unless this says so). "
        "They are counted either way; a stop is always logged.",
    ),
    Key(
        "errors.log.include.messages",
        _parse_bool,
        False,
        "Add the record's key and value (as text, clipped to 1 KiB each) to its failure lines.",
    ),
    Key(
        "connect.coap.max.retries",
        _parse_int,
        20,
        "Maximum resends of one record under RETRY.",
        validate=_not_negative,
        deprecated=("connect.coap.max.retires",),  # stream-reactor's own misspelling, printed at its start
    ),
    Key(
        "connect.coap.retry.interval",
        _parse_int,
        60000,
        "Milliseconds between resends under RETRY.",
        validate=_not_negative,
        unit="ms",
    ),
    Key(
        "connect.progress.enabled",
        _parse_bool,
        False,
        "Log a periodic progress line per statement.",
    ),
    Key(
        "connect.progress.interval",
        _parse_int,
        60000,
        "Milliseconds between progress lines (with connect.progress.enabled).",
        validate=_positive,
        unit="ms",
    ),
    # --- added ----------------------------------------------------------------------------------------------
    Key(
        "bootstrap.servers",
        _parse_list,
        ("localhost:9092",),
        "Kafka bootstrap servers, host:port[,host:port...].",
        validate=_bootstrap,
    ),
    Key(
        "value.converter",
        _parse_converter,
        "auto",
        "How record values are decoded: auto, json, string, avro or a Kafka Connect converter class name.",
    ),
    Key(
        "key.converter",
        _parse_converter,
        "auto",
        "How record keys are decoded (same choices as value.converter).",
    ),
    Key(
        "value.converter.schemas.enable",
        _parse_bool,
        None,
        "JSON values are Kafka Connect envelopes {schema, payload}: true requires one, false never unwraps "
        "one, unset unwraps a document whose keys are exactly schema and payload.",
    ),
    Key(
        "key.converter.schemas.enable",
        _parse_bool,
        None,
        "JSON keys are Kafka Connect envelopes (same choices as value.converter.schemas.enable).",
    ),
    Key(
        "schema.registry.url",
        _parse_str,
        None,
        "Confluent Schema Registry URL (http:// or https://), needed for Avro.",
        validate=_http_url,
        aliases=("value.converter.schema.registry.url", "key.converter.schema.registry.url"),
    ),
    Key(
        "connect.coap.max.payload",
        _parse_int,
        1024 * 1024,
        "Largest JSON body in bytes; a record whose body is larger fails before any request.",
        validate=_positive,
    ),
    Key(
        "connect.coap.decimal.format",
        _choice("number", "string", upper=False),
        "number",
        "How Avro and Kafka Connect decimals are written: number (exact JSON number) or string.",
    ),
    Key("connect.coap.method", _choice("PUT", "POST"), "PUT", "CoAP request method: PUT or POST."),
    Key(
        "connect.coap.message.type",
        _choice("CON", "NON"),
        "CON",
        "CoAP message type: CON (confirmable) or NON (non-confirmable; the response is still awaited).",
    ),
    Key(
        "connect.coap.content.format",
        _parse_int,
        50,
        "CoAP Content-Format option of each request (50 = application/json).",
        validate=_content_format,
    ),
    Key(
        "connect.coap.request.timeout",
        _parse_int,
        None,
        "Milliseconds to wait for the response to one request, retransmissions included "
        "(default: RFC 7252 MAX_TRANSMIT_WAIT of the two keys below plus one ACK_TIMEOUT, 95000 with their "
        "defaults).",
        validate=_positive,
        unit="ms",
    ),
    Key(
        "connect.coap.ack.timeout",
        _parse_int,
        2000,
        "RFC 7252 ACK_TIMEOUT in ms: the first wait before a confirmable request is sent again "
        "(each later wait doubles, times a random factor up to 1.5).",
        validate=_positive,
        unit="ms",
    ),
    Key(
        "connect.coap.max.retransmit",
        _parse_int,
        4,
        "RFC 7252 MAX_RETRANSMIT: how many times a confirmable request is sent again without an answer.",
        validate=_retransmissions,
    ),
    Key(
        "connect.coap.max.inflight",
        _parse_int,
        1,
        "Exchanges in flight per worker to the CoAP server, whatever their resources and partitions "
        "(1 = RFC 7252 NSTART); as a KCQL property, the most one statement may use of them.",
        validate=_positive,
    ),
    Key(
        "connect.coap.ordering",
        _choice("partition", "none", upper=False),
        "partition",
        "partition: one partition's records reach one resource in offset order, each request after the "
        "previous one's answer; none: no order (events POSTed, say).",
    ),
    Key(
        "task.shutdown.graceful.timeout.ms",
        _parse_int,
        5000,
        "Kafka Connect's stop grace: ms a stopping worker gives the requests in flight before it abandons "
        "them (their records are not committed and are read again).",
        validate=_non_negative,
        unit="ms",
    ),
    Key(
        "offset.flush.interval.ms",
        _parse_int,
        1000,
        "Kafka Connect's commit cadence: ms between commits of the delivered offsets. After a crash the "
        "next worker re-sends what was delivered since the last commit, so this bounds the duplicates "
        "(about one interval of records); each commit is one small request to the broker.",
        validate=_positive,
        unit="ms",
    ),
    Key(
        "connect.coap.tombstone",
        _choice("skip", "empty", "delete", upper=False),
        "skip",
        "What a tombstone (null value) does: skip (counted), empty (empty body) or delete (CoAP DELETE).",
    ),
    Key(
        "connect.coap.reply.topic",
        _parse_str,
        None,
        "Topic that receives one record per CoAP response: the source record's key and headers, the "
        "response payload as the value, and coap.code, coap.uri, coap.content.format, source.topic, "
        "source.partition, source.offset and kcql.statement headers (docs/replies.md). It is produced "
        "before the source offset is committed. A statement's PROPERTIES(reply.topic=...) overrides it.",
    ),
    Key(
        "connect.coap.reply.on",
        _choice("all", "success", "failure", upper=False),
        "all",
        "Which responses reach the reply topic: all, success (2.xx) or failure (4.xx, 5.xx; a request "
        "that got no response has nothing to reply). A statement's PROPERTIES(reply.on=...) overrides it.",
    ),
    Key(
        "connect.coap.oscore.context",
        _parse_str,
        None,
        "Directory of an OSCORE security context (RFC 8613, aiocoap's format: settings.json with "
        "sender-id and recipient-id, secret.json with the master secret and salt; the worker keeps "
        "sequence.json and a lock file there): every request to connect.coap.uri is protected with it "
        "(docs/oscore.md). A statement's PROPERTIES(oscore.context=...) overrides it; a statement with "
        "its own uri has none unless it names one.",
        validate=check_context_directory,
    ),
    Key(
        "errors.deadletterqueue.topic.name",
        _parse_str,
        None,
        "Topic that receives records that cannot be delivered, decoded or selected.",
    ),
    Key(
        "errors.deadletterqueue.context.headers.enable",
        _parse_bool,
        False,
        "Add error context headers to dead-lettered records.",
    ),
    Key(
        "web.port",
        _parse_int,
        6066,
        "Port of the worker's web server (stats page). The PORT environment variable also sets it.",
        validate=_port_range,
        env_aliases=("PORT",),
    ),
    Key("web.bind", _parse_str, "127.0.0.1", "Address the worker's web server binds to."),
    Key(
        "faust.datadir",
        _parse_str,
        None,
        "Directory for Faust's data (the worker keeps no table, so it holds nothing of value); default: a "
        "new temporary directory, removed at exit. The worker never writes into its working directory.",
    ),
    # --- Kafka client: consumer group and security, Kafka's own names (docs/production.md) ---------------
    Key(
        "consumer.override.group.id",
        _parse_str,
        None,
        "Kafka consumer group (default connect-<name>, Kafka Connect's group for this sink, so a "
        "worker replacing the Connect sink continues from its committed offsets).",
    ),
    Key(
        "consumer.override.auto.offset.reset",
        _choice("earliest", "latest", "none", upper=False),
        "earliest",
        "Where a partition without a committed offset starts: earliest, latest, or none (the worker "
        "stops, naming the partitions).",
    ),
    Key(
        "session.timeout.ms",
        _parse_int,
        6000,
        "Kafka consumer group session: a worker that stops heartbeating for this long loses its "
        "partitions. 6000 is the least a Kafka broker accepts (group.min.session.timeout.ms).",
        validate=_positive,
        aliases=("consumer.override.session.timeout.ms",),
        unit="ms",
    ),
    Key(
        "heartbeat.interval.ms",
        _parse_int,
        2000,
        "Milliseconds between the consumer's group heartbeats (less than a third of session.timeout.ms).",
        validate=_positive,
        aliases=("consumer.override.heartbeat.interval.ms",),
        unit="ms",
    ),
    Key(
        "security.protocol",
        _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "PLAINTEXT",
        "How the worker talks to Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        aliases=("consumer.override.security.protocol",),
    ),
    Key(
        "ssl.truststore.location",
        _parse_str,
        None,
        "Certificates the worker trusts for the broker (JKS, PKCS12 or PEM); unset: the system's CAs.",
        aliases=("consumer.override.ssl.truststore.location",),
    ),
    Key(
        "ssl.truststore.password",
        _parse_secret,
        None,
        "Password of ssl.truststore.location (JKS, PKCS12).",
        aliases=("consumer.override.ssl.truststore.password",),
    ),
    Key(
        "ssl.truststore.type",
        _choice("JKS", "PKCS12", "PEM"),
        None,
        "JKS, PKCS12 or PEM (default: recognised from the file).",
        aliases=("consumer.override.ssl.truststore.type",),
    ),
    Key(
        "ssl.keystore.location",
        _parse_str,
        None,
        "The worker's own key and certificate for brokers that verify clients (JKS, PKCS12 or PEM).",
        aliases=("consumer.override.ssl.keystore.location",),
    ),
    Key(
        "ssl.keystore.password",
        _parse_secret,
        None,
        "Password of ssl.keystore.location (JKS, PKCS12).",
        aliases=("consumer.override.ssl.keystore.password",),
    ),
    Key(
        "ssl.keystore.type",
        _choice("JKS", "PKCS12", "PEM"),
        None,
        "JKS, PKCS12 or PEM (default: recognised from the file).",
        aliases=("consumer.override.ssl.keystore.type",),
    ),
    Key(
        "ssl.key.password",
        _parse_secret,
        None,
        "Password of the private key in the keystore (default: the keystore password).",
        aliases=("consumer.override.ssl.key.password",),
    ),
    Key(
        "ssl.endpoint.identification.algorithm",
        _choice("https", "", upper=False),
        "https",
        "https: the broker's certificate must name the host the worker connects to; empty: not checked.",
        aliases=("consumer.override.ssl.endpoint.identification.algorithm",),
    ),
    Key(
        "sasl.mechanism",
        _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "PLAIN",
        "SASL mechanism with SASL_PLAINTEXT / SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
        aliases=("consumer.override.sasl.mechanism",),
    ),
    Key(
        "sasl.jaas.config",
        _parse_secret,
        None,
        "The SASL login, as Kafka writes it: org.apache.kafka.common.security.plain.PlainLoginModule "
        '(or scram.ScramLoginModule) required username="..." password="...";',
        aliases=("consumer.override.sasl.jaas.config",),
    ),
    Key(
        "log.format",
        _choice("console", "json", upper=False),
        "console",
        "Log line format: console or json.",
    ),
)

KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
MS_PER_S = 1000.0


def default_of(name: str) -> Any:
    """The default of a key, as ``KEYS`` defines it (code that needs a default reads it here)."""
    return KEYS_BY_NAME[name].default


def in_seconds(name: str, value: int | None) -> float | None:
    """A duration key's value in seconds (its unit is the key's, in ``KEYS``); None stays None."""
    if KEYS_BY_NAME[name].unit != "ms":
        raise TypeError(f"{name} is not a duration in ms")
    return None if value is None else value / MS_PER_S


def default_seconds(name: str) -> float:
    """A duration key's default in seconds."""
    seconds = in_seconds(name, default_of(name))
    assert seconds is not None, name
    return seconds


ALIAS_TO_KEY: dict[str, Key] = {alias: k for k in KEYS for alias in (k.name, *k.aliases, *k.deprecated)}

#: Keys of stream-reactor or Kafka Connect that have no effect on this sink, with the reason ``check`` and
#: the start-up warning give. They are accepted so that those property files run unchanged.
WITHOUT_EFFECT: dict[str, str] = {
    "connect.coap.batch.size": (
        "stream-reactor's CoAP source batching into Kafka; this sink sends every record as it comes "
        "(KCQL BATCH groups records into one request)"
    ),
    "connect.source.linger.ms": "stream-reactor's CoAP source setting; a sink has nothing to linger",
    "tasks.max": (
        "Kafka Connect's task count; run more workers with the same name and they share the partitions"
    ),
    "tasks": "Kafka Connect's task count (an old spelling of tasks.max); run more workers to share them",
}

#: ``connector.class`` names a Connect plugin; a file naming another connector is not this sink's.
CONNECTOR_CLASS = "connector.class"
CONNECTOR_CLASS_SUFFIX = ".CoapSinkConnector"
