"""How a patch knows the library under it is still the one it was written against: :class:`Internal`.

Each private piece a patch or accessor relies on is declared once, with the library and version it was
read in, and one of two checks:

- Python code: a digest of its source (:func:`source_digest`), so that any change to it, even one that
  keeps every name, is seen;
- compiled code, or a fact that is not code (a logger's name, an error's text): a predicate on the object,
  and for compiled code the installed version must also be the one written against, since there is no
  source to compare.

:meth:`Internal.check` raises :class:`PatchOutdated` with one line naming the internal, the patch that
relies on it, the version it was written against and the one installed.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from streamapp.errors import StreamappError


class PatchOutdated(StreamappError):
    """A library changed an internal that a patch of ``streamapp/patches/`` relies on."""


def source_digest(code: Any) -> str:
    """The first 16 hex digits of the SHA-256 of a function's (a property's getter's) source."""
    if isinstance(code, property):
        code = code.fget
    return hashlib.sha256(inspect.getsource(code).encode()).hexdigest()[:16]


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Internal:
    """One private piece of a library, as a patch was written against it.

    ``name`` says where it is (``faust.App._consumer``); ``find`` returns it (for a source check, the code
    whose source is hashed); ``module`` (the patch module's ``__name__``) and ``used_by`` name the patch or
    accessor that relies on it. Exactly one of ``digest`` (the expected :func:`source_digest`) and
    ``expect`` (a predicate, ``expected`` saying in words what it wants) is given; ``compiled`` adds the
    version check.
    """

    name: str
    find: Callable[[], Any]
    distribution: str
    version: str
    module: str
    used_by: str
    digest: str | None = None
    expect: Callable[[Any], bool] | None = None
    expected: str = ""
    compiled: bool = False

    def problem(self) -> str | None:
        """What differs from what the patch was written against (None: nothing)."""
        try:
            found = self.find()
        except (AttributeError, ImportError, KeyError) as exc:
            return f"it is gone ({type(exc).__name__}: {exc})"
        if self.compiled and installed_version(self.distribution) != self.version:
            return "compiled code, so only the version it was read in is trusted"
        if self.digest is not None:
            try:
                digest = source_digest(found)
            except (OSError, TypeError) as exc:  # no source: compiled, or not a function any more
                return f"its source cannot be read ({type(exc).__name__}: {exc})"
            if digest != self.digest:
                return f"its source changed (digest {digest}, expected {self.digest})"
        if self.expect is not None and not self.expect(found):
            return f"it is no longer {self.expected} (found {found!r})"
        return None

    def check(self) -> None:
        """Raise :class:`PatchOutdated` (one line) if :meth:`problem` finds anything."""
        problem = self.problem()
        if problem is not None:
            raise PatchOutdated(
                f"{self.name} is not what {self.module.replace('.', '/')}.py {self.used_by} was written "
                f"against ({self.distribution} {self.version}, installed "
                f"{installed_version(self.distribution)}): {problem}; revisit the patch"
            )
