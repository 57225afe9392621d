"""Every configuration key once: its name and spellings, type (parser), default, unit, validator and doc,
and the typed attribute that reads it.

Why one place: a key's name, default and unit written twice drift apart (a default in the code and another
in the docs, a duration read in the wrong unit). So ``KEYS`` is the one definition the rest reads, in the
manner of Kafka Connect's ConfigDef: ``settings.py`` resolves a configuration from it, KCQL ``PROPERTIES``
parse with it, option objects take their defaults from it (``default_of``, ``default_seconds``), and
docs/configuration.md is generated from it (``make docs``, tools/configuration_doc.py).

Why keys are class attributes: as in Faust's settings, the declaration is also the typed attribute. Each
:class:`Key` is a descriptor declared in a :class:`KeyGroup` (a section of the reference); ``Settings``
inherits every group (:class:`KeyAttributes`), so ``settings.max_retries`` is an ``int`` to a type checker
and reads ``connect.coap.max.retries`` at run time, without a second declaration. A duration declared in ms
is also read in seconds through :class:`Seconds` (``retry_interval_s``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, overload
from urllib.parse import urlsplit

from streamapp.config.dtls_suites import check_suite_names
from streamapp.config.oscore_context import check_context_directory
from streamapp.config.uris import check_server_uri

#: More retransmissions than this make one exchange last hours (the waits double each time).
MAX_RETRANSMIT_LIMIT = 10

T = TypeVar("T")
V = TypeVar("V")


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


def _parse_name(text: str) -> str | None:
    """A name that may be left empty: ``""`` means unset (None), as an empty Kafka Connect value does."""
    return text.strip() or None


class Parser(Generic[V]):
    """Text -> a typed value (ValueError with a human message), with the type's name in the reference.

    A class and not a bare function so that a key's type comes from its parser alone: ``Key`` infers its
    attribute type from ``Parser[V]`` (invariant), not from the literal of its default.
    """

    __slots__ = ("parse", "type_name")

    def __init__(self, type_name: str, parse: Callable[[str], V]) -> None:
        self.type_name = type_name
        self.parse = parse

    def __call__(self, text: str) -> V:
        return self.parse(text)

    def __repr__(self) -> str:
        return f"Parser({self.type_name!r})"


class Choice(Parser[str]):
    """One of a fixed set of words (upper- or lower-cased before the comparison); the set is documented."""

    __slots__ = ("allowed", "upper")

    def __init__(self, *allowed: str, upper: bool = True) -> None:
        super().__init__(
            "one of " + ", ".join(f"`{word}`" if word else '`""`' for word in allowed), self._pick
        )
        self.allowed = allowed
        self.upper = upper

    def _pick(self, text: str) -> str:
        value = text.strip().upper() if self.upper else text.strip().lower()
        if value not in self.allowed:
            raise ValueError(f"expected one of {', '.join(self.allowed)}, got {text.strip()!r}")
        return value


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


STRING = Parser("string", _parse_str)
OPTIONAL_NAME = Parser("string", _parse_name)
INT = Parser("int", _parse_int)
BOOLEAN = Parser("boolean", _parse_bool)
LIST = Parser("list", _parse_list)
PASSWORD = Parser("password", _parse_secret)
CONVERTER = Parser("converter", _parse_converter)


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


class _Required(Enum):
    """The default of a key without one: the configuration must set it."""

    REQUIRED = "required"

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required.REQUIRED
#: Kafka Connect's ``errors.tolerance`` as an error policy.
TOLERANCE_POLICY = {"all": "NOOP", "none": "THROW"}
MS_PER_S = 1000.0


class Resolved(Protocol):
    """What a key's attribute reads its value from: a resolved configuration (``settings.Settings``)."""

    @property
    def values(self) -> Mapping[str, Any]: ...


