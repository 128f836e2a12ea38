"""Finding methods: the built-in `methods/` package, `--plugin` files and installed entry points."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from bench.api import method_registry as _registry
from bench.errors import UserError

ENTRY_POINT_GROUP = "unlearn_bench.methods"
PLUGIN_PREFIX = "unlearn_bench_plugin_"  # the module name of a --plugin file: this prefix and its stem
_loaded = False
_plugins: set[Path] = set()  # files already imported: loading one twice is not a duplicate


def method_registry():
    """The method registry with every built-in method and installed plugin imported."""
    global _loaded
    if not _loaded:
        _loaded = True
        import_builtin_methods()
        load_entry_points()
    return _registry


def import_builtin_methods() -> None:
    """Import every method of the built-in `methods/` package."""
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if not info.name.startswith("_"):  # _template.py and helpers are not methods
            importlib.import_module(f"methods.{info.name}")


def method_protocols(method: str) -> tuple[str, ...]:
    """The forget protocols a method is meant for (random and class unless it says otherwise)."""
    if method == "original":
        return ("random", "class")
    return method_registry().get(method).info.protocols


def load_entry_points() -> None:
    """Import the methods that installed packages declare in the `unlearn_bench.methods` group."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _guarded(ep.load, f"entry point '{ep.name}' ({ep.value})")


def load_plugin(path: str) -> None:
    """Import a method file from outside the repository; it registers itself on import."""
    method_registry()
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise UserError(f"--plugin '{path}': no such .py file; pass the path of a method file.")
    if file.resolve() not in _plugins:
        _import_file(file, path)


def _import_file(file: Path, given: str) -> None:
    name = f"{PLUGIN_PREFIX}{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module

    def run():
        spec.loader.exec_module(module)

    _guarded(run, f"plugin '{given}'")
    _plugins.add(file.resolve())


def load_method(name: str, module: str, source: str):
    """The registry entry of method `name`, importing what defines it first if this process has
    not: its `module`, or for a `--plugin` file, the file `source`. A method-call process
    (`bench.execute`) imports only the method it calls. Raises UserError if that does not
    register `name` (a method registered outside a method file's top level)."""
    if name not in _registry:
        if module.startswith(PLUGIN_PREFIX):
            _import_file(Path(source), source)
        else:
            _guarded(lambda: importlib.import_module(module), f"method module '{module}'")
    if name not in _registry:
        raise UserError(f"method '{name}' is not registered on importing {module} ({source}); register methods "
                        "at the top level of a method file.")
    return _registry.get(name)


def _guarded(load, what: str) -> None:
    from bench.guard import global_state_kept

    try:
        with global_state_kept() as changed:
            load()
        if changed:  # set back already; the file must not load
            raise UserError(f"changed global state on import ({'; '.join(changed)}); a method file must only "
                            "register methods")
    except UserError as e:
        raise UserError(f"{what}: {e}") from None
    except SystemExit as e:  # a plugin that exits on import must not end the command silently
        raise UserError(f"{what} called exit({e.code}) on import; a method file must only register methods.") from None
    except Exception as e:  # a plugin's own bug: name it in one line
        raise UserError(f"{what} failed to import: {type(e).__name__}: {e}") from None
