"""Web views on the worker's Faust web server: ``/coap/`` (the stats page), ``/coap/stats.json`` and
``/metrics`` (Prometheus). No secret ever reaches them: the security mode is described, never its keys."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from importlib import resources
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streamapp.coap.dtls import DtlsOptions
from streamapp.config.settings import Settings
from streamapp.engine.stats import Stats
from streamapp.web.metrics import metrics_registry, render


def assignment(app: faust.App) -> list[tuple[str, int]]:
    try:
        return sorted((tp.topic, tp.partition) for tp in app.consumer.assignment())
    except Exception:  # not yet assigned / consumer not started
        return []


def consumer_lag(app: faust.App, stats: Stats) -> dict[tuple[str, int], int | None]:
    """Per assigned partition: the high-water mark minus the next offset to ack (None until known)."""
    lag: dict[tuple[str, int], int | None] = {}
    for topic, partition in assignment(app):
        try:
            highwater = app.consumer.highwater(faust.types.TP(topic, partition))
        except Exception:
            highwater = None
        position = stats.positions.get((topic, partition))
        lag[(topic, partition)] = (
            None if highwater is None or position is None else max(0, int(highwater) - position)
        )
    return lag


def worker_info(
    app: faust.App, settings: Settings, stats: Stats, security: str, kafka_security: str
) -> dict[str, Any]:
    return {
        "name": settings.app_name,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "uptime_s": round(stats.uptime_s, 3),
        "coap_server": settings.uri,
        "security": security,
        "consumer_group": settings.group_id,
        "kafka_security": kafka_security,
        "error_policy": settings.error_policy,
        "partitions": [
            {
                "topic": topic,
                "partition": partition,
                "next_offset": stats.positions.get((topic, partition)),
                "lag": lag,
            }
            for (topic, partition), lag in consumer_lag(app, stats).items()
        ],
    }


def snapshot(
    app: faust.App, settings: Settings, stats: Stats, security: str, kafka_security: str
) -> dict[str, Any]:
    return {"worker": worker_info(app, settings, stats, security, kafka_security), **stats.snapshot()}


def _page() -> str:
    return resources.files("streamapp.web").joinpath("stats_page.html").read_text(encoding="utf-8")


def register_views(
    app: faust.App,
    settings: Settings,
    stats: Stats,
    security: str,
    kafka_security: str,
    endpoints: Callable[[], int] | None = None,
) -> None:
    """``endpoints``: how many CoAP source endpoints are open (``/metrics``)."""
    registry = metrics_registry(
        stats, lambda: consumer_lag(app, stats), lambda: len(asyncio.all_tasks(app.loop)), endpoints
    )
    page = _page()

    @app.page("/coap/stats.json")
    async def stats_json(web: View, request: Request) -> Response:
        return web.json(snapshot(app, settings, stats, security, kafka_security))

    @app.page("/coap/")
    async def stats_page(web: View, request: Request) -> Response:
        return web.html(page)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        # aiohttp wants the charset apart from the content type
        response = web.bytes(render(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def describe_security(dtls: DtlsOptions | None, tls: str | None = None) -> str:
    """``none`` for coap://, else the DTLS mode and non-secret facts (identity, subjects, suites), and the
    TLS of coaps+tcp:// (``tls``: its description)."""
    described = [] if dtls is None else [f"DTLS 1.2: {dtls.description}"]
    if tls is not None:
        described.append(tls)
    return "; ".join(described) or "none (coap://)"
