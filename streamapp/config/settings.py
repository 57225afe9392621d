"""Typed settings, in the manner of Kafka Connect's ConfigDef: a configuration resolved once, frozen.

Every key has a type, a default, a unit, a validator and a doc string, declared once in ``KEYS``
(``streamapp/config/keys.py``); ``Settings`` inherits the keys' typed attributes from there rather than
re-declaring them, so a key's name, type and default cannot disagree between the two modules. What this
module adds is resolution and the checks across keys. Values come from, later wins:
built-in defaults < a ``.properties`` file named by ``STREAMAPP_CONFIG`` < environment variables (the key
upper-cased with ``.`` turned into ``_``: ``CONNECT_COAP_KCQL``). Keys keep stream-reactor's names so an
existing ``coap-sink.properties`` runs unchanged.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import javaproperties

from streamapp.config.jaas import LOGIN_MODULES, parse_jaas
from streamapp.config.keys import (
    ALIAS_TO_KEY,
    CONNECTOR_CLASS,
    CONNECTOR_CLASS_SUFFIX,
    KEYS,
    KEYS_BY_NAME,
    TOLERANCE_POLICY,
    WITHOUT_EFFECT,
    DtlsGroup,
    ErrorGroup,
    KafkaSecurityGroup,
    KeyAttributes,
    Secret,
    env_name,
    in_seconds,
    without_password,
)
from streamapp.errors import ConfigError, KcqlError
from streamapp.kcql import Statement, parse_kcql
from streamapp.kcql.model import STATEMENT_PROPERTIES

CONFIG_ENV = "STREAMAPP_CONFIG"


@dataclass(frozen=True)
class StoreLocation:
    """A Kafka client keystore or truststore as configured: the key naming it, its file, password, type."""

    key: str
    path: str
    password: Secret | None
    kind: str | None  # JKS, PKCS12, PEM; None = recognised from the file


@dataclass(frozen=True)
class DtlsKeys:
    """The worker's DTLS keys (``connect.coap.*``) as configured, typed; secrets stay wrapped."""

    username: str | None
    password: Secret | None
    private_key_file: str | None
    public_key_file: str | None
    keystore_path: str | None
    keystore_pass: Secret | None
    truststore_path: str | None
    truststore_pass: Secret | None
    certs: tuple[str, ...]
    cert_chain_key: str
    cipher_suites: tuple[str, ...]
    handshake_timeout_s: float
    #: ``connect.coap.host``/``.port``, only when one was set: stream-reactor's defaults (localhost:0)
    #: would tie the client to the loopback interface, so the system chooses unless somebody asked.
    local_bind: tuple[str, int] | None


@dataclass(frozen=True)
class Notice:
    """A remark on the given configuration, printed by ``check`` and logged once at start."""

    key: str
    text: str
    deprecated_for: str | None = None  # the key to write instead, for an old spelling