class Key(Generic[T]):
    """One configuration key: how to parse, validate and document it, and the typed attribute reading it.

    A key is declared as a class attribute of a :class:`KeyGroup`; the attribute's name is the name code
    reads it by (``settings.max_retries``) and ``T``, the attribute's type, is its parser's type, with None
    added when the default is None (the key may be unset). ``Settings`` inherits every group, so the
    declaration here is the typed attribute there: nothing re-states a key's name, type or default.
    """

    __slots__ = (
        "aliases",
        "attribute",
        "default",
        "default_doc",
        "deprecated",
        "doc",
        "env_aliases",
        "group",
        "name",
        "parse",
        "unit",
        "validate",
    )

    name: str
    parse: Parser[Any]
    default: T | Literal[_Required.REQUIRED]
    #: Markdown, one paragraph: it is a table cell of docs/configuration.md.
    doc: str
    #: Takes the parsed value (never the default).
    validate: Callable[[Any], None] | None
    aliases: tuple[str, ...]
    env_aliases: tuple[str, ...]
    #: Older stream-reactor spellings: accepted with the same meaning, one warning at start.
    deprecated: tuple[str, ...]
    #: The unit of an integer value: ``"ms"`` for durations (read in seconds through :func:`in_seconds`
    #: and :class:`Seconds`), ``"bytes"`` for sizes.
    unit: str | None
    #: How the reference words a default that is computed at start or means "not set" (its value is
    #: None or empty); a concrete default is printed as it is.
    default_doc: str | None
    #: The attribute name in its group, and the group (a section of docs/configuration.md): set when the
    #: group class is made.
    attribute: str
    group: type[KeyGroup] | None

    @overload
    def __init__(
        self: Key[V | None],
        name: str,
        parse: Parser[V],
        default: None,
        doc: str,
        *,
        validate: Callable[[V], None] | None = None,
        aliases: tuple[str, ...] = (),
        env_aliases: tuple[str, ...] = (),
        deprecated: tuple[str, ...] = (),
        unit: str | None = None,
        default_doc: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Key[V],
        name: str,
        parse: Parser[V],
        default: V | Literal[_Required.REQUIRED],
        doc: str,
        *,
        validate: Callable[[V], None] | None = None,
        aliases: tuple[str, ...] = (),
        env_aliases: tuple[str, ...] = (),
        deprecated: tuple[str, ...] = (),
        unit: str | None = None,
        default_doc: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        name: str,
        parse: Parser[Any],
        default: Any,
        doc: str,
        *,
        validate: Callable[[Any], None] | None = None,
        aliases: tuple[str, ...] = (),
        env_aliases: tuple[str, ...] = (),
        deprecated: tuple[str, ...] = (),
        unit: str | None = None,
        default_doc: str | None = None,
    ) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.doc = doc
        self.validate = validate
        self.aliases = aliases
        self.env_aliases = env_aliases
        self.deprecated = deprecated
        self.unit = unit
        self.default_doc = default_doc
        self.attribute = ""
        self.group = None

    def __repr__(self) -> str:
        return f"Key({self.name!r})"

    def __set_name__(self, owner: type, name: str) -> None:
        if not issubclass(owner, KeyGroup) or self.group is not None:
            raise TypeError(f"{self.name}: a key is declared once, in a KeyGroup")
        self.attribute = name
        self.group = owner

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Key[T]: ...

    @overload
    def __get__(self, obj: Resolved, owner: type | None = None) -> T: ...

    def __get__(self, obj: Resolved | None, owner: type | None = None) -> T | Key[T]:
        if obj is None:
            return self
        value: T = obj.values[self.name]
        return value

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def env_name(self) -> str:
        return env_name(self.name)

    @property
    def type_name(self) -> str:
        """The value's type as the reference names it (Kafka Connect's ConfigDef types where they fit)."""
        return self.parse.type_name


class Seconds:
    """A duration key (unit ``ms``, with a default) read in seconds, the unit the code works in:
    ``retry_interval_s = Seconds(retry_interval_ms)`` in a group is the same key, converted."""

    def __init__(self, key: Key[int]) -> None:
        if key.unit != "ms" or key.default is None:
            raise TypeError(f"{key.name} is not a duration in ms with a default")
        self.key = key

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Seconds: ...

    @overload
    def __get__(self, obj: Resolved, owner: type | None = None) -> float: ...

    def __get__(self, obj: Resolved | None, owner: type | None = None) -> float | Seconds:
        if obj is None:
            return self
        milliseconds: float = obj.values[self.key.name]
        return milliseconds / MS_PER_S


def env_name(key: str) -> str:
    return key.upper().replace(".", "_").replace("-", "_")


class KeyGroup:
    """A section of the configuration reference. The docstring's first line is the section's title, the
    rest its introduction; the keys are the class's :class:`Key` attributes, in declaration order."""


