"""``create_app(settings)``: the Faust app with its topics, agents, CoAP sender and web views.

Nothing here runs at import; tests build apps with their own settings.
"""

from __future__ import annotations

import faust

import agents
from streamapp.coap.security import dtls_options
from streamapp.coap.sender import CoapSender, RequestOptions
from streamapp.codecs import build_codecs
from streamapp.logs import configure_logging
from streamapp.pipeline import RecordPipeline, Route
from streamapp.settings import Settings
from streamapp.stats import Stats
from streamapp.web import register_views


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
        tombstone=settings.tombstone,
    )
    sender = CoapSender(settings.uri, defaults, dtls_options(settings), loop=app.loop)
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
    agents.register(app, pipelines)
    register_views(app, settings, stats)
    return app
