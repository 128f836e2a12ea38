"""A method's config class as plain data, and back.

A `--plugin` file or an installed method package is imported only in a process of its own
(`bench.methods_loader`); what the driver needs of its config class (field names, types,
defaults, declared ranges and search spaces) travels back as JSON, and `config_class` rebuilds
an equivalent frozen dataclass from it, so that none of the file's code runs in the driver. A
config's own code (`__post_init__`, properties) runs only where the method runs; fields with
`init=False` are left out. Config values that cross a process travel the same way, as
`config_values`.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from bench.spec import Range, Search

PLAIN_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}


def config_schema(cls: type | None) -> list[dict] | None:
    """`cls`'s init fields as JSON-able dicts: name, type, default (absent if required), range,
    search. Raises ValueError naming a field whose default is not a plain value (number, string,
    bool, None, or a tuple of them)."""
    if cls is None:
        return None
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name.startswith("__"):  # the rebuilt class would take it for one of its own (__post_init__, __init__)
            raise ValueError(f"config field '{f.name}': a name with a leading '__' is the dataclass's own; rename it")
        described = {"name": f.name, "type": _type_schema(hints[f.name]), "kw_only": bool(f.kw_only),
                     "range": _plain_dict(f.metadata.get("range")), "search": _plain_dict(f.metadata.get("search"))}
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is not dataclasses.MISSING:
            described["default"] = default
        declared = [described.get("default"), *((described[k] or {}).get("choices") for k in ("range", "search"))]
        if not _is_plain(tuple(declared)):
            raise ValueError(f"config field '{f.name}': its default or choices are not plain values (numbers, "
                             "strings, bools, None or tuples of them; not an Enum or other subclass)")
        bounds = [(described[k] or {}).get(b) for k in ("range", "search") for b in ("low", "high")]
        if not all(b is None or type(b) in (int, float) for b in bounds):
            raise ValueError(f"config field '{f.name}': its bounds are not plain numbers (int or float; not numpy, "
                             "Fraction or bool)")
        fields.append(described)
    return fields


def config_class(name: str, module: str, schema: list[dict] | None) -> type | None:
    """A frozen dataclass `name` with the fields `config_schema` described (JSON lists read back
    as tuples). Raises ValueError, TypeError or KeyError on a schema that is not one."""
    if schema is None:
        return None
    fields = []
    for f in schema:
        metadata = {"range": _range(f["range"]), "search": _search(f["search"])}
        default = _tuples(f["default"]) if "default" in f else dataclasses.MISSING
        fields.append((f["name"], _type(f["type"]),
                       dataclasses.field(default=default, metadata=metadata, kw_only=f.get("kw_only") is True)))
    cls = dataclasses.make_dataclass(name, fields, frozen=True)
    cls.__module__ = module  # not importable here: pickled by value (Ray's cloudpickle), never by name
    return cls


def config_values(config) -> dict | None:
    """The init fields of a config instance, {name: value}; `type(config)(**values)` or the
    method's own config class rebuilds it."""
    if config is None:
        return None
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}


def _type_schema(tp) -> str | dict:
    """int/float/str/bool/None by name, unions and tuples as {"union": [...]} / {"tuple": item},
    anything else "any" (`bench.settings` then accepts any value, as it does for such a type)."""
    for name, plain in PLAIN_TYPES.items():
        if tp is plain:
            return name
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return {"union": [_type_schema(a) for a in typing.get_args(tp)]}
    if origin is tuple:
        args = typing.get_args(tp)
        return {"tuple": _type_schema(args[0]) if args else "any"}
    return "any"


def _type(schema):
    if isinstance(schema, dict) and set(schema) == {"union"}:
        return typing.Union[tuple(_type(a) for a in schema["union"])]
    if isinstance(schema, dict) and set(schema) == {"tuple"}:
        return tuple[_type(schema["tuple"]), ...]
    if schema == "any":
        return typing.Any
    return PLAIN_TYPES[schema]


def _is_plain(value) -> bool:
    """None, a bool, int, float or str exactly (an Enum member or other subclass would come back
    as its base type), or a tuple exactly of those."""
    if type(value) is tuple:
        return all(_is_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def _plain_dict(spec) -> dict | None:
    return dataclasses.asdict(spec) if spec is not None else None


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _range(spec: dict | None) -> Range | None:
    if spec is None:
        return None
    _bounds(spec)
    if not all(isinstance(spec[k], bool) for k in ("low_open", "high_open")):
        raise ValueError("a range's openness is not true or false")
    return Range(spec["low"], spec["high"], spec["low_open"], spec["high_open"],
                 _tuples(spec["choices"]) if spec["choices"] is not None else None)


def _search(spec: dict | None) -> Search | None:
    if spec is None:
        return None
    if spec["kind"] not in ("log", "float", "int", "choice"):
        raise ValueError(f"unknown search kind {spec['kind']!r}")
    _bounds(spec)
    if spec["kind"] != "choice" and None in (spec["low"], spec["high"]):
        raise ValueError("a numeric search space without bounds")
    return Search(spec["kind"], spec["low"], spec["high"], _tuples(spec["choices"]))


def _bounds(spec: dict) -> None:
    """Bounds are numbers or None, choices a list: else the schema is not one."""
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in (spec["low"], spec["high"])):
        raise ValueError("a bound is not a number")
    if not (spec["choices"] is None or isinstance(spec["choices"], list)):
        raise ValueError("choices are not a list")