class SinkGroup(KeyGroup):
    """The sink

    What is read and where it goes. `name`, `topics` and the `connect.coap.*` keys keep stream-reactor's
    names, so an existing `coap-sink.properties` runs unchanged.
    """

    app_name = Key(
        "name",
        STRING,
        "coap-sink",
        "The sink's name: the consumer group is `connect-<name>`, as Kafka Connect names a sink's group, so "
        "a worker replacing the Connect sink continues from its committed offsets.",
    )
    topics = Key(
        "topics",
        LIST,
        None,
        "Optional list of source topics; when given it must equal the set of topics the KCQL reads.",
    )
    uri = Key(
        "connect.coap.uri",
        STRING,
        REQUIRED,
        "Base URI of the CoAP server: coap://host[:port][/base/path], coaps:// (DTLS), coap+tcp:// or "
        "coaps+tcp:// (TCP, TLS: [tcp.md](tcp.md)). Each statement's resource is appended. The host "
        "discoverIP4 or discoverIP6 finds the server by multicast at start "
        "([below](#discoverip4-and-discoverip6)).",
        validate=check_server_uri,
    )
    kcql = Key(
        "connect.coap.kcql",
        STRING,
        REQUIRED,
        "KCQL statements, separated by ';'.",
    )


class RequestGroup(KeyGroup):
    """CoAP requests

    How each record becomes a request. A statement's KCQL `PROPERTIES` may override some of them (marked
    *KCQL* under *Also written as*), each parsed and checked as the key it overrides.
    """

    method = Key("connect.coap.method", Choice("PUT", "POST"), "PUT", "CoAP request method.")
    message_type = Key(
        "connect.coap.message.type",
        Choice("CON", "NON"),
        "CON",
        "CoAP message type: CON (confirmable) or NON (non-confirmable; the response is still awaited).",
    )
    content_format = Key(
        "connect.coap.content.format",
        INT,
        50,
        "CoAP Content-Format option of each request (50 = application/json).",
        validate=_content_format,
    )
    request_timeout_ms = Key(
        "connect.coap.request.timeout",
        INT,
        None,
        "Time to wait for the response to one request, retransmissions included; by default RFC 7252's "
        "MAX_TRANSMIT_WAIT of the two keys below plus one ACK_TIMEOUT, so the timeout never cuts CoAP "
        "retransmission short.",
        validate=_positive,
        unit="ms",
        default_doc="MAX_TRANSMIT_WAIT + ACK_TIMEOUT (95000 with the defaults)",
    )
    ack_timeout_ms = Key(
        "connect.coap.ack.timeout",
        INT,
        2000,
        "RFC 7252 ACK_TIMEOUT: the first wait before an unanswered confirmable request is sent again "
        "(each later wait doubles, times a random factor up to 1.5).",
        validate=_positive,
        unit="ms",
    )
    max_retransmit = Key(
        "connect.coap.max.retransmit",
        INT,
        4,
        f"RFC 7252 MAX_RETRANSMIT (0-{MAX_RETRANSMIT_LIMIT}): how many times a confirmable request is "
        "sent again without an answer before it fails (retriable).",
        validate=_retransmissions,
    )
    max_inflight = Key(
        "connect.coap.max.inflight",
        INT,
        1,
        "The window: exchanges in flight per worker to the CoAP server, whatever their statements, "
        "resources and partitions (1 = RFC 7252 NSTART, the safe choice for a constrained server); as a "
        "KCQL property, the most one statement may use of them.",
        validate=_positive,
    )
    ordering = Key(
        "connect.coap.ordering",
        Choice("partition", "none", upper=False),
        "partition",
        "partition: one partition's records reach one resource in offset order, each request sent after "
        "the previous one's answer (partitions overlap); none: no order at all (events POSTed, say).",
    )
    tombstone = Key(
        "connect.coap.tombstone",
        Choice("skip", "empty", "delete", upper=False),
        "skip",
        "What a tombstone (null value) does: skip (counted, not sent), empty (the request with an empty "
        "body) or delete (a CoAP DELETE to the record's resource).",
    )
    max_payload = Key(
        "connect.coap.max.payload",
        INT,
        1024 * 1024,
        "Largest JSON body; a record whose body is larger fails before any request (a batch closes "
        "before it).",
        validate=_positive,
        unit="bytes",
    )