@dataclass(frozen=True)
class Settings(KeyAttributes):
    """Resolved, validated configuration. Build with :meth:`load` or :meth:`from_mapping`.

    Every key is a typed attribute inherited from :class:`~streamapp.config.keys.KeyAttributes`, where
    ``KEYS`` declares it (``settings.max_retries`` reads ``connect.coap.max.retries``,
    ``settings.retry_interval_s`` reads ``connect.coap.retry.interval`` in seconds). The properties written
    here are the derived settings: each is computed from several keys, or from a key and where it came
    from, so no single key declaration can be it.
    """

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    statements: tuple[Statement, ...]
    ignored: tuple[str, ...] = field(default=())
    notices: tuple[Notice, ...] = field(default=())

    @property
    def broker_urls(self) -> list[str]:
        """``bootstrap.servers`` as the URLs Faust takes (``kafka://`` unless a scheme is given)."""
        return [s if "://" in s else f"kafka://{s}" for s in self.bootstrap_servers]

    @property
    def source_topics(self) -> tuple[str, ...]:
        """Distinct KCQL source topics in first-mention order (from ``connect.coap.kcql``)."""
        return tuple(dict.fromkeys(s.source for s in self.statements))

    @property
    def error_policy(self) -> str:
        """``connect.coap.error.policy``, or what Kafka Connect's ``errors.tolerance`` means when only that
        is set (they are checked to agree when both are): two keys and a source, hence derived."""
        tolerance = self.errors_tolerance
        if tolerance is not None and self.sources[ErrorGroup.configured_error_policy.name] == "default":
            return TOLERANCE_POLICY[tolerance]
        return self.configured_error_policy

    @property
    def group_id(self) -> str:
        """The consumer group: ``consumer.override.group.id``, else Kafka Connect's ``connect-<name>``
        (derived: its default comes from another key)."""
        return self.configured_group_id or f"connect-{self.app_name}"

    @property
    def truststore(self) -> StoreLocation | None:
        """``ssl.truststore.location`` with its password and type, or None (three keys together)."""
        return _store(
            KafkaSecurityGroup.ssl_truststore_location.name,
            self.ssl_truststore_location,
            self.ssl_truststore_password,
            self.ssl_truststore_type,
        )

    @property
    def keystore(self) -> StoreLocation | None:
        """``ssl.keystore.location`` with its password and type, or None (three keys together)."""
        return _store(
            KafkaSecurityGroup.ssl_keystore_location.name,
            self.ssl_keystore_location,
            self.ssl_keystore_password,
            self.ssl_keystore_type,
        )

    @property
    def check_hostname(self) -> bool:
        """``ssl.endpoint.identification.algorithm`` as the yes/no Python's ``ssl`` takes."""
        return self.ssl_endpoint_identification_algorithm == "https"

    @property
    def dtls_keys(self) -> DtlsKeys:
        """The ``connect.coap.*`` DTLS keys together; the local bind only when one of its keys was set."""
        explicit = any(self.sources[k.name] != "default" for k in (DtlsGroup.bind_host, DtlsGroup.bind_port))
        return DtlsKeys(
            username=self.dtls_username,
            password=self.dtls_password,
            private_key_file=self.dtls_private_key_file,
            public_key_file=self.dtls_public_key_file,
            keystore_path=self.dtls_keystore_path,
            keystore_pass=self.dtls_keystore_pass,
            truststore_path=self.dtls_truststore_path,
            truststore_pass=self.dtls_truststore_pass,
            certs=self.dtls_certs,
            cert_chain_key=self.dtls_cert_chain_key,
            cipher_suites=tuple(suite.upper() for suite in self.dtls_cipher_suites),
            handshake_timeout_s=self.handshake_timeout_s,
            local_bind=(self.bind_host, self.bind_port) if explicit else None,
        )

    def seconds(self, name: str) -> float:
        """A duration key that has a value (every one but ``connect.coap.request.timeout``) in seconds."""
        seconds = in_seconds(name, self.values[name])
        assert seconds is not None, name
        return seconds

    def with_server(self, uri: str, source: str) -> Settings:
        """These settings with ``connect.coap.uri`` found at start (docs/configuration.md, discoverIP4)."""
        return replace(
            self,
            values=MappingProxyType({**self.values, "connect.coap.uri": uri}),
            sources=MappingProxyType({**self.sources, "connect.coap.uri": source}),
        )

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, printable value, source) for every key; secrets print as ``[hidden]``."""
        rows = []
        for key in KEYS:
            value = self.values[key.name]
            if isinstance(value, tuple):
                shown = ",".join(value)
            elif value is None:
                shown = ""
            elif isinstance(value, bool):
                shown = str(value).lower()
            elif key.name == "schema.registry.url":
                shown = without_password(value)
            else:
                shown = str(value)
            rows.append((key.name, shown, self.sources[key.name]))
        return rows

    # --- construction ---------------------------------------------------------------------------------------

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults < the ``.properties`` file in ``$STREAMAPP_CONFIG`` < environment variables."""
        environ = os.environ if environ is None else environ
        layers: list[tuple[str, Mapping[str, str]]] = []
        path = environ.get(CONFIG_ENV)
        if path:
            layers.append((f"file {path}", read_properties(path)))
        layers.append(("environment", _from_environment(environ)))
        return cls.from_layers(layers)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str], source: str = "given") -> Settings:
        return cls.from_layers([(source, raw)])

    @classmethod
    def from_layers(cls, layers: list[tuple[str, Mapping[str, str]]]) -> Settings:
        merged: dict[str, tuple[str, str]] = {}  # key name -> (text, source)
        ignored: list[str] = []
        notices: dict[str, Notice] = {}
        for source, raw in layers:
            given_as: dict[str, str] = {}  # key name -> the spelling this layer used
            for given_name, text in raw.items():
                key = ALIAS_TO_KEY.get(given_name)
                if key is None:
                    _accept_unknown(given_name, text, source, notices)
                    if given_name not in ignored and given_name not in notices:
                        ignored.append(given_name)
                    continue
                earlier = given_as.get(key.name)
                if earlier is not None and merged[key.name][0].strip() != text.strip():
                    raise ConfigError(
                        f"{earlier} and {given_name}",
                        f"both set {key.name} with different values (from {source}); keep one",
                    )
                given_as[key.name] = given_name
                merged[key.name] = (text, source)
                if given_name in key.deprecated:
                    notices[given_name] = Notice(
                        given_name,
                        f"an old stream-reactor spelling of {key.name}; it means the same, write {key.name}",
                        deprecated_for=key.name,
                    )
                elif given_name != key.name and not given_name.startswith("consumer.override."):
                    notices.setdefault(given_name, Notice(given_name, f"alias of {key.name}"))

        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key in KEYS:
            if key.name in merged:
                text, source = merged[key.name]
                try:
                    value = key.parse(text)
                    if key.validate is not None:
                        key.validate(value)
                except ValueError as exc:
                    raise ConfigError(key.name, f"{exc} (from {source})") from None
                if value in ("", ()) and key.required:
                    raise ConfigError(key.name, f"is required but empty (from {source})")
            elif key.required:
                raise ConfigError(
                    key.name,
                    f"is required: set it in the properties file named by ${CONFIG_ENV} "
                    f"or in the environment as {key.env_name}",
                )
            else:
                value, source = key.default, "default"
            values[key.name] = value
            sources[key.name] = source

        _check_registry(values, sources)
        _check_kafka_client(values, sources)
        _check_tolerance(values, sources)
        statements = _compile_kcql(values["connect.coap.kcql"])
        _check_topics(values["topics"], statements)
        return cls(
            values=MappingProxyType(values),  # frozen through and through: nothing changes a setting later
            sources=MappingProxyType(sources),
            statements=statements,
            ignored=tuple(ignored),
            notices=tuple(notices.values()),
        )


