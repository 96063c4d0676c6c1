"""Named write boundaries, where the fault-injection tests stop a process as a kill would.

Code that writes a multi-file artefact calls :func:`boundary` after each file that lands (``"metrics"``,
``"last.weights"``, ...). In normal use nothing is registered and the call costs one global lookup. Tests install a
hook with :func:`inject`; the hook raises at the boundary it wants to "kill" at, so nothing after it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

_hook: Callable[[str], None] | None = None


def boundary(name: str) -> None:
    """Mark that a write has landed; the installed hook (tests only) may raise here."""
    if _hook is not None:
        _hook(name)


@contextlib.contextmanager
def inject(hook: Callable[[str], None]) -> Iterator[None]:
    """Install ``hook(name)`` for the duration of the block."""
    global _hook
    previous, _hook = _hook, hook
    try:
        yield
    finally:
        _hook = previous
