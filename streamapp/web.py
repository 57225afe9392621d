"""Web views on the worker's Faust web server: ``/coap/`` (HTML) and ``/coap/stats.json``."""

from __future__ import annotations

import html

import faust
from faust.web import Request, Response, View

from streamapp.settings import Settings
from streamapp.stats import Stats


def register_views(app: faust.App, settings: Settings, stats: Stats) -> None:
    @app.page("/coap/stats.json")
    async def stats_json(web: View, request: Request) -> Response:
        return web.json({"name": settings.app_name, "uri": settings.uri, **stats.snapshot()})

    @app.page("/coap/")
    async def stats_page(web: View, request: Request) -> Response:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    s.statement,
                    s.source,
                    s.resource,
                    s.delivered,
                    s.failed,
                    s.in_flight,
                    s.last_error or "",
                )
            )
            + "</tr>"
            for s in stats.statements.values()
        )
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
            "<meta name='viewport' content='width=device-width'>"
            f"<title>streamapp {html.escape(settings.app_name)}</title></head><body>"
            f"<h1>streamapp: {html.escape(settings.app_name)}</h1>"
            f"<p>CoAP server {html.escape(settings.uri)}</p>"
            "<table border='1'><tr><th>#</th><th>topic</th><th>resource</th><th>delivered</th>"
            f"<th>failed</th><th>in flight</th><th>last error</th></tr>{rows}</table>"
            "<p><a href='stats.json'>stats.json</a></p></body></html>"
        )
        return web.html(body)
