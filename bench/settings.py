"""Typed, range-checked settings from YAML values: suite sections, method hyperparameters and
`--set` overrides all become frozen dataclasses through `build_dataclass`, which rejects unknown
keys (with "did you mean"), wrong types, non-finite numbers and values outside the range a field
declares with `bench.spec.param`. YAML is read with `UniqueKeyLoader`: a key given twice is an error.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import yaml

from bench.errors import UserError
from bench.registry import did_you_mean
from bench.spec import field_range


def _coerce(value, tp, where: str):
    """Check `value` against the annotation `tp`; return it converted (list->tuple, int->float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UserError as e:
                errors.append(e)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}.")
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, where) for v in value)
    if tp is float:
        # YAML 1.1 reads 5e-4 (no dot) as a string; accept it as the number it means.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{where}: expected a number, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected an integer, got {value!r}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true or false, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: expected a string, got {value!r}.")
    return value


def _check_range(value, f: dataclasses.Field, where: str) -> None:
    """The value's declared range (bench.spec.param); floats must be finite in any case."""
    rng = field_range(f)
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise UserError(f"{where}: {value!r} is not a finite number.")
    if rng is None or rng.accepts(value):
        return
    if rng.choices is not None and isinstance(value, str):
        raise UserError(f"{where}: unknown {f.name} '{value}'.{did_you_mean(value, [str(c) for c in rng.choices])}")
    raise UserError(f"{where}: {value!r} is out of range; it must be {rng.describe()}"
                    f"{' (each element)' if isinstance(value, tuple) else ''}.")


def build_dataclass(cls, data, where: str):
    """Build frozen dataclass `cls` from a mapping; unknown keys and wrong types are UserErrors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of keys to values, got {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise UserError(f"{where}: unknown key '{key}'.{did_you_mean(str(key), list(fields))}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
        _check_range(kwargs[key], fields[key], f"{where}.{key}")
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{where}: missing required key '{missing[0]}'.")
    return cls(**kwargs)


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """`--set finetune.lr=0.01` -> {"finetune": {"lr": 0.01}}; values are read as YAML scalars."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise UserError(f"--set '{pair}': expected SECTION.KEY=VALUE, e.g. finetune.lr=0.01.")
        if not raw.strip():  # YAML reads nothing as null: say so rather than "got None" later
            raise UserError(f"--set '{pair}': no value after '='; give one, e.g. --set finetune.lr=0.01.")
        if name in out.get(section, {}):  # argparse keeps both; the first would be silently lost
            raise UserError(f"--set {key} is given twice; keep one of them.")
        try:
            out.setdefault(section, {})[name] = yaml.load(raw, UniqueKeyLoader)
        except (yaml.YAMLError, ValueError) as e:  # ValueError: an integer longer than Python converts
            raise UserError(f"--set '{pair[:80]}': the value is not valid YAML ({str(e).splitlines()[0]}).") from None
    return out


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (instead of keeping the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)