class PayloadGroup(KeyGroup):
    """Payloads

    How record keys and values are decoded.
    """

    value_converter = Key(
        "value.converter",
        CONVERTER,
        "auto",
        "How record values are decoded: auto, json, string, avro, or Kafka Connect's class names "
        "io.confluent.connect.avro.AvroConverter, org.apache.kafka.connect.json.JsonConverter, "
        "org.apache.kafka.connect.storage.StringConverter.",
    )
    key_converter = Key(
        "key.converter",
        CONVERTER,
        "auto",
        "How record keys are decoded, for `_key` selections and `{_key}` templates (same choices as "
        "value.converter).",
    )
    value_envelope = Key(
        "value.converter.schemas.enable",
        BOOLEAN,
        None,
        "JSON values are Kafka Connect envelopes {schema, payload}: true requires one, false never unwraps "
        "one, unset unwraps a document whose keys are exactly schema and payload.",
    )
    key_envelope = Key(
        "key.converter.schemas.enable",
        BOOLEAN,
        None,
        "JSON keys are Kafka Connect envelopes (same choices as value.converter.schemas.enable).",
    )
    registry_url = Key(
        "schema.registry.url",
        STRING,
        None,
        "Confluent Schema Registry, `http(s)://[user:pass@]host:port`; required for avro. The password "
        "prints as `[hidden]`.",
        validate=_http_url,
        aliases=("value.converter.schema.registry.url", "key.converter.schema.registry.url"),
    )
    decimal_format = Key(
        "connect.coap.decimal.format",
        Choice("number", "string", upper=False),
        "number",
        "How Avro and Kafka Connect decimals are written: number (an exact JSON number) or string.",
    )


class ErrorGroup(KeyGroup):
    """Errors and dead letters

    What happens to a record that cannot be delivered, decoded or selected.
    """

    configured_error_policy = Key(
        "connect.coap.error.policy",
        Choice("NOOP", "THROW", "RETRY"),
        "THROW",
        "What to do when a record cannot be delivered: NOOP, THROW or RETRY.",
    )
    errors_tolerance = Key(
        "errors.tolerance",
        Choice("none", "all", upper=False),
        None,
        "Kafka Connect's error tolerance, read as the error policy: all = NOOP (records that fail go to the "
        "dead-letter topic when one is set, else are skipped with a log line), none = THROW. It must agree "
        "with connect.coap.error.policy when both are set.",
    )
    log_failures = Key(
        "errors.log.enable",
        BOOLEAN,
        True,
        "Log a line for every record the sink skips or dead-letters (Kafka Connect's key; its default is "
        "false, streamapp's true: a record is never let go without a line unless this says so). "
        "They are counted either way; a stop is always logged.",
    )
    log_failed_messages = Key(
        "errors.log.include.messages",
        BOOLEAN,
        False,
        "Add the record's key and value (as text, clipped to 1 KiB each) to its failure lines.",
    )
    max_retries = Key(
        "connect.coap.max.retries",
        INT,
        20,
        "Maximum resends of one record under RETRY.",
        validate=_not_negative,
        deprecated=("connect.coap.max.retires",),  # stream-reactor's own misspelling, printed at its start
    )
    retry_interval_ms = Key(
        "connect.coap.retry.interval",
        INT,
        60000,
        "Time between resends under RETRY.",
        validate=_not_negative,
        unit="ms",
    )
    retry_interval_s = Seconds(retry_interval_ms)
    dead_letter_topic = Key(
        "errors.deadletterqueue.topic.name",
        OPTIONAL_NAME,
        None,
        "Kafka topic for the records the sink gives up on (original key, value and headers); empty = none.",
    )
    dead_letter_context = Key(
        "errors.deadletterqueue.context.headers.enable",
        BOOLEAN,
        False,
        "Add the error context headers (`__connect.errors.*`, `__streamapp.errors.*`) to dead-lettered "
        "records.",
    )


class ReplyGroup(KeyGroup):
    """Answers back to Kafka

    A topic that receives the devices' answers, one record per CoAP response ([replies.md](replies.md)).
    """

    reply_topic = Key(
        "connect.coap.reply.topic",
        STRING,
        None,
        "Topic that receives one record per CoAP response: the source record's key and headers, the "
        "response payload as the value, and coap.code, coap.uri, coap.content.format, source.topic, "
        "source.partition, source.offset and kcql.statement headers. It is produced before the source "
        "offset is committed. A statement's PROPERTIES(reply.topic=...) overrides it.",
    )
    reply_on = Key(
        "connect.coap.reply.on",
        Choice("all", "success", "failure", upper=False),
        "all",
        "Which responses reach the reply topic: all, success (2.xx) or failure (4.xx, 5.xx; a request "
        "that got no response has nothing to reply). A statement's PROPERTIES(reply.on=...) overrides it.",
    )


