"""python-mbedtls 2.10.1 (pinned in pyproject.toml): the handshake step of a DTLS session.

- :func:`handshake_step`: ``TLSWrappedBuffer._handshake_state``, the step an Mbed TLS handshake is at.
  ``do_handshake`` only says "not over yet" (WantRead/WantWrite) or fails; ``coap/dtls.py`` needs the step
  to know when the handshake is over without another round, and ``coap/dtls_errors.py`` needs the steps
  reached to explain a failure (silence after our Finished is what a wrong PSK looks like). python-mbedtls
  has no public accessor; its own ``TLSWrappedSocket.do_handshake`` reads the same property. It is compiled
  (Cython), so there is no source to compare: the installed version must be the one it was read in.
"""

from __future__ import annotations

import types

from mbedtls import tls

from streamapp.patches.checks import Internal

DISTRIBUTION, VERSION = "python-mbedtls", "2.10.1"

HANDSHAKE_STATE = Internal(
    "mbedtls.tls.TLSWrappedBuffer._handshake_state",
    lambda: vars(tls.TLSWrappedBuffer)["_handshake_state"],
    DISTRIBUTION,
    VERSION,
    __name__,
    "handshake_step",
    expect=lambda attribute: isinstance(attribute, types.GetSetDescriptorType),
    expected="a property of the compiled buffer",
    compiled=True,
)

#: Every internal of python-mbedtls this module relies on.
INTERNALS = (HANDSHAKE_STATE,)


def handshake_step(buffer: tls.TLSWrappedBuffer) -> tls.HandshakeStep:
    """The step ``buffer``'s handshake is at (``HandshakeStep.HANDSHAKE_OVER`` once it is done)."""
    return buffer._handshake_state
