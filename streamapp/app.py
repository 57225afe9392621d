"""``create_app(settings)``: the Faust app with its topics, agents, CoAP sender and web views.

Nothing here runs at import; tests build apps with their own settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust
from faust.types import TP

import agents
from streamapp import patches
from streamapp.coap.discovery import DISCOVERED_FROM
from streamapp.coap.endpoints import exchange_lifetime
from streamapp.coap.oscore import OSCORE_REPLAY_WINDOW, open_contexts
from streamapp.coap.request_options import RequestOptions
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import CoapSender
from streamapp.coap.tcp_tls import tls_options
from streamapp.codecs import build_codecs
from streamapp.config.settings import Settings
from streamapp.config.workdir import data_directory
from streamapp.engine import DeliveryEngine
from streamapp.engine.dead_letters import DeadLetters
from streamapp.engine.failures import Failures
from streamapp.engine.pipeline import Route, TopicPipeline
from streamapp.engine.policy import ErrorPolicy
from streamapp.engine.replies import Replies
from streamapp.engine.stats import Stats
from streamapp.kafka.commits import CommitMonitor, faust_commit
from streamapp.kafka.group import on_assignment, watch_group
from streamapp.kafka.security import broker_credentials
from streamapp.logs import configure_logging, get_logger
from streamapp.patches.faust import PromptTableManager
from streamapp.web.health import register_probes
from streamapp.web.progress import log_progress
from streamapp.web.views import assignment, describe_security, register_views

log = get_logger(__name__)


class SinkApp(faust.App):
    """Faust's app, with the delivery engine stopped first when the worker stops.

    Faust's own stop waits until every message its streams took is acked (``stream_wait_empty``), which
    with records read ahead into the engine would mean delivering all of them, however long that takes.
    Instead ``before_stop`` gives the requests in flight the stop grace, acks what was delivered and
    commits it, while the consumer still runs; the rest is read again by the next worker.
    """

    before_stop: Callable[[], Awaitable[None]] | None = None

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()


def create_app(settings: Settings) -> faust.App:
    configure_logging(settings.log_format)
    patches.apply_all()  # every internal checked, before Faust builds its consumer (streamapp/patches/)
    credentials, kafka_security = broker_credentials(settings)  # reads the truststore and keystore
    app = SinkApp(
        # Faust's app id is its consumer group: Kafka Connect's connect-<name> unless overridden.
        settings.group_id,
        broker=settings.broker_urls,
        broker_credentials=credentials,
        autodiscover=False,
        datadir=data_directory(settings.datadir),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        # With "none", on_assigned names the partitions without a commit; aiokafka refuses to fetch them.
        consumer_auto_offset_reset=settings.auto_offset_reset,
        # The join takes half a session on Tansu (docs/production.md, "Start and restart").
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        TableManager=PromptTableManager,
        # Delivered offsets are committed this often (the bound on duplicates after a crash).
        broker_commit_interval=settings.commit_interval_s,
        # No tables, so no leader-election topic.
        topic_disable_leader=True,
        # The engine's stop commits what was delivered (SinkApp.before_stop): Faust must not wait for more.
        stream_wait_empty=False,
        # Tells the engine which commits landed (bounded replay: docs/delivery-engine.md).
        Monitor=CommitMonitor,
    )
    defaults = RequestOptions.from_values(settings.values)
    routes = {s.index: Route.compile(s, defaults) for s in settings.statements}
    dtls = dtls_options(settings)
    tls = tls_options(settings)
    # Each context directory opened once, its lock held while the worker runs (docs/oscore.md).
    oscore = open_contexts(r.options.oscore_context for r in routes.values())
    sender = CoapSender(
        settings.uri,
        defaults,
        dtls,
        window=settings.max_inflight,
        lifetime_s=exchange_lifetime(r.options for r in routes.values()),
        # A fixed local DTLS port can be bound by one socket only: one endpoint.
        max_endpoints=1 if dtls is not None and dtls.local_bind and dtls.local_bind[1] else None,
        tls=tls,
        tcp_connect_timeout_s=settings.seconds("connect.coap.handshake.timeout"),
        oscore=oscore,
        loop=app.loop,
    )
    # faust types app.service for a class it builds; an instance is taken too (App._prepare_subservice).
    app.service(sender)  # type: ignore[arg-type]
    stats = Stats.for_statements(settings.statements, default_server=settings.uri)
    codecs = build_codecs(
        settings.value_converter,
        settings.key_converter,
        value_envelope=settings.value_envelope,
        key_envelope=settings.key_envelope,
        registry_url=settings.registry_url,
    )
    pipelines = {
        topic: TopicPipeline(
            (routes[s.index] for s in settings.statements if s.source == topic),
            codecs,
            stats,
            max_payload=settings.max_payload,
            decimals="string" if settings.decimal_format == "string" else "number",
        )
        for topic in settings.source_topics
    }
    policy = ErrorPolicy.from_settings(settings)

    async def produce(
        topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> object:
        return await app.producer.send_and_wait(topic, key, value, None, None, headers)

    dead_letters = None
    if settings.dead_letter_topic is not None:
        dead_letters = DeadLetters(
            settings.dead_letter_topic,
            produce,
            context=settings.dead_letter_context,
            connector=settings.app_name,
        )
    failures = Failures(
        policy,
        stats,
        dead_letters,
        log_records=settings.log_failures,
        include_messages=settings.log_failed_messages,
    )
    engine = DeliveryEngine(
        pipelines,
        sender,
        failures,
        stats,
        window=settings.max_inflight,
        grace_s=settings.stop_grace_s,
        commit=faust_commit(app),
        max_payload=settings.max_payload,
        commit_interval_s=settings.commit_interval_s,
        replies=Replies(produce),
    )
    # The one way each thing reaches the engine: the agents hand it records; the rebalance listener its
    # revocations; the app's stop its stop; Faust's monitor the commits that landed.
    agents.register(app, engine)
    app.before_stop = engine.stop
    monitor = app.monitor
    assert isinstance(monitor, CommitMonitor)
    monitor.listener = engine
    on_assignment(app, group=settings.group_id, auto_offset_reset=settings.auto_offset_reset)

    # mode types a handler as (sender, *args, signal=..., **kwargs); this one names the one argument sent.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: faust.App, revoked: set[TP], **_: object) -> None:
        """A rebalance takes partitions away: what was delivered of them is committed now, the rest is
        dropped (their new owner reads it again); Faust's own wait is off (``stream_wait_empty``)."""
        await engine.revoke({(tp.topic, tp.partition) for tp in revoked})

    # faust types what app.task returns with bare Awaitables (faust.types.app.TaskArg): the name is Any.
    @app.task  # type: ignore[untyped-decorator]
    async def stop_when_the_policy_does() -> None:
        """THROW (or RETRY exhausted) stopped the engine: commit what was delivered, then stop the worker
        with exit code 1; the rest is read again."""
        reason = await engine.stopped()
        await engine.stop()
        await app.crash(reason)

    if settings.progress_enabled:
        log_progress(app, stats, settings.progress_interval_s)
    register_views(
        app,
        settings,
        stats,
        describe_security(dtls, tls.description if tls is not None else None),
        kafka_security,
        lambda: sender.endpoints,
    )
    register_probes(app, engine, lambda: assignment(app), watch_group(app, settings.group_id))

    @app.task  # type: ignore[untyped-decorator]  # as stop_when_the_policy_does
    async def log_start() -> None:
        """At start, once the worker's logging is set up: old spellings and keys without effect (once),
        the discovered server, the Kafka client."""
        for notice in settings.notices:
            log.warning("config.notice", key=notice.key, note=notice.text, use_instead=notice.deprecated_for)
        for directory in dict.fromkeys(oscore):
            log.info(
                "coap.oscore_context",
                directory=directory,
                next_sequence_number=oscore[directory].next_sequence_number,
            )
        if oscore and settings.max_inflight > OSCORE_REPLAY_WINDOW:
            log.warning(
                "coap.oscore_window",
                max_inflight=settings.max_inflight,
                why=f"more requests in flight than a server's default OSCORE replay window "
                f"({OSCORE_REPLAY_WINDOW}): a retransmission overtaken by that many newer requests is "
                "refused as a replay",
            )
        if settings.sources["connect.coap.uri"].startswith(DISCOVERED_FROM):
            log.info("coap.server_discovered", server=settings.uri, how=settings.sources["connect.coap.uri"])
        log.info(
            "kafka.client",
            group=settings.group_id,
            security=kafka_security,
            auto_offset_reset=settings.auto_offset_reset,
        )

    return app