class KafkaGroup(KeyGroup):
    """Kafka client

    Kafka's own names. The consumer keys and the security keys are also accepted with the
    `consumer.override.` prefix of a Connect sink's configuration (docs/production.md).
    """

    bootstrap_servers = Key(
        "bootstrap.servers",
        LIST,
        ("localhost:9092",),
        "Kafka bootstrap servers, host:port[,host:port...].",
        validate=_bootstrap,
    )
    configured_group_id = Key(
        "consumer.override.group.id",
        STRING,
        None,
        "Kafka consumer group (by default Kafka Connect's group for this sink, so a worker replacing the "
        "Connect sink continues from its committed offsets).",
        default_doc="`connect-<name>`",
    )
    auto_offset_reset = Key(
        "consumer.override.auto.offset.reset",
        Choice("earliest", "latest", "none", upper=False),
        "earliest",
        "Where a partition without a committed offset starts: earliest, latest, or none (the worker "
        "stops, naming the partitions).",
    )
    session_timeout_ms = Key(
        "session.timeout.ms",
        INT,
        6000,
        "Kafka consumer group session: a worker that stops heartbeating for this long loses its "
        "partitions; also the join time on Tansu (half of it). 6000 is the least a Kafka broker accepts "
        "(group.min.session.timeout.ms).",
        validate=_positive,
        aliases=("consumer.override.session.timeout.ms",),
        unit="ms",
    )
    session_timeout_s = Seconds(session_timeout_ms)
    heartbeat_interval_ms = Key(
        "heartbeat.interval.ms",
        INT,
        2000,
        "Time between the consumer's group heartbeats (less than a third of session.timeout.ms).",
        validate=_positive,
        aliases=("consumer.override.heartbeat.interval.ms",),
        unit="ms",
    )
    heartbeat_interval_s = Seconds(heartbeat_interval_ms)
    commit_interval_ms = Key(
        "offset.flush.interval.ms",
        INT,
        1000,
        "Kafka Connect's commit cadence: time between commits of the delivered offsets. After a crash the "
        "next worker re-sends what was delivered since the last commit, so this bounds the duplicates "
        "(about one interval of records); each commit is one small request to the broker.",
        validate=_positive,
        unit="ms",
    )
    commit_interval_s = Seconds(commit_interval_ms)
    stop_grace_ms = Key(
        "task.shutdown.graceful.timeout.ms",
        INT,
        5000,
        "Kafka Connect's stop grace: on SIGTERM (or a THROW stop) the requests in flight get this long, "
        "then are abandoned; what was delivered is committed, the rest is read again.",
        validate=_non_negative,
        unit="ms",
    )
    stop_grace_s = Seconds(stop_grace_ms)


