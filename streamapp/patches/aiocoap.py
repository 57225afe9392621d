"""aiocoap 0.4.17 (pinned in pyproject.toml): its file-backed OSCORE context, with two gaps closed.

- :class:`PersistentContext` is ``aiocoap.oscore.FilesystemSecurityContext``, which persists the sender
  sequence number ahead of use (RFC 8613 §7.5, docs/oscore.md), with two gaps of 0.4.17 closed. It
  extends the private ``_store`` (the write of ``sequence.json``): the rename into place is made durable
  by an fsync of the directory, or a power cut could bring the old file back. And it wraps
  ``post_seqnoincrease``, which raises its in-memory mark (``sequence_number_persisted``, and the step
  ``sequence_number_chunksize``) *before* it writes: after a failed write the numbers up to the mark would
  be handed out unpersisted, so the mark is put back when the write fails. aiocoap has no hook for either.
- :meth:`PersistentContext.release`: the private ``_destroy``, the only way aiocoap has to write back the
  exact next sequence number and release the context's lock (its own ``__del__`` calls it; a worker's stop
  must not wait for the garbage collector).
- :data:`KEY_TRACING_LOGGER`: aiocoap traces nonces and plaintexts (and, with ``AIOCOAP_REVEAL_KEYS``,
  keys) at DEBUG on its private ``aiocoap.oscore._alglog``; ``coap/oscore.py`` silences it by this name, so
  a renamed logger must stop the worker rather than let key material into a DEBUG log.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aiocoap import oscore

from streamapp.patches.checks import Internal

DISTRIBUTION, VERSION = "aiocoap", "0.4.17"

#: The logger aiocoap's OSCORE traces its cryptography on.
KEY_TRACING_LOGGER = "aiocoap.cryptography"


def _internal(name: str, find: Any, used_by: str, **check: Any) -> Internal:
    return Internal(name, find, DISTRIBUTION, VERSION, __name__, used_by, **check)


STORE = _internal(
    "aiocoap.oscore.FilesystemSecurityContext._store",
    lambda: oscore.FilesystemSecurityContext._store,
    "PersistentContext",
    digest="d8b1add62d1818bd",
)
POST_SEQNOINCREASE = _internal(
    "aiocoap.oscore.FilesystemSecurityContext.post_seqnoincrease",
    lambda: oscore.FilesystemSecurityContext.post_seqnoincrease,
    "PersistentContext",
    digest="49bc37286778a7b7",
)
DESTROY = _internal(
    "aiocoap.oscore.FilesystemSecurityContext._destroy",
    lambda: oscore.FilesystemSecurityContext._destroy,
    "PersistentContext.release",
    digest="580ba0985740287a",
)
KEY_TRACING = _internal(
    "aiocoap.oscore._alglog",
    lambda: oscore._alglog,
    "KEY_TRACING_LOGGER",
    expect=lambda logger: isinstance(logger, logging.Logger) and logger.name == KEY_TRACING_LOGGER,
    expected=f"the logger {KEY_TRACING_LOGGER!r}",
)

#: Every internal of aiocoap this module relies on.
INTERNALS = (STORE, POST_SEQNOINCREASE, DESTROY, KEY_TRACING)


class PersistentContext(oscore.FilesystemSecurityContext):
    """aiocoap's file-backed context with the two §7.5 gaps closed (module doc)."""

    def __repr__(self) -> str:
        return f"<OSCORE context {self.basedir}>"

    def _store(self) -> None:
        # aiocoap's _destroy marks the replay window persisted before its last store even when the window
        # was never initialised (sequence.json said "received": "unknown"), and would write
        # {"index": null, "bitfield": null}, which no later start can read. A window not initialised is
        # still unknown: say so.
        if not self.recipient_replay_window.is_initialized():
            self.replay_window_persisted = False
        super()._store()
        directory = os.open(self.basedir, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename of sequence.json survives a power cut
        finally:
            os.close(directory)

    def post_seqnoincrease(self) -> None:
        persisted, step = self.sequence_number_persisted, self.sequence_number_chunksize
        try:
            super().post_seqnoincrease()
        except BaseException:
            # Not persisted: the next number tries again (and nothing was handed out for this one).
            self.sequence_number_persisted, self.sequence_number_chunksize = persisted, step
            raise

    def release(self) -> None:
        """Write back the exact next sequence number and release the lock (module doc); idempotent."""
        if self.lockfile is not None:
            self._destroy()
