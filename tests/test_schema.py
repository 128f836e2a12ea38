"""A method's config class travels between processes as plain data (bench/schema.py): what is
rebuilt from it declares the same fields, types, defaults, ranges and search spaces."""

import dataclasses
import typing

import pytest

from bench.errors import UserError
from bench.schema import config_class, config_schema, config_values
from bench.settings import build_dataclass
from bench.spec import choice, log_range, param, search_space


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = param(ge=1)  # required: no default
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.1))
    sizes: tuple[int, ...] = param((4, 8), ge=1)
    mode: str | None = param(None, choices=("a", "b"), search=choice("a", "b"))
    anything: typing.Any = None
    derived: int = dataclasses.field(default=0, init=False)

    def __post_init__(self):
        object.__setattr__(self, "derived", self.epochs * 2)


def test_a_config_class_rebuilt_from_its_schema_declares_the_same():
    import json

    schema = json.loads(json.dumps(config_schema(Config)))  # as it crosses a process
    rebuilt = config_class("Config", "elsewhere", schema)
    assert [f.name for f in dataclasses.fields(rebuilt)] == ["epochs", "lr", "sizes", "mode", "anything"]
    assert typing.get_type_hints(rebuilt) == {k: v for k, v in typing.get_type_hints(Config).items() if k != "derived"}
    assert search_space(rebuilt) == search_space(Config)
    for f in dataclasses.fields(rebuilt):
        original = Config.__dataclass_fields__[f.name]
        assert f.default == original.default and f.metadata["range"] == original.metadata.get("range")
    built = build_dataclass(rebuilt, {"epochs": 3, "sizes": [2, 3]}, "x")
    assert config_values(built) == config_values(Config(epochs=3, sizes=(2, 3)))
    assert Config(**config_values(built)).derived == 6  # the method's own class, rebuilt where it runs
    with pytest.raises(UserError, match="out of range"):
        build_dataclass(rebuilt, {"epochs": 0}, "x")
    with pytest.raises(UserError, match="unknown mode 'c'"):
        build_dataclass(rebuilt, {"epochs": 1, "mode": "c"}, "x")
    assert dataclasses.is_dataclass(rebuilt) and rebuilt.__dataclass_params__.frozen


def test_no_config_stays_none_and_a_schema_that_is_not_one_is_refused():
    assert config_schema(None) is None and config_class("C", "m", None) is None and config_values(None) is None
    for bad in ([{"name": "x", "type": "complex", "range": None, "search": None}],
                [{"name": "x", "type": "int", "range": {"low": "0", "high": None, "low_open": False,
                                                          "high_open": False, "choices": None}, "search": None}],
                [{"name": "x", "type": "int", "range": None, "search": {"kind": "int", "low": None, "high": 3,
                                                                           "choices": []}}]):
        with pytest.raises((KeyError, ValueError, TypeError)):
            config_class("C", "m", bad)
