"""``create_app(settings)``: the Faust app with its topics, agents, CoAP sender and web views.

Nothing here runs at import; tests build apps with their own settings.
"""

from __future__ import annotations

import faust

import agents
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.codecs import build_codecs
from streamapp.dead_letter import DeadLetters
from streamapp.handler import RecordHandler
from streamapp.logs import configure_logging
from streamapp.pipeline import RecordPipeline, Route
from streamapp.policy import ErrorPolicy
from streamapp.progress import log_progress
from streamapp.settings import Settings
from streamapp.stats import Stats
from streamapp.web import describe_security, register_views


def create_app(settings: Settings) -> faust.App:
    configure_logging(settings.log_format)
    app = faust.App(
        settings.app_name,
        broker=settings.broker_urls,
        autodiscover=False,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        # Kafka Connect sinks start a new consumer group at the oldest record.
        consumer_auto_offset_reset="earliest",
        # No tables, so no leader-election topic.
        topic_disable_leader=True,
    )
    defaults = RequestOptions(
        method=settings.method,
        confirmable=settings.confirmable,
        content_format=settings.content_format,
        timeout_s=settings.request_timeout_s,
        ack_timeout_s=settings.ack_timeout_s,
        max_retransmit=settings.max_retransmit,
        tombstone=settings.tombstone,
        max_inflight=settings.max_inflight,
    )
    dtls = dtls_options(settings)
    sender = CoapSender(settings.uri, defaults, dtls, max_inflight=settings.max_inflight, loop=app.loop)
    app.service(sender)
    stats = Stats.for_statements(settings.statements)
    codecs = build_codecs(
        settings.value_converter,
        settings.key_converter,
        value_envelope=settings.value_envelope,
        key_envelope=settings.key_envelope,
        registry_url=settings.registry_url,
    )
    pipelines = {
        topic: RecordPipeline(
            (Route.compile(s, defaults) for s in settings.statements if s.source == topic),
            codecs,
            sender,
            stats,
            max_payload=settings.max_payload,
            decimals="string" if settings.decimal_format == "string" else "number",
        )
        for topic in settings.source_topics
    }
    policy = ErrorPolicy(
        name=settings.error_policy,
        max_retries=settings.max_retries,
        retry_interval_s=settings.retry_interval_s,
        dead_letter_topic=settings.dead_letter_topic,
    )
    dead_letters = None
    if settings.dead_letter_topic is not None:

        async def produce(topic: str, key: bytes | None, value: bytes | None, headers: list) -> object:
            return await app.producer.send_and_wait(topic, key, value, None, None, headers)

        dead_letters = DeadLetters(
            settings.dead_letter_topic,
            produce,
            context=settings.dead_letter_context,
            connector=settings.app_name,
        )
    agents.register(
        app, {topic: RecordHandler(p, policy, stats, dead_letters) for topic, p in pipelines.items()}
    )
    if settings.progress_enabled:
        log_progress(app, stats, settings.progress_interval_s)
    register_views(app, settings, stats, describe_security(dtls))
    return app
