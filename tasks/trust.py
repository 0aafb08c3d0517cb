"""Which user tasks (`module:function` specs, imported and called) may run.

A spec read from a file someone else wrote (a run's saved config, a sweep.json) must not execute code it
names: opening a shared run directory would otherwise run `os:system:command=...`. Library calls trust
their caller (the person typing the spec in a notebook); the command-line tools open a `only_trusted`
scope in which a user task runs only if its exact spec was typed on the command line, or the user passed
`--allow-user-tasks` to trust every task the opened files name.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

_trusted: frozenset[str] | None = None  # None: every user task may run (library use)
ALLOW_FLAG = "--allow-user-tasks"


@contextlib.contextmanager
def only_trusted(typed: Iterable[str] = (), allow_all: bool = False) -> Iterator[None]:
    """Within this scope only user tasks whose spec is in `typed` run (all of them with `allow_all`)."""
    global _trusted
    previous = _trusted
    _trusted = None if allow_all else frozenset(s.strip() for s in typed)
    try:
        yield
    finally:
        _trusted = previous


def check_user_task(spec: str) -> None:
    """Raise unless the user task `spec` may be imported and called here."""
    if _trusted is None or spec.strip() in _trusted:
        return
    raise ValueError(f"task {spec!r} is a user task: it would import and call Python code named in a file you "
                     f"opened (a run's config or a sweep.json), which is refused so that opening someone else's "
                     f"run cannot execute code. If you trust that code, name the same task on the command line "
                     f"or pass {ALLOW_FLAG}.")
