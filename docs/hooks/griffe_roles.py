"""Griffe extension: show the Sphinx roles of the package's docstrings as inline code.

The docstrings use Sphinx cross-reference roles (``:func:`~eegdecode.x.f```, ``:class:`Name```); Markdown would
print them raw. Each role becomes inline code of what Sphinx would display: the last component with ``~``, the
explicit title of ``title <target>``, else the target as written.
"""

from __future__ import annotations

import re

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|obj|exc|const|ref):`([^`]+)`")


def _display(target: str) -> str:
    target = target.strip()
    titled = re.fullmatch(r"(.+?)\s*<[^>]+>", target)
    if titled:
        return titled.group(1)
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    return target


def strip_roles(text: str) -> str:
    """``:func:`~a.b.f``` -> ```f```; ``:class:`a.B``` -> ```a.B```."""
    return ROLE.sub(lambda m: f"`{_display(m.group(1))}`", text)


class SphinxRoles(Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
