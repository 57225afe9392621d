"""aiocoap's OSCORE server for tests: :class:`~tests.recording_server.RecordingCoapServer` behind aiocoap's
``OscoreSiteWrapper``, and the two mirrored security-context directories a test needs.

The server unprotects every request with its recipient context (the mirror of the sink's: sender and
recipient ID swapped), rejects a replayed sequence number ("Replay detected", an unprotected 4.01), answers
an unknown context or a failed verification with an unprotected error, and records the *inner* request as
the recording server records a plain one; its answers are protected. A request without OSCORE reaches the
recording site unprotected, as aiocoap serves it: :attr:`OscoreCoapServer.unprotected` counts them, and
:attr:`OscoreCoapServer.replays` the requests refused as replays. ``transport="tcp"`` or ``"tls"`` serves
the same over CoAP over TCP or TLS (aiocoap's ``tcpserver``/``tlsserver``, as the recording server does).
Over TCP aiocoap (0.4.17) answers a refused request (a replay, an unknown context, a failed decryption) with
nothing at all: its OSCORE site answers those errors only to a CON request, and a TCP request has no type.

``make_contexts(base)`` writes ``base/client`` (for ``connect.coap.oscore.context``) and ``base/server``;
``server_sequence_unknown`` makes the server start as after a crash (its replay window lost), so that it
asks for an Echo (RFC 8613 Appendix B.1.2).
"""

from __future__ import annotations

import json
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiocoap
from aiocoap import oscore
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper
from aiocoap.transports.oscore import OSCOREAddress

from tests.recording_server import RecordingCoapServer, _CatchAllResource

__all__ = ["ContextPair", "OscoreCoapServer", "make_contexts"]


@dataclass(frozen=True)
class ContextPair:
    client: Path
    server: Path
    #: The master secret (hex), for tests that look for it where it must not be.
    secret_hex: str
    salt_hex: str


def make_contexts(
    base: Path,
    *,
    client_id: bytes = b"\x01",
    server_id: bytes = b"",
    secret: bytes | None = None,
    salt: bytes | None = None,
    id_context: bytes | None = None,
) -> ContextPair:
    """Two mirrored context directories under ``base`` in aiocoap's format (settings.json with the IDs,
    secret.json with the master secret and salt)."""
    secret = secret if secret is not None else secrets.token_bytes(16)
    salt = salt if salt is not None else secrets.token_bytes(8)
    for name, sender, recipient in (("client", client_id, server_id), ("server", server_id, client_id)):
        directory = base / name
        directory.mkdir(parents=True, exist_ok=True)
        settings = {"sender-id_hex": sender.hex(), "recipient-id_hex": recipient.hex()}
        if id_context is not None:
            settings["id-context_hex"] = id_context.hex()
        (directory / "settings.json").write_text(json.dumps(settings))
        keys = {"secret_hex": secret.hex(), "salt_hex": salt.hex()}
        (directory / "secret.json").write_text(json.dumps(keys))
    return ContextPair(base / "client", base / "server", secret.hex(), salt.hex())


def server_sequence_unknown(server_dir: Path, next_to_send: int = 0) -> None:
    """The server's context as after a crash: its replay window is unknown, so its first request from the
    client gets a 4.01 with Echo (RFC 8613 Appendix B.1.2)."""
    state = {"next-to-send": next_to_send, "received": "unknown"}
    (server_dir / "sequence.json").write_text(json.dumps(state))


class _Site(_CatchAllResource):
    """The recording site; counts the requests that arrive without OSCORE (they are not unwrapped)."""

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if not isinstance(request.remote, OSCOREAddress):
            server = self._server
            assert isinstance(server, OscoreCoapServer)
            server.unprotected += 1
        return await super().render(request)


class _RecordingContext(oscore.FilesystemSecurityContext):
    """The server's recipient context, noting the sender sequence number of every request it accepts and
    counting those it refuses as replays."""

    server: OscoreCoapServer

    def unprotect(self, protected_message, request_id=None):  # type: ignore[no-untyped-def]
        try:
            inner, request_id = super().unprotect(protected_message, request_id)
        except oscore.ReplayError:
            self.server.replays += 1
            raise
        if protected_message.code.is_request():
            self.server.accepted_sequence_numbers.append(int.from_bytes(request_id.partial_iv, "big"))
        return inner, request_id


class OscoreCoapServer(RecordingCoapServer):
    """The recording server with aiocoap's OSCORE in front (``server_dir``: its recipient context)."""

    thread_name = "oscore-coap-server"

    def __init__(
        self,
        server_dir: Path,
        port: int = 0,
        *,
        transport: Literal["udp", "tcp", "tls"] = "udp",
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(port, transport=transport, ssl_context=ssl_context, host=host)
        self.server_dir = server_dir
        self.unprotected = 0
        #: Requests refused because their sequence number was seen before (RFC 8613 §7.4).
        self.replays = 0
        self._security: oscore.FilesystemSecurityContext | None = None
        #: The sequence numbers of the requests the server accepted, in order (a reused one is refused).
        self.accepted_sequence_numbers: list[int] = []

    def _root_site(self) -> OscoreSiteWrapper:
        """The recording site behind aiocoap's OSCORE, with the recipient context opened from its directory
        (each start: after :meth:`restart` the replay window is the one the stop stored)."""
        self._security = security = _RecordingContext(str(self.server_dir))
        security.server = self
        credentials = CredentialsMap()
        credentials[":client"] = security
        return OscoreSiteWrapper(_Site(self), credentials)

    async def _close(self) -> None:
        await super()._close()
        security, self._security = self._security, None
        if security is not None and security.lockfile is not None:
            security._destroy()
