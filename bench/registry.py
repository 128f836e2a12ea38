"""One small generic registry: methods, models, datasets and attacks are all kept in one.

What a registration declares beyond name, function and config is a typed, frozen info object
(`MethodInfo`, `bench.attacks.base.AttackInfo`, or `NoInfo`): a misspelled keyword is refused
at registration with one line, instead of being read back as a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.errors import UserError


@dataclass(frozen=True)
class NoInfo:
    """Models and datasets declare nothing beyond name, function and docstring."""


@dataclass(frozen=True)
class MethodInfo:
    """What a method declares: the forget protocols it is meant for (the leaderboard marks rows
    run on others) and whether it uses no randomness (the contract then expects equal models
    from different seeds)."""

    protocols: tuple[str, ...] = ("random", "class")
    deterministic: bool = False


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Callable[..., Any]
    config: type | None  # frozen dataclass of hyperparameters, or None
    description: str  # first line of the function's docstring
    source: str  # the file that registered it
    info: Any = field(default_factory=NoInfo)  # the registry's info type, e.g. MethodInfo
    loader: str = ""  # a method described by another process: the --plugin file its processes import


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid: {', '.join(sorted(choices))}."


class Registry:
    def __init__(self, kind: str, info: type = NoInfo):
        self.kind, self.info = kind, info
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config: type | None = None, **declared):
        """Decorator: register `fn` under `name` with `declared` fields of the registry's info type.
        A second registration of a name, or a keyword the info type lacks, is a UserError."""
        known = [f.name for f in dataclasses.fields(self.info)]
        for key in declared:
            if key not in known:
                raise UserError(f"{self.kind} '{name}': unknown declaration '{key}'."
                                f"{did_you_mean(key, known) if known else ' It takes none.'}")
        try:
            info = self.info(**declared)
        except TypeError as e:  # a required declaration left out
            raise UserError(f"{self.kind} '{name}': {e}; declare it in the registration.") from None

        def decorate(fn):
            if name in self._entries:  # in one process a name is registered once
                raise UserError(f"{self.kind} '{name}' is registered twice: in {self._entries[name].source} "
                                f"and in {inspect.getsourcefile(fn)}; rename one of them.")
            doc = inspect.getdoc(fn) or ""
            self.add(Entry(name, fn, config, doc.splitlines()[0] if doc else "", inspect.getsourcefile(fn) or "?", info))
            return fn

        return decorate

    def add(self, *entries: Entry) -> None:
        """Register made entries (e.g. methods described by another process), all or none: a name
        registered already from elsewhere is a UserError, and then none is added (the same
        definition again, e.g. one package's module imported by another's, is no change)."""
        seen = dict(self._entries)
        where = lambda e: (e.source, e.fn.__module__, e.fn.__qualname__)  # noqa: E731 - the definition
        for entry in entries:
            known = seen.get(entry.name)
            if known is not None and where(known) != where(entry):
                raise UserError(f"{self.kind} '{entry.name}' is registered twice: in {known.source} and in "
                                f"{entry.source}; rename one of them.")
            seen.setdefault(entry.name, entry)
        self._entries = seen

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
