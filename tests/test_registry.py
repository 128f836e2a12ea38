from dataclasses import dataclass

import pytest

from bench.errors import UserError
from bench.methods_loader import method_registry
from bench.models import model_registry
from bench.registry import Registry


def test_register_get_and_list():
    reg = Registry("widget")

    @dataclass(frozen=True)
    class Cfg:
        size: int = 3

    @reg.register("alpha", config=Cfg)
    def alpha():
        """First line describes it.

        More text."""

    entry = reg.get("alpha")
    assert entry.fn is alpha and entry.config is Cfg
    assert entry.description == "First line describes it."
    assert reg.names() == ["alpha"] and "alpha" in reg


def test_duplicate_name_is_an_error():
    reg = Registry("widget")
    reg.register("alpha")(lambda: None)
    with pytest.raises(UserError, match="registered twice"):
        reg.register("alpha")(lambda: None)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError) as e:
        method_registry().get("finetun")
    assert "Did you mean 'finetune'?" in str(e.value)
    assert "gradient_ascent" in str(e.value)  # the valid choices are listed


def test_builtin_methods_and_models_are_registered():
    assert {"retrain", "finetune", "gradient_ascent"} <= set(method_registry().names())
    assert {"mlp", "cnn", "resnet18", "resnet18-tv"} <= set(model_registry.names())
    for entry in method_registry().entries():
        assert entry.description, f"{entry.name} has no docstring"
