"""An OSCORE security context directory as configured (``connect.coap.oscore.context``, a statement's
``PROPERTIES(oscore.context=...)``): its files and fields, read and checked without taking its lock.

Why here and not in ``streamapp/coap/oscore.py``: a bad directory is a configuration error, found where the
key is read (``keys.py`` validates with :func:`check_context_directory`) and again when the worker opens
the context (``coap/oscore.py``'s ``open_contexts``). The check reads the directory as aiocoap will (its
files, field spellings, algorithms), so the configuration needs aiocoap's tables, never the CoAP client.
An error names the file and the field, never a value: the directory holds the master secret.
"""

from __future__ import annotations

import binascii
import json
import os
from pathlib import Path
from typing import Any

from aiocoap import oscore

#: The files of a context directory (aiocoap's format).
SETTINGS_FILES = ("settings.json", "secret.json")
SEQUENCE_FILE = "sequence.json"
#: The fields every context needs, in settings.json or secret.json (plain, ``_hex`` or ``_ascii``).
REQUIRED_FIELDS = ("sender-id", "recipient-id", "secret")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "salt", "id-context", "algorithm", "kdf-hashfun", "window")
#: RFC 8613 §7.2.1: sender sequence numbers stay below 2 ** 40.
MAX_SEQUENCE_NUMBER = oscore.MAX_SEQNO


def check_context_directory(directory: str) -> None:
    """Read a context directory as the worker will, without taking its lock or writing: raises ValueError
    naming the file and the field that is wrong (never a value). An empty value is no context (valid)."""
    if not directory:
        return
    base = Path(directory)
    if not base.exists():
        raise ValueError(f"{directory}: no such directory (an OSCORE security context: settings.json, ...)")
    if not base.is_dir():
        raise ValueError(f"{directory} is not a directory (an OSCORE security context: settings.json, ...)")
    data = _read_fields(base)
    for field in REQUIRED_FIELDS:
        if field not in data:
            raise ValueError(
                f"{base / 'settings.json'} (or secret.json): {field} is missing "
                f"(as {field!r}, {field + '_hex'!r} or {field + '_ascii'!r})"
            )
    where = data["_files"]
    algorithm_name = data.get("algorithm", oscore.DEFAULT_ALGORITHM)
    algorithm = oscore.algorithms.get(algorithm_name) if isinstance(algorithm_name, str) else None
    if algorithm is None or not isinstance(algorithm, oscore.AeadAlgorithm):
        raise ValueError(f"{where['algorithm']}: algorithm is not an AEAD algorithm aiocoap knows")
    hashfun = data.get("kdf-hashfun", oscore.DEFAULT_HASHFUNCTION)
    if not isinstance(hashfun, str) or hashfun not in oscore.hashfunctions:
        raise ValueError(
            f"{where['kdf-hashfun']}: kdf-hashfun is not one of {', '.join(oscore.hashfunctions)}"
        )
    window = data.get("window", oscore.DEFAULT_WINDOWSIZE)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"{where['window']}: window is not a positive integer")
    for field in ("sender-id", "recipient-id", "secret", "salt", "id-context"):
        if field in data and not isinstance(data[field], bytes):
            raise ValueError(f"{where[field]}: {field} must be given as {field}_hex or {field}_ascii")
    longest = algorithm.iv_bytes - 6  # RFC 8613 §5.2: the ID must fit the nonce
    for field in ("sender-id", "recipient-id"):
        if len(data[field]) > longest:
            raise ValueError(f"{where[field]}: {field} is longer than {longest} bytes ({algorithm_name})")
    if data["sender-id"] == data["recipient-id"]:
        # The two endpoints would derive the same key and could use the same nonces (RFC 8613 §3.3).
        raise ValueError(f"{where['sender-id']}: sender-id and recipient-id are the same")
    if not data["secret"]:
        raise ValueError(f"{where['secret']}: secret is empty")
    _check_sequence_file(base / SEQUENCE_FILE)
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(
            f"{directory}: the worker cannot write here (it keeps {SEQUENCE_FILE}, the persisted sequence "
            "number, and a lock file in the directory: RFC 8613 §7.5)"
        )


def _read_fields(base: Path) -> dict[str, Any]:
    """The fields of settings.json and secret.json (``_hex``/``_ascii`` decoded), and under ``_files`` the
    file each came from (for error messages)."""
    data: dict[str, Any] = {}
    files: dict[str, str] = {}
    present = [base / name for name in SETTINGS_FILES if (base / name).exists()]
    if not present:
        raise ValueError(f"{base}: neither settings.json nor secret.json is there")
    for path in present:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise ValueError(f"{path}: cannot be read ({why})") from None
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(content, dict):
            raise ValueError(f"{path}: not a JSON object")
        for raw_name, value in content.items():
            name = raw_name
            if raw_name.endswith("_hex"):
                name = raw_name[: -len("_hex")]
                try:
                    value = binascii.unhexlify(value)
                except (binascii.Error, TypeError, ValueError):
                    raise ValueError(f"{path}: {raw_name} is not hexadecimal") from None
            elif raw_name.endswith("_ascii"):
                name = raw_name[: -len("_ascii")]
                try:
                    value = value.encode("ascii")
                except (AttributeError, UnicodeEncodeError):
                    raise ValueError(f"{path}: {raw_name} is not ASCII text") from None
            if name not in KNOWN_FIELDS:
                raise ValueError(f"{path}: unknown field {raw_name!r} (known: {', '.join(KNOWN_FIELDS)})")
            if name in data:
                raise ValueError(f"{path}: {name} is given twice (in settings.json and secret.json, say)")
            data[name] = value
            files[name] = str(path)
    for name in KNOWN_FIELDS:
        files.setdefault(name, str(present[0]))
    data["_files"] = files
    return data


def _check_sequence_file(path: Path) -> None:
    if not path.exists():
        return
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    following = content.get("next-to-send") if isinstance(content, dict) else None
    if (
        not isinstance(following, int)
        or isinstance(following, bool)
        or not 0 <= following <= MAX_SEQUENCE_NUMBER
    ):
        raise ValueError(f"{path}: next-to-send is not a sequence number (0 .. 2^40 - 1)")
    received = content.get("received")
    if received != "unknown" and not (
        isinstance(received, dict)
        and isinstance(received.get("index"), int)
        and isinstance(received.get("bitfield"), int)
    ):
        raise ValueError(f'{path}: received is neither "unknown" nor a replay window')


__all__ = ["MAX_SEQUENCE_NUMBER", "SEQUENCE_FILE", "check_context_directory"]