def _store(key: str, path: str | None, password: Secret | None, kind: str | None) -> StoreLocation | None:
    return StoreLocation(key=key, path=path, password=password, kind=kind) if path else None


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a Java ``.properties`` file (comments, ``\\`` line continuations, escapes)."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            return dict(javaproperties.load(fh))
    except FileNotFoundError:
        raise ConfigError(CONFIG_ENV, f"properties file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(CONFIG_ENV, f"cannot read properties file {str(path)!r}: {exc}") from None


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables naming a known key (``CONNECT_COAP_URI``); unknown ``CONNECT_COAP_*`` fail."""
    by_env: dict[str, str] = {}
    for key in KEYS:
        for name in (key.name, *key.aliases, *key.deprecated):
            by_env[env_name(name)] = name
        for alias in key.env_aliases:
            by_env[alias] = key.name
    found: dict[str, str] = {}
    # env_aliases (PORT) first so that the explicit WEB_PORT wins over the platform's PORT.
    for env, text in sorted(environ.items(), key=lambda item: item[0] not in ("PORT",)):
        if env in by_env:
            found[by_env[env]] = text
        elif env.startswith("CONNECT_COAP_"):
            _reject_unknown(env, "environment", env_style=True)
    return found


def _accept_unknown(given: str, text: str, source: str, notices: dict[str, Notice]) -> None:
    """A key that is not one of :data:`KEYS`: a known key without effect becomes a notice, a
    ``connector.class`` naming another connector and an unknown ``connect.coap.*`` key are errors."""
    if given in WITHOUT_EFFECT:
        notices[given] = Notice(given, f"no effect here: {WITHOUT_EFFECT[given]}")
        return
    if given == CONNECTOR_CLASS:
        if not text.strip().endswith(CONNECTOR_CLASS_SUFFIX):
            raise ConfigError(
                given,
                f"{text.strip()!r} is not a CoAP sink connector (from {source}): this file configures "
                f"another connector; streamapp replaces ...coap.sink.CoapSinkConnector",
            )
        notices[given] = Notice(given, "Kafka Connect's plugin class: streamapp is that connector")
        return
    _reject_unknown(given, source)


def _reject_unknown(given: str, source: str, *, env_style: bool = False) -> None:
    """Unknown ``connect.coap.*`` keys are errors; other unknown keys are ignored by the caller."""
    prefix = "CONNECT_COAP_" if env_style else "connect.coap."
    if not given.startswith(prefix):
        return
    candidates = [env_name(k.name) for k in KEYS] if env_style else [k.name for k in KEYS]
    close = difflib.get_close_matches(given, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise ConfigError(given, f"unknown key (from {source}){hint}")


def validate_statement_property(name: str, text: str) -> None:
    """A KCQL ``PROPERTIES(name=value)`` follows the rules of the configuration key it overrides."""
    key = KEYS_BY_NAME[STATEMENT_PROPERTIES[name]]
    if name == "uri":  # a template: its placeholders are filled per record (docs/addressing.md)
        text = re.sub(r"\{[^{}]*\}", "0", text)
    value = key.parse(text)
    if key.validate is not None:
        key.validate(value)


def _compile_kcql(text: str) -> tuple[Statement, ...]:
    try:
        statements = parse_kcql(text, validate_statement_property)
    except KcqlError as exc:
        raise ConfigError("connect.coap.kcql", str(exc)) from exc
    if not statements:
        raise ConfigError("connect.coap.kcql", "contains no statement")
    return statements


def _check_registry(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    if values["schema.registry.url"] is not None:
        return
    for converter in ("value.converter", "key.converter"):
        if values[converter] == "avro":
            raise ConfigError(
                "schema.registry.url",
                f"is required when {converter} is Avro (from {sources[converter]}); "
                "set schema.registry.url (or value.converter.schema.registry.url)",
            )


def _check_topics(topics: tuple[str, ...] | None, statements: tuple[Statement, ...]) -> None:
    if topics is None:
        return
    sources = {s.source for s in statements}
    given = set(topics)
    if given != sources:
        parts = []
        if missing := sorted(sources - given):
            parts.append(f"KCQL reads {', '.join(missing)} which topics does not list")
        if extra := sorted(given - sources):
            parts.append(f"topics lists {', '.join(extra)} which no KCQL statement reads")
        raise ConfigError("topics", "; ".join(parts))


_TLS_KEYS = tuple(
    f"ssl.{name}"
    for name in (
        "truststore.location",
        "truststore.password",
        "truststore.type",
        "keystore.location",
        "keystore.password",
        "keystore.type",
        "key.password",
        "endpoint.identification.algorithm",
    )
)


def _check_kafka_client(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Kafka security keys that the protocol would not use, a SASL protocol without a login, heartbeats
    that do not fit in the session."""
    protocol = values["security.protocol"]
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        for key in _TLS_KEYS:
            if sources[key] != "default":
                raise ConfigError(
                    key, f"is set, but security.protocol={protocol} uses no TLS (SSL or SASL_SSL does)"
                )
    sasl_keys = ("sasl.mechanism", "sasl.jaas.config")
    if protocol in ("PLAINTEXT", "SSL"):
        for key in sasl_keys:
            if sources[key] != "default":
                raise ConfigError(
                    key,
                    f"is set, but security.protocol={protocol} uses no SASL (SASL_PLAINTEXT, SASL_SSL do)",
                )
    else:
        jaas = values["sasl.jaas.config"]
        if jaas is None or not jaas.reveal():
            raise ConfigError(
                "sasl.jaas.config",
                f"security.protocol={protocol} needs the SASL login: "
                f'{LOGIN_MODULES[values["sasl.mechanism"]]} required username="..." password="...";',
            )
        parse_jaas(jaas.reveal(), values["sasl.mechanism"])
    for location in ("ssl.truststore.location", "ssl.keystore.location"):
        if values[location] is None:
            for suffix in (".password", ".type"):
                other = location.replace(".location", suffix)
                if sources[other] != "default":
                    raise ConfigError(other, f"is set, but {location} is not")
    if values["heartbeat.interval.ms"] >= values["session.timeout.ms"]:
        raise ConfigError(
            "heartbeat.interval.ms",
            f"must be less than session.timeout.ms ({values['session.timeout.ms']}); a third of it is usual",
        )


def _check_tolerance(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    tolerance = values["errors.tolerance"]
    if tolerance is None or sources["connect.coap.error.policy"] == "default":
        return
    policy = values["connect.coap.error.policy"]
    if TOLERANCE_POLICY[tolerance] != policy:
        raise ConfigError(
            "errors.tolerance",
            f"is {tolerance} (the error policy {TOLERANCE_POLICY[tolerance]}), but connect.coap.error.policy "
            f"is {policy} ({sources['connect.coap.error.policy']}): set one of them",
        )
