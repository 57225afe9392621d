"""structlog set-up: console lines for people, JSON lines (``log.format=json``) for machines.

Lines go through the standard ``logging`` module so they share Faust's handlers and levels.
"""

from __future__ import annotations

import logging
import sys
from typing import cast

import structlog

#: Libraries whose INFO lines are not for operators: httpx logs every request with its whole URL, which
#: for a schema registry URL with credentials (``http://user:password@host``) prints the password.
QUIET_LIBRARIES = ("httpx", "httpcore")


def configure_logging(log_format: str) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Console lines already carry the time from Faust's logging format; JSON lines need their own.
    stamp = [structlog.processors.TimeStamper(fmt="iso", utc=True)] if log_format == "json" else []
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            *stamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """The structlog logger of a module: call it with ``__name__``, so a line's logger is the module that
    wrote it (``streamapp.coap.sender``) and a level can be set per package through ``logging``.

    structlog types ``get_logger`` as returning Any (the class is whatever ``wrapper_class`` is
    configured); here it is :func:`structlog.make_filtering_bound_logger`'s, hence the cast.
    """
    return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(name))
