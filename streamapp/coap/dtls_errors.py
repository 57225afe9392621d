"""Why a DTLS handshake failed, in words an operator can act on.

Mbed TLS reports "certificate verification failed" or "timed out"; the cause (an expired certificate, an
unknown CA, another host's certificate, a wrong PSK) is worked out here from the server certificates seen in
the handshake, the trust store and how far the handshake got.

What an explanation reads of the failed link is declared here (:class:`HandshakingLink`, which
``dtls.DtlsLink`` satisfies), so ``dtls.py`` imports this module and this module never imports it.
"""

from __future__ import annotations

import datetime
from typing import Protocol

from aiocoap import error
from mbedtls import tls, x509
from mbedtls.exceptions import TLSError

from streamapp.coap.credentials import DtlsCredentials

#: Mbed TLS error codes (positive, as python-mbedtls reports them).
SSL_TIMEOUT = 0x6800
X509_CERT_VERIFY_FAILED = 0x2700
SSL_FATAL_ALERT_MESSAGE = 0x7780
SSL_NO_USABLE_CIPHERSUITE = 0x6980
SSL_BAD_HS_SERVER_HELLO = 0x7980
SSL_PEER_CLOSE_NOTIFY = 0x7880

#: Steps at which our Finished has been sent: silence after it means the server could not verify it.
_AFTER_FINISHED = {
    tls.HandshakeStep.SERVER_NEW_SESSION_TICKET,
    tls.HandshakeStep.SERVER_CHANGE_CIPHER_SPEC,
    tls.HandshakeStep.SERVER_FINISHED,
    tls.HandshakeStep.FLUSH_BUFFERS,
    tls.HandshakeStep.HANDSHAKE_WRAPUP,
}


class LinkOptions(Protocol):
    """The session options an explanation names: the credentials' kind and trust store, the suites offered."""

    @property
    def credentials(self) -> DtlsCredentials: ...

    @property
    def mbedtls_ciphers(self) -> tuple[str, ...]: ...


class HandshakingLink(Protocol):
    """The link whose handshake failed, as an explanation reads it: the server as log lines name it, the
    host name its certificate must carry (None for an IP literal), the certificates it sent, our options."""

    @property
    def hostinfo(self) -> str: ...

    @property
    def server_hostname(self) -> str | None: ...

    @property
    def server_certificates(self) -> list[bytes]: ...

    @property
    def options(self) -> LinkOptions: ...


class DtlsError(error.NetworkError):
    """The DTLS session to the server could not be established or broke; the message says why."""

    def __str__(self) -> str:  # aiocoap's NetworkError prints only its class name
        return str(self.args[0]) if self.args else type(self).__name__


def explain_silence(
    remote: HandshakingLink,
    steps: set[tls.HandshakeStep],
    received_any: bool,
    timeout_s: float,
    *,
    alert: bool = False,
) -> DtlsError:
    """The handshake got no (readable) answer: ``alert`` when an encrypted alert came instead."""
    if alert:
        where = (
            f"DTLS handshake with {remote.hostinfo} failed: the server answered with an alert we cannot read"
        )
    else:
        where = f"DTLS handshake with {remote.hostinfo} timed out after {timeout_s:g} s"
    if not received_any:
        return DtlsError(f"{where}: no answer at all (is a DTLS server listening on that port?)")
    if steps & _AFTER_FINISHED:
        return _after_finished(where, remote)
    return DtlsError(f"{where} during {max(steps, key=lambda s: s.value).name}")


def _after_finished(where: str, remote: HandshakingLink) -> DtlsError:
    if remote.options.credentials.mode == "psk":
        return DtlsError(
            f"{where} after our Finished message, which is what a wrong PSK (connect.coap.password) or an "
            "identity the server does not know (connect.coap.username) looks like"
        )
    return DtlsError(f"{where} after our Finished message: does the server trust our certificate?")


def explain_handshake_failure(
    exc: TLSError, remote: HandshakingLink, steps: set[tls.HandshakeStep]
) -> DtlsError:
    """``steps``: every handshake step the session went through (Mbed TLS resets the step on an alert)."""
    code = getattr(exc, "err", None)
    where = f"DTLS handshake with {remote.hostinfo} failed"
    if code == SSL_PEER_CLOSE_NOTIFY and steps & _AFTER_FINISHED:
        return _after_finished(f"{where}: the server closed the session", remote)
    if code == X509_CERT_VERIFY_FAILED:
        return DtlsError(f"{where}: the server's certificate was refused: {certificate_problem(remote)}")
    if code == SSL_FATAL_ALERT_MESSAGE:
        return DtlsError(
            f"{where}: the server sent a fatal alert (it refused our credentials or the cipher suites "
            f"{', '.join(remote.options.mbedtls_ciphers)})"
        )
    if code == SSL_NO_USABLE_CIPHERSUITE:
        return DtlsError(
            f"{where}: no cipher suite in common with {', '.join(remote.options.mbedtls_ciphers)}"
        )
    step = max(steps, key=lambda s: s.value).name
    return DtlsError(f"{where} during {step}: {getattr(exc, 'msg', '') or type(exc).__name__}")


def certificate_problem(remote: HandshakingLink) -> str:
    """What is wrong with the certificate the server presented, checked against our trust store."""
    if not remote.server_certificates:
        return "the server sent no certificate we could read"
    try:
        chain = [x509.CRT.from_DER(der) for der in remote.server_certificates]
    except Exception:
        return "the server's certificate could not be parsed"
    leaf = chain[0]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    for cert in chain:
        if cert.not_after < now:
            return f"certificate {cert.subject} expired on {cert.not_after:%Y-%m-%d %H:%M:%S} UTC"
        if cert.not_before > now:
            return f"certificate {cert.subject} is not valid before {cert.not_before:%Y-%m-%d %H:%M:%S} UTC"
    trust = remote.options.credentials.trust_store
    if trust is None or not _chains_to(chain, trust):
        return (
            f"certificate {leaf.subject} was issued by {chain[-1].issuer}, which is not in the truststore "
            "(connect.coap.truststore.path / connect.coap.certs)"
        )
    if remote.server_hostname is not None and not _names_host(leaf, remote.server_hostname):
        return f"certificate {leaf.subject} is not for host {remote.server_hostname!r} ({_names(leaf)})"
    return f"certificate {leaf.subject}: verification failed (key usage or signature)"


def _chains_to(chain: list[x509.CRT], trust: tls.TrustStore) -> bool:
    last = chain[-1]
    for anchor in trust:
        # python-mbedtls types a TrustStore's items as PEP 543's Certificate protocol; they are x509.CRT.
        if not isinstance(anchor, x509.CRT):
            continue
        try:
            if anchor.to_DER() == last.to_DER() or anchor.verify(last):
                return True
        except Exception:
            continue
    return False


def _names(cert: x509.CRT) -> str:
    names = [str(n) for n in (cert.subject_alternative_names or ())]
    return "names " + ", ".join(names) if names else f"subject {cert.subject}"


def _names_host(cert: x509.CRT, host: str) -> bool:
    host = host.lower()
    for name in cert.subject_alternative_names or ():
        text = str(name).lower()
        if text == host or (text.startswith("*.") and host.partition(".")[2] == text[2:]):
            return True
    return f"CN={host}" in str(cert.subject) and not cert.subject_alternative_names