class KafkaSecurityGroup(KeyGroup):
    """Kafka security

    TLS and SASL to the brokers (docs/production.md). The `ssl.*` keys apply with SSL and SASL_SSL, the
    `sasl.*` keys with SASL_PLAINTEXT and SASL_SSL; one set where the protocol would not use it is an error.
    """

    security_protocol = Key(
        "security.protocol",
        Choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "PLAINTEXT",
        "How the worker talks to Kafka.",
        aliases=("consumer.override.security.protocol",),
    )
    ssl_truststore_location = Key(
        "ssl.truststore.location",
        STRING,
        None,
        "The CAs the broker's certificate must chain to (JKS, PKCS12 or PEM).",
        aliases=("consumer.override.ssl.truststore.location",),
        default_doc="the system's CAs",
    )
    ssl_truststore_password = Key(
        "ssl.truststore.password",
        PASSWORD,
        None,
        "Password of ssl.truststore.location (JKS, PKCS12).",
        aliases=("consumer.override.ssl.truststore.password",),
    )
    ssl_truststore_type = Key(
        "ssl.truststore.type",
        Choice("JKS", "PKCS12", "PEM"),
        None,
        "The truststore's format.",
        aliases=("consumer.override.ssl.truststore.type",),
        default_doc="recognised from the file",
    )
    ssl_keystore_location = Key(
        "ssl.keystore.location",
        STRING,
        None,
        "The worker's own key and certificate for brokers that verify clients (JKS, PKCS12 or PEM).",
        aliases=("consumer.override.ssl.keystore.location",),
    )
    ssl_keystore_password = Key(
        "ssl.keystore.password",
        PASSWORD,
        None,
        "Password of ssl.keystore.location (JKS, PKCS12).",
        aliases=("consumer.override.ssl.keystore.password",),
    )
    ssl_keystore_type = Key(
        "ssl.keystore.type",
        Choice("JKS", "PKCS12", "PEM"),
        None,
        "The keystore's format.",
        aliases=("consumer.override.ssl.keystore.type",),
        default_doc="recognised from the file",
    )
    key_password = Key(
        "ssl.key.password",
        PASSWORD,
        None,
        "Password of the private key in the keystore (PEM keystores: of the encrypted key).",
        aliases=("consumer.override.ssl.key.password",),
        default_doc="the keystore password",
    )
    ssl_endpoint_identification_algorithm = Key(
        "ssl.endpoint.identification.algorithm",
        Choice("https", "", upper=False),
        "https",
        "https: the broker's certificate must name the host the worker connects to; empty: not checked.",
        aliases=("consumer.override.ssl.endpoint.identification.algorithm",),
    )
    sasl_mechanism = Key(
        "sasl.mechanism",
        Choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "PLAIN",
        "SASL mechanism with SASL_PLAINTEXT / SASL_SSL.",
        aliases=("consumer.override.sasl.mechanism",),
    )
    sasl_jaas_config = Key(
        "sasl.jaas.config",
        PASSWORD,
        None,
        "The SASL login, as Kafka writes it: `org.apache.kafka.common.security.plain.PlainLoginModule "
        'required username="..." password="...";` (`scram.ScramLoginModule` for SCRAM).',
        aliases=("consumer.override.sasl.jaas.config",),
    )


class DtlsGroup(KeyGroup):
    """DTLS

    Only with a `coaps://` server (a key set with `coap://` is reported by `check`). Credentials are chosen
    as stream-reactor did: a PSK when `connect.coap.username` is set, else PEM keys when
    `connect.coap.private.key.file` is set, else the keystore. A `coaps+tcp://` server reads the X.509 keys
    for its TLS connection: the truststore (required), and the PEM keys or the keystore when the server asks
    for a client certificate ([tcp.md](tcp.md)).
    """

    dtls_username = Key("connect.coap.username", STRING, None, "DTLS PSK identity.")
    dtls_password = Key("connect.coap.password", PASSWORD, None, "DTLS PSK secret (its UTF-8 bytes).")
    dtls_private_key_file = Key(
        "connect.coap.private.key.file",
        STRING,
        None,
        "PEM private key (PKCS#8, or traditional EC/RSA; not encrypted).",
    )
    dtls_public_key_file = Key(
        "connect.coap.public.key.file",
        STRING,
        None,
        "PEM certificate chain, leaf first, with connect.coap.private.key.file.",
    )
    dtls_keystore_path = Key(
        "connect.coap.keystore.path",
        STRING,
        None,
        "The client key and certificate chain: JKS, JCEKS or PKCS#12, recognised by content.",
    )
    dtls_keystore_pass = Key("connect.coap.keystore.pass", PASSWORD, Secret("rootPass"), "Keystore password.")
    dtls_cert_chain_key = Key(
        "connect.coap.cert.chain.key",
        STRING,
        "client",
        "Alias of the key entry in the keystore.",
    )
    dtls_truststore_path = Key(
        "connect.coap.truststore.path",
        STRING,
        None,
        "The CAs the server must chain to: JKS, PKCS#12 or a PEM bundle; required with certificates.",
    )
    dtls_truststore_pass = Key(
        "connect.coap.truststore.pass", PASSWORD, Secret("rootPass"), "Truststore password."
    )
    dtls_certs = Key(
        "connect.coap.certs",
        LIST,
        (),
        "Aliases of the trusted entries in the truststore to use.",
        default_doc="all",
    )
    dtls_cipher_suites = Key(
        "connect.coap.cipher.suites",
        LIST,
        (),
        "DTLS cipher suites to offer, IANA names, narrowing the defaults.",
        validate=check_suite_names,
        default_doc="every suite of the credentials' kind",
    )
    handshake_timeout_ms = Key(
        "connect.coap.handshake.timeout",
        INT,
        8000,
        "Time a DTLS handshake may take; a wrong PSK shows as silence, so this bounds how long it takes to "
        "say so. Within it, an attempt whose flight stays unanswered through Mbed TLS' 1, 2, 4 s resends "
        "(about 7 s) is replaced by a fresh one; on lossy links raise it (the 20 % loss tests use 30000). "
        "For coap+tcp:// and coaps+tcp://, the time the TCP connect, the TLS handshake and the server's CSM "
        "may take together.",
        validate=_positive,
        unit="ms",
    )
    handshake_timeout_s = Seconds(handshake_timeout_ms)
    bind_host = Key(
        "connect.coap.host",
        STRING,
        "localhost",
        "Local address the DTLS client binds to, used only when this or connect.coap.port is set (the "
        "defaults would tie the client to loopback; otherwise the system chooses).",
        deprecated=("connect.coap.bind.host", "connect.coap.sink.bind.host"),
    )
    bind_port = Key(
        "connect.coap.port",
        INT,
        0,
        "Local port the DTLS client binds to (0 = any), used only when set, as connect.coap.host.",
        validate=_port_range,
        deprecated=("connect.coap.bind.port", "connect.coap.sink.bind.port"),
    )


