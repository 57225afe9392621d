"""The DTLS cipher suites streamapp offers, by IANA name (as configured) with their Mbed TLS names.

The table is the domain of ``connect.coap.cipher.suites``: the key is checked against it where it is read
(``keys.py``), and the DTLS client (``streamapp/coap/dtls.py``, ``security.py``) offers from it, so the
configuration never needs the client to validate a value.
"""

from __future__ import annotations

CIPHER_SUITES = {
    "TLS_PSK_WITH_AES_128_CCM_8": "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS_PSK_WITH_AES_128_CBC_SHA256": "TLS-PSK-WITH-AES-128-CBC-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8": "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
}
#: With a PSK (stream-reactor's two suites), in order of preference.
PSK_SUITES = ("TLS_PSK_WITH_AES_128_CCM_8", "TLS_PSK_WITH_AES_128_CBC_SHA256")
#: With certificates: RFC 7252's mandatory ECDSA CCM_8 suite first, then GCM with ECDSA or RSA keys.
CERTIFICATE_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
)


def check_suite_names(names: tuple[str, ...]) -> None:
    """ValueError naming the first unknown suite and listing the known ones."""
    for name in names:
        if name.upper() not in CIPHER_SUITES:
            raise ValueError(f"unknown cipher suite {name!r}; choose from {', '.join(CIPHER_SUITES)}")
