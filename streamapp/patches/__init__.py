"""Every use of a library's private internals, in one place: what it fixes, and a check that it still fits.

The rule: no module outside this package reaches into a library's private names (an underscore attribute,
a replaced method, an undocumented fact such as a logger's name or an error's text). Each such use is a
named patch or accessor here, with a comment saying what it fixes or why the public API does not do, the
library version it was written against, and an :class:`~streamapp.patches.checks.Internal` that fails
when that internal changed: the digest of its source, or for compiled code and facts a check of the
object (``checks.py``). :func:`apply_all` checks them all before Faust builds anything
(``app.create_app``), so an upgrade that moved one stops the worker at start with one line naming it
(:class:`PatchOutdated`, printed by ``main.py``) instead of running on a guess; ``tests/unit/test_patches.py``
fails the same way, one test per internal.

One module per library (each module's docstring says what and why):

- ``faust.py`` (faust-streaming 0.15.3): :func:`~streamapp.patches.faust.eager_drain` (Faust's
  per-message hand-over made eager), ``PromptTableManager`` (no one-second wait at start), and the
  accessors ``created_consumer``, ``consumer_thread``, ``aiokafka_consumer``, ``aiokafka_producer``
  (``kafka/commits.py``, ``kafka/group.py``, ``web/health.py``).
- ``aiokafka.py`` (aiokafka 0.14.0): ``group_coordinator`` (the group join's errors,
  ``kafka/group.py``), ``leave_on_close`` (LeaveGroup in generation 0, as Kafka's Java client),
  ``quiet_protocol_conflict_lines`` (aiokafka's line for each refused join).
- ``aiocoap.py`` (aiocoap 0.4.17): ``PersistentContext`` (the OSCORE context's sequence number persisted
  durably, and not counted when the write failed; ``release``), ``KEY_TRACING_LOGGER`` (``coap/oscore.py``).
- ``mbedtls.py`` (python-mbedtls 2.10.1): ``handshake_step`` (``coap/dtls.py``).

Not here, on purpose: ``bench/address_cache.py`` (aiocoap's address helpers memoised, for a benchmark's
aiocoap baseline; no worker runs aiocoap's UDP transport).
"""

from __future__ import annotations

from streamapp.patches import aiocoap, aiokafka, faust, mbedtls
from streamapp.patches.checks import Internal, PatchOutdated

#: Every library internal a patch or accessor relies on, each checked by :func:`check_all`.
INTERNALS: tuple[Internal, ...] = (
    *faust.INTERNALS,
    *aiokafka.INTERNALS,
    *aiocoap.INTERNALS,
    *mbedtls.INTERNALS,
)


def check_all() -> None:
    """Raise :class:`PatchOutdated` for the first internal that is not what its patch was written against."""
    for internal in INTERNALS:
        internal.check()


def apply_all() -> None:
    """Check every internal, then apply the patches that change a library class (``app.create_app`` calls
    it before Faust builds its consumer); idempotent."""
    check_all()
    faust.eager_drain()


__all__ = ["INTERNALS", "Internal", "PatchOutdated", "apply_all", "check_all"]
