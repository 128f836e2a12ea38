"""Finding methods: the built-in `methods/` package, `--plugin` files and installed entry points.

Built-in methods are imported here. Code from outside the repository (a `--plugin` file, an
installed package's entry point) never runs in this process: a process of its own imports it
(`bench.method_import.describe_in_child`, through `bench.sandbox`) and sends back, as JSON,
what each method it registered declares; here each becomes a registry entry whose config class
is rebuilt from that (`bench.schema`) and whose function only names its module, which every
call's process imports again (`bench.execute`). So a file that patches torch, numpy or the
harness on import changes nothing here, and nothing in any record but its own method's.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from bench.api import method_registry as _registry
from bench.errors import UserError
from bench.execute import prepare_server
from bench.method_import import METHOD_NAME, describe_in_child, import_builtin_methods
from bench.registry import Entry, MethodInfo
from bench.sandbox import SCRATCH_PREFIX, ChildFailed, run_isolated
from bench.schema import config_class

ENTRY_POINT_GROUP = "unlearn_bench.methods"
_loaded = False
_plugins: set[Path] = set()  # files already loaded: loading one twice is not a duplicate


def method_registry():
    """The method registry with every built-in method and installed plugin loaded."""
    global _loaded
    if not _loaded:
        _loaded = True
        import_builtin_methods()
        load_entry_points()
    return _registry


def method_protocols(method: str) -> tuple[str, ...]:
    """The forget protocols a method is meant for (random and class unless it says otherwise)."""
    if method == "original":
        return ("random", "class")
    return method_registry().get(method).info.protocols


def load_entry_points() -> None:
    """Register the methods that installed packages declare in the `unlearn_bench.methods` group."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load_foreign(("entry point", (ep.name, ep.value, ep.group)), f"entry point '{ep.name}' ({ep.value})")


def load_plugin(path: str) -> None:
    """Register the methods of a method file from outside the repository. Raises UserError
    naming the file and what is wrong with it (not a .py file, fails or exits on import, changes
    global state on import, registers a name that exists, a config that is not plain data)."""
    method_registry()
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise UserError(f"--plugin '{path}': no such .py file; pass the path of a method file.")
    if file.resolve() not in _plugins:
        _load_foreign(("plugin", str(file.resolve())), f"plugin '{path}'")
        _plugins.add(file.resolve())


def _load_foreign(what: tuple, named: str) -> None:
    """Register what `describe_in_child` finds `what` registers, in a process of its own."""
    try:
        value, _ = run_isolated(describe_in_child, (what, named), None, lambda message: None, prepare=prepare_server)
    except ChildFailed as e:
        raise UserError(f"{named}: {e} while importing it; a method file must only register methods.") from None
    if not (isinstance(value, list) and len(value) == 2 and value[0] in ("ok", "refused")):
        raise UserError(f"{named}: its process sent a description that is not one.")
    verdict, found = value
    if verdict != "ok":
        raise UserError(" ".join(str(found).split()))  # one line, whatever the process sent
    loader = what[1] if what[0] == "plugin" else ""  # a plugin's processes import the file itself
    try:
        entries = [_described_entry(d, loader) for d in found]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{named}: its process sent a description that is not one ({e}).") from None
    entries = [e for e in entries if not _seen(e)]
    try:
        _registry.add(*entries)  # all or none
    except UserError as e:
        raise UserError(f"{named}: {e}") from None


def _seen(entry: Entry) -> bool:
    """Registered already from the same file and function (one plugin importing another as a
    module: the same definition under two module names)."""
    known = _registry.get(entry.name) if entry.name in _registry else None
    return known is not None and (known.source, known.fn.__qualname__) == (entry.source, entry.fn.__qualname__)


def _described_entry(d: dict, loader: str) -> Entry:
    """The entry of a method another process described: its config class rebuilt, its function a
    stand-in that only names the module to import where the method runs. Everything is checked
    again here: the describing process ran the plugin's code and may say anything."""
    if not all(isinstance(d[k], str) for k in ("name", "module", "qualname", "source", "description", "config_name")) or not (
            isinstance(d["deterministic"], bool) and all(isinstance(p, str) for p in d["protocols"])):
        raise ValueError("a declaration of the wrong type")
    if not METHOD_NAME.fullmatch(d["name"]) or d["name"] == "original":
        raise ValueError(f"method name {d['name']!r} is not a plain name")
    source = Path(d["source"])
    if source.suffix != ".py" or not source.is_file() or any(p.startswith(SCRATCH_PREFIX) for p in source.parts):
        raise ValueError(f"method '{d['name']}' has no .py file that stays ({d['source']}; a process's scratch "
                         "folder goes when it ends)")
    if any(not isinstance(f.get("name"), str) or not f["name"].isidentifier() or f["name"].startswith("__")
           for f in d["config"] or ()):
        raise ValueError(f"method '{d['name']}': a config field name is not a plain identifier")
    config = config_class(d["config_name"], d["module"], d["config"])

    def runs_elsewhere(*args, **kwargs):
        raise RuntimeError(f"method '{d['name']}' runs in a process of its own; call it with bench.execute.call_method")

    runs_elsewhere.__module__, runs_elsewhere.__qualname__ = d["module"], d["qualname"]
    return Entry(d["name"], runs_elsewhere, config, d["description"], d["source"],
                 MethodInfo(tuple(d["protocols"]), d["deterministic"]), loader)
