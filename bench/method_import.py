"""Importing method code into this process: the built-in `methods/` package, a `--plugin` file,
a method's module, each guarded (`bench.guard`).

Code from outside the repository is imported only in a method's own process (`bench.execute`,
`bench.methods_loader`): `describe_in_child` is what such a process does to tell the driver
what a file registers.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

from bench.api import method_registry as registry
from bench.errors import UserError
from bench.schema import config_schema

PLUGIN_PREFIX = "unlearn_bench_plugin_"  # the module name of a --plugin file: this prefix and its stem
METHOD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")  # a method name names record files: no dots, no slashes


def import_builtin_methods() -> None:
    """Import every method of the built-in `methods/` package."""
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if not info.name.startswith("_"):  # _template.py and helpers are not methods
            importlib.import_module(f"methods.{info.name}")


def load_method(name: str, module: str, plugin: str | None):
    """The registry entry of method `name`, importing what registers it first if this process has
    not: the `--plugin` file `plugin` (which may import the module defining it from a folder it
    adds to the path), else its `module`. A method-call process (`bench.execute`) imports only
    the method it calls. Raises UserError if that does not register `name` (a method registered
    outside a method file's top level)."""
    if name not in registry:
        if plugin:
            import_file(Path(plugin), f"plugin '{plugin}'")
        else:
            guarded(lambda: importlib.import_module(module), f"method module '{module}'")
    if name not in registry:
        raise UserError(f"method '{name}' is not registered on importing {plugin or module}; register methods at "
                        "the top level of a method file.")
    return registry.get(name)


def import_file(file: Path, named: str) -> None:
    """Import a method file as module PLUGIN_PREFIX + its stem (`named`: how errors name it)."""
    name = f"{PLUGIN_PREFIX}{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    guarded(lambda: spec.loader.exec_module(module), named)


def guarded(load, named: str) -> None:
    """`load()`, refused with a UserError naming `named` and the cause if it changes global state
    (set back first), exits, or raises."""
    from bench.guard import global_state_kept

    try:
        with global_state_kept() as changed:
            load()
        if changed:  # set back already; the file must not load
            raise UserError(f"changed global state on import ({'; '.join(changed)}); a method file must only "
                            "register methods")
    except UserError as e:
        raise UserError(f"{named}: {e}") from None
    except SystemExit as e:  # a plugin that exits on import must not end the command silently
        raise UserError(f"{named} called exit({e.code}) on import; a method file must only register methods.") from None
    except Exception as e:  # a plugin's own bug: name it in one line
        raise UserError(f"{named} failed to import: {type(e).__name__}: {e}") from None


def describe_in_child(setup, receive, send) -> tuple[list, bytes]:
    """A method process's side of `bench.methods_loader`'s loading of outside code: import the
    file or entry point `setup` names; (["ok", [what each method it registered declares]] or
    ["refused", the one-line reason], no bytes). setup: (("plugin", path) or ("entry point",
    (name, value, group)), how to name it)."""
    (kind, what), named = setup
    receive()
    before = set(registry.names())
    try:
        if kind == "plugin":
            import_file(Path(what), named)
        else:
            guarded(EntryPoint(*what).load, named)
        found = [registry.get(n) for n in sorted(set(registry.names()) - before)]
        if not found:
            raise UserError(f"{named} registers no method; a method file registers one with @register_method.")
        for entry in found:
            _check_source(entry, named)
        return ["ok", [_description(entry) for entry in found]], b""
    except UserError as e:
        return ["refused", str(e)], b""
    except (ValueError, TypeError) as e:  # a config that cannot be described
        return ["refused", f"{named}: {e}; a method's config holds plain values."], b""


def _check_source(entry, named: str) -> None:
    """A method's code hash reads the file that defines it: that must be a .py file (a function
    made by exec has none)."""
    source = Path(entry.source)
    if not METHOD_NAME.fullmatch(entry.name):  # names reach tables and file names
        raise UserError(f"{named}: method name {entry.name!r}: use letters, digits, '_' and '-' only.")
    if entry.name == "original":
        raise UserError(f"{named}: 'original' is reserved (the model before unlearning); rename the method.")
    if source.suffix != ".py" or not source.is_file():
        raise UserError(f"{named}: method '{entry.name}' is not defined in a .py file ({entry.source}); define "
                        "methods in a method file.")


def _description(entry) -> dict:
    return {"name": entry.name, "module": entry.fn.__module__, "qualname": entry.fn.__qualname__, "source": entry.source,
            "description": entry.description, "protocols": list(entry.info.protocols),
            "deterministic": entry.info.deterministic, "config": config_schema(entry.config),
            "config_name": entry.config.__name__ if entry.config else ""}
