"""Loading methods from outside the repository (`--plugin` files, installed entry points): their
code runs only in processes of their own (bench.methods_loader), and every way a break test
found to get around that, or to be refused for the wrong reason, is a case here."""

import textwrap
from pathlib import Path

import pytest

from bench.store import load_records
from conftest import TINY_SUITE

REGISTERS = '''
from bench.api import register_method


@register_method("{name}")
def {name}(model, data, cfg, ctx):
    """Returns the original model."""
    return model
'''


def _plugin(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def _suite(tiny_suite, *methods):
    listed = "".join(f"  {m}: {{}}\n" for m in methods)
    return tiny_suite(TINY_SUITE.replace("  retrain: {}\n", "  retrain: {}\n" + listed).replace("seeds: [0, 1]",
                                                                                                "seeds: [0]"),
                      "plugins.yaml")


REFUSED = {
    "kills its fork server on import": (
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + REGISTERS.format(name="assassin"),
        "failed to import: PermissionError"),
    "an Enum default": (
        "import enum\nfrom dataclasses import dataclass\nfrom bench.api import register_method\n"
        "class Opt(str, enum.Enum):\n    SGD = 'sgd'\n"
        "@dataclass(frozen=True)\nclass C:\n    opt: Opt = Opt.SGD\n"
        "@register_method('enum_default', config=C)\ndef enum_default(model, data, cfg, ctx):\n    '''x'''\n    return model\n",
        "config field 'opt': its default or choices are not plain values"),
    "a numpy bound": (
        "import numpy as np\nfrom dataclasses import dataclass\nfrom bench.api import register_method, log_range, param\n"
        "@dataclass(frozen=True)\nclass C:\n    lr: float = param(0.1, search=log_range(np.float32(1e-3), 1.0))\n"
        "@register_method('numpy_bound', config=C)\ndef numpy_bound(model, data, cfg, ctx):\n    '''x'''\n    return model\n",
        "config field 'lr': its bounds are not plain numbers"),
    "a log range from 0": (
        "from dataclasses import dataclass\nfrom bench.api import register_method, log_range, param\n"
        "@dataclass(frozen=True)\nclass C:\n    lr: float = param(0.1, search=log_range(0.0, 1.0))\n"
        "@register_method('log_zero', config=C)\ndef log_zero(model, data, cfg, ctx):\n    '''x'''\n    return model\n",
        "ValueError: log_range(0.0, 1.0): needs 0 < low <= high"),
    "tuple choices": (
        "from dataclasses import dataclass\nfrom bench.api import register_method, choice, param\n"
        "@dataclass(frozen=True)\nclass C:\n    sizes: tuple = param((1, 2), search=choice((1, 2), (3, 4)))\n"
        "@register_method('tuple_choice', config=C)\ndef tuple_choice(model, data, cfg, ctx):\n    '''x'''\n    return model\n",
        "give one or more choices, each None, a bool, a number or a string"),
    "a function made by exec": (
        "from bench.api import register_method\n"
        "ns = {}\nexec('def made(model, data, cfg, ctx):\\n    return model\\n', {'__name__': __name__}, ns)\n"
        "register_method('made_by_exec')(ns['made'])\n",
        "method 'made_by_exec' is not defined in a .py file (<string>)"),
    "the reserved name original": (REGISTERS.format(name="original"), "'original' is reserved"),
    "a default outside its declared range": (
        "from dataclasses import dataclass\nfrom bench.api import register_method, param\n"
        "@dataclass(frozen=True)\nclass C:\n    lr: float = param(-1.0, gt=0)\n"
        + REGISTERS.format(name="bad_default").replace('@register_method("bad_default")',
                                                       '@register_method("bad_default", config=C)'),
        "its default lr=-1.0 lies outside its own declared range (> 0)"),
    "no method": ("x = 1\n", "registers no method"),
    "a pipe in its name": (REGISTERS.format(name="pipe_name").replace('register_method("pipe_name")',
                                                                      'register_method("pipe|name")'),
                           "method name 'pipe|name': use letters, digits"),
    "a name that exists": (REGISTERS.format(name="finetune"), "method 'finetune' is registered twice"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_method_file_is_refused_in_one_line_naming_itself_and_the_cause(case, cli, tiny_suite, tmp_path,
                                                                           forget_plugins):
    body, needle = REFUSED[case]
    plugin = _plugin(tmp_path, "bad", body)
    also = ("--methods", "finetune", "bad_default") if "bad_default" in body else ()  # defaults: checked when run
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--results", "r", *also)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (err.startswith(f"unlearn-bench: error: plugin '{plugin}'") or also) and needle in err, err
    assert not Path("r").exists()


def test_a_clash_in_the_second_file_leaves_nothing_of_it_registered(cli, tmp_path, forget_plugins):
    from bench.methods_loader import method_registry

    first = _plugin(tmp_path, "first", REGISTERS.format(name="shared_name"))
    second = _plugin(tmp_path, "second", REGISTERS.format(name="only_in_second") + REGISTERS.format(name="shared_name")
                     .replace("def shared_name", "def shared_name_again"))
    code, _, err = cli("list", "methods", "--plugin", first, "--plugin", second)
    assert code == 2 and err.startswith(f"unlearn-bench: error: plugin '{second}': method 'shared_name' is registered"), err
    assert "shared_name" in method_registry() and "only_in_second" not in method_registry()


HELPER = '''
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "lib"))  # the call's process must import this file, not the helper
import helper_methods  # noqa: E402 - registers helper_method
from methods._template import TemplateConfig  # noqa: E402,F401 - a repository module a plugin may import
'''

NEVER_CALLED = '''
from bench.api import register_method


def _unused():
    from bench.__main__ import main  # named in the text only: hashing the file must not import it
    return main


@register_method("hashes_safely")
def hashes_safely(model, data, cfg, ctx):
    """Returns the original model."""
    return model
'''

FAILS_IN_CALLS = '''
from pathlib import Path
from bench.api import register_method

if not Path(__file__).with_suffix(".ok").exists():
    raise RuntimeError("the marker file is gone: this import fails in the method's own process")


@register_method("fails_later")
def fails_later(model, data, cfg, ctx):
    """Returns the original model."""
    return model
'''


def test_plugins_that_import_helpers_or_name_modules_run_and_a_late_import_error_is_named(cli, tiny_suite, tmp_path,
                                                                                          forget_plugins):
    """A plugin that puts its own folder on the path and imports the module defining its method
    (the method's process imports the plugin, not the module); one naming `bench.__main__` in
    an unused function (hashing it used to import that and run the command again); one that
    imports methods/_template.py (which registers `template`); and one whose import fails only
    in the call's process: its record names that error, not the socket's."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper_methods.py").write_text(REGISTERS.format(name="helper_method"))
    helper = _plugin(tmp_path, "uses_helper", HELPER)
    unused = _plugin(tmp_path, "never_called", NEVER_CALLED)
    late = _plugin(tmp_path, "late", FAILS_IN_CALLS)
    late.with_suffix(".ok").write_text("")
    plugins = ("--plugin", helper, "--plugin", unused, "--plugin", late)
    code, out, err = cli("list", "methods", *plugins)
    assert code == 0 and "template" in out and "helper_method" in out, err
    late.with_suffix(".ok").unlink()
    suite = _suite(tiny_suite, "helper_method", "hashes_safely", "template", "fails_later")
    code, out, err = cli("run", suite, "--quiet", "--no-leaderboard", *plugins)
    assert code == 0, err
    records = {r["method"]: r for r in load_records(Path("results"))}
    assert {m: records[m]["status"] for m in ("helper_method", "hashes_safely", "template")} == dict.fromkeys(
        ("helper_method", "hashes_safely", "template"), "ok")
    assert records["fails_later"]["status"] == "failed"
    assert "the marker file is gone" in records["fails_later"]["error"], records["fails_later"]["error"]


KW_ONLY = '''
from dataclasses import KW_ONLY, dataclass
from bench.api import param, register_method


@dataclass(frozen=True)
class Config:
    lr: float = param(0.01, gt=0)
    _: KW_ONLY
    need: float = param(gt=0)  # required, after a field with a default


@register_method("needs_a_value", config=Config)
def needs_a_value(model, data, cfg, ctx):
    """Returns the original model once it has its required value."""
    assert cfg.need == 0.5 and cfg.lr == 0.01
    return model
'''


def test_a_config_with_a_required_keyword_only_field_runs_with_the_suites_value(cli, tiny_suite, tmp_path,
                                                                                  forget_plugins):
    plugin = _plugin(tmp_path, "kwonly", KW_ONLY)
    suite = tiny_suite(TINY_SUITE.replace("  retrain: {}\n", "  retrain: {}\n  needs_a_value: {need: 0.5}\n")
                       .replace("seeds: [0, 1]", "seeds: [0]"), "kw.yaml")
    code, _, err = cli("run", suite, "--quiet", "--no-leaderboard", "--plugin", plugin, "--methods", "needs_a_value")
    assert code == 0, err
    record = next(r for r in load_records(Path("results")) if r["method"] == "needs_a_value")
    assert record["status"] == "ok", record["error"]


def test_entry_points_whose_modules_import_each_other_register_each_method_once(monkeypatch, tmp_path, forget_plugins):
    import sys
    from importlib.metadata import EntryPoint

    import bench.methods_loader as loader

    package = tmp_path / "epmeth"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(REGISTERS.format(name="ep_a"))
    (package / "b.py").write_text("from epmeth.a import ep_a  # noqa: F401\n" + REGISTERS.format(name="ep_b"))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint(name=n, value=f"epmeth.{m}", group=loader.ENTRY_POINT_GROUP) for n, m in (("a", "a"), ("b", "b"))]
    monkeypatch.setattr(loader, "entry_points", lambda group: eps if group == loader.ENTRY_POINT_GROUP else [])
    loader.load_entry_points()
    assert {"ep_a", "ep_b"} <= set(loader.method_registry().names())
    assert Path(loader.method_registry().get("ep_a").source) == package / "a.py"
    sys.modules.pop("epmeth", None)


FORGES = '''
import bench.method_import as mi
from bench.api import register_method

real = mi._description


def forged(entry):
    d = real(entry)
    d.update({{{forge}}})
    return d


mi._description = forged
mi._check_source = lambda entry, named: None


@register_method("forged")
def forged_method(model, data, cfg, ctx):
    """Returns the original model."""
    return model
'''


@pytest.mark.parametrize("forge, needle", [
    ('"name": "../../escape"', "method name '../../escape' is not a plain name"),
    ('"name": "original"', "method name 'original' is not a plain name"),
    ('"source": "/nonexistent/forged.py"', "has no .py file that stays (/nonexistent/forged.py"),
    ('"source": "/tmp"', "has no .py file that stays (/tmp;"),
    ('"config": [{"name": "__post_init__", "type": "int", "range": None, "search": None, "default": 1}]',
     "a config field name is not a plain identifier"),
])
def test_the_driver_checks_what_a_describing_process_says_again(forge, needle, cli, tiny_suite, tmp_path,
                                                                  forget_plugins):
    """The describing process ran the plugin's code, which can replace the harness's own checks
    there: a forged description must be refused by the driver, with nothing written (a method
    named ../../escape once had its record written outside --results)."""
    plugin = _plugin(tmp_path, "forges", FORGES.format(forge=forge))
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "its process sent a description that is not one" in err and needle in err, err
    assert not Path("r").exists() and not list(tmp_path.parent.glob("escape*"))


VANISHES = '''
import importlib.util
import sys
import tempfile
from pathlib import Path

impl = Path(tempfile.gettempdir()) / "vanish_impl.py"  # the process's scratch folder: removed when it ends
impl.write_text("from bench.api import register_method\\n"
                "@register_method('vanishes')\\n"
                "def vanishes(model, data, cfg, ctx):\\n    return model\\n")
sys.path.insert(0, str(impl.parent))
import vanish_impl  # noqa: E402,F401
'''


def test_a_method_defined_in_a_file_that_is_gone_and_a_dunder_field_are_refused(cli, tiny_suite, tmp_path,
                                                                                 forget_plugins):
    plugin = _plugin(tmp_path, "vanish", VANISHES)
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "has no .py file that stays" in err, err
    dunder = _plugin(tmp_path, "dunder", "from dataclasses import dataclass\nfrom bench.api import register_method\n"
                     "@dataclass(frozen=True)\nclass C:\n    __post_init__: int = 1\n"
                     + REGISTERS.format(name="dunder_field").replace('register_method("dunder_field")',
                                                                      'register_method("dunder_field", config=C)'))
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", dunder, "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "config field '__post_init__': a name with a leading '__' is the dataclass's own" in err, err


def test_a_plugin_imported_by_another_plugin_is_the_same_method(cli, tmp_path, forget_plugins):
    """pb.py imports pa.py (as module `pa`); given both with --plugin, pa's method is one method
    seen twice (under two module names), not a clash."""
    (tmp_path / "pa.py").write_text(REGISTERS.format(name="pl_a"))
    (tmp_path / "pb.py").write_text("import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path(__file__).parent))\n"
                                    "import pa  # noqa: E402,F401\n" + REGISTERS.format(name="pl_b"))
    code, out, err = cli("list", "methods", "--plugin", tmp_path / "pa.py", "--plugin", tmp_path / "pb.py")
    assert code == 0 and "pl_a" in out and "pl_b" in out, err


SENDS_JUNK = """
import gc
import json
import os
from multiprocessing.connection import Connection

for conn in [o for o in gc.get_objects() if isinstance(o, Connection) and not o.closed]:
    try:  # its process's line to the harness (the others are the server's, closed in this process)
        conn.send_bytes(json.dumps(["result", {junk}]).encode())
        conn.send_bytes(b"")
        os._exit(0)
    except OSError:
        continue
"""


@pytest.mark.parametrize("junk, needle", [
    ('"not a list"', "its process sent a description that is not one."),
    ('["refused", "line one\\nline two"]', "line one line two"),
    ('["ok", [{"name": 1}]]', "its process sent a description that is not one"),
])
def test_a_describing_process_that_sends_junk_is_refused_in_one_line(junk, needle, cli, tmp_path, forget_plugins):
    """The plugin runs in the describing process, so it can send the harness anything on that
    process's connection: whatever comes back, the driver says so in one line."""
    plugin = _plugin(tmp_path, "junk", SENDS_JUNK.format(junk=junk))
    code, _, err = cli("list", "methods", "--plugin", plugin)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