class OscoreGroup(KeyGroup):
    """OSCORE

    End-to-end protection of each request (RFC 8613, [oscore.md](oscore.md)), over any transport.
    """

    oscore_context = Key(
        "connect.coap.oscore.context",
        STRING,
        None,
        "Directory of an OSCORE security context (aiocoap's format: settings.json with sender-id and "
        "recipient-id, secret.json with the master secret and salt; the worker keeps sequence.json and a "
        "lock file there): every request to connect.coap.uri is protected with it. A statement's "
        "PROPERTIES(oscore.context=...) overrides it; a statement with its own uri has none unless it "
        "names one.",
        validate=check_context_directory,
    )


class WorkerGroup(KeyGroup):
    """The worker

    Its web server, logs, progress lines and data directory.
    """

    web_port = Key(
        "web.port",
        INT,
        6066,
        "Port of the worker's web server (stats page, /metrics, probes).",
        validate=_port_range,
        env_aliases=("PORT",),
    )
    web_bind = Key(
        "web.bind",
        STRING,
        "127.0.0.1",
        "Address the worker's web server binds to (the Procfile's `web:` binds 0.0.0.0).",
    )
    log_format = Key("log.format", Choice("console", "json", upper=False), "console", "Log line format.")
    progress_enabled = Key(
        "connect.progress.enabled",
        BOOLEAN,
        False,
        "Log a periodic progress line per statement (delivered, failed, retried, skipped, dead-lettered, "
        "rate).",
    )
    progress_interval_ms = Key(
        "connect.progress.interval",
        INT,
        60000,
        "Time between progress lines (with connect.progress.enabled).",
        validate=_positive,
        unit="ms",
    )
    progress_interval_s = Seconds(progress_interval_ms)
    datadir = Key(
        "faust.datadir",
        STRING,
        None,
        "Directory for Faust's data (the worker keeps no table, so it holds nothing of value). By default "
        "a new `streamapp-*` directory under `$TMPDIR`, removed at exit: the worker never writes into its "
        "working directory.",
        default_doc="a new temporary directory",
    )


class KeyAttributes(
    SinkGroup,
    RequestGroup,
    PayloadGroup,
    ErrorGroup,
    ReplyGroup,
    KafkaGroup,
    KafkaSecurityGroup,
    DtlsGroup,
    OscoreGroup,
    WorkerGroup,
):
    """Every key as a typed attribute, group by group; ``settings.Settings`` derives from this class.
    Its bases are the sections of the reference, in order."""


GROUPS: tuple[type[KeyGroup], ...] = KeyAttributes.__bases__


def keys_of(group: type[KeyGroup]) -> tuple[Key[Any], ...]:
    """The keys a group declares, in declaration order."""
    return tuple(value for value in vars(group).values() if isinstance(value, Key))


KEYS: tuple[Key[Any], ...] = tuple(key for group in GROUPS for key in keys_of(group))
KEYS_BY_NAME: dict[str, Key[Any]] = {k.name: k for k in KEYS}
if len(KEYS_BY_NAME) != len(KEYS) or len({k.attribute for k in KEYS}) != len(KEYS):
    raise TypeError("a key name or attribute is declared twice")  # a later group would shadow the first


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


ALIAS_TO_KEY: dict[str, Key[Any]] = {alias: k for k in KEYS for alias in (k.name, *k.aliases, *k.deprecated)}

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
