"""One small generic registry: methods, models, datasets and attacks are all kept in one."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Callable[..., Any]
    config: type | None  # frozen dataclass of hyperparameters, or None
    description: str  # first line of the function's docstring
    source: str  # the file that registered it
    meta: dict = field(default_factory=dict)  # e.g. {"deterministic": True} for a method without randomness


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid: {', '.join(sorted(choices))}."


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config: type | None = None, **meta):
        """Decorator: register `fn` under `name`; a second registration of a name is an error."""

        def decorate(fn):
            if name in self._entries:
                raise UserError(
                    f"{self.kind} '{name}' is registered twice: in {self._entries[name].source} "
                    f"and in {inspect.getsourcefile(fn)}; rename one of them."
                )
            doc = inspect.getdoc(fn) or ""
            self._entries[name] = Entry(
                name, fn, config, doc.splitlines()[0] if doc else "", inspect.getsourcefile(fn) or "?", meta
            )
            return fn

        return decorate

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} '{name}'.{did_you_mean(name, self.names())}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]
