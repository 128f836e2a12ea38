"""A method call changes nothing but its return value: routes a plugin can take to poison later
runs (issue 18, section 1) end in a `failed` record naming the cause, and later records are the
ones a run without the offending plugin makes."""

import copy
import runpy
from pathlib import Path

import pytest


from bench.store import load_records
from conftest import TINY_SUITE

POISON = '''
import gc
import os
import signal
import torch
from bench.api import register_method

def _make(name, act):
    def method(model, data, cfg, ctx):
        """Poisons a later run."""
        act(ctx)
        return model
    method.__name__ = name
    register_method(name)(method)

_make("shifts_batches", lambda ctx: ctx.batcher.mean.add_(0.5))
_make("float64", lambda ctx: torch.set_default_dtype(torch.float64))
_make("no_grad", lambda ctx: torch.set_grad_enabled(False))
_make("threads", lambda ctx: torch.set_num_threads(2))
_make("chdir", lambda ctx: os.chdir("/"))
_make("exits", lambda ctx: exit(3))
_make("hard_exit", lambda ctx: os._exit(0))
_make("segfaults", lambda ctx: os.kill(os.getpid(), signal.SIGSEGV))
_make("interrupts", lambda ctx: (_ for _ in ()).throw(KeyboardInterrupt()))
_make("flips_memory", lambda ctx: [o.bitwise_not_() for o in gc.get_objects()
                                   if isinstance(o, torch.Tensor) and o.dtype == torch.uint8])


class Evil:  # runs code wherever it is unpickled
    def __reduce__(self):
        return (exec, ("import torch; torch.Tensor.argmax = lambda s, *a, **k: torch.zeros(s.shape[0], dtype=torch.long)",))


def pickles_code(model, data, cfg, ctx):
    """Returns a model that runs code when unpickled."""
    model.note = Evil()
    return model


def hooks_model(model, data, cfg, ctx):
    """Returns a model whose forward hook answers with the labels it finds in the caller's frames."""
    import sys
    import torch.nn.functional as F

    def cheat(module, inputs, out):
        frame = sys._getframe(1)
        while frame is not None and "y" not in frame.f_locals:
            frame = frame.f_back
        return out if frame is None else F.one_hot(frame.f_locals["y"], out.shape[1]).float() * 20
    model.register_forward_hook(cheat)
    return model


def lingers(model, data, cfg, ctx):
    """Leaves a double-forked process behind that acts after the call."""
    import time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(2)
            open(LINGER_MARKER, "w").write("still here")
        os._exit(0)
    return model


def kills_server(model, data, cfg, ctx):
    """Kills the fork server its process came from, then returns."""
    import time
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(0.5)
    return model


def kills_driver(model, data, cfg, ctx):
    """Sends SIGTERM to the harness (its fork server's parent)."""
    driver = int(open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()[1])
    os.kill(driver, signal.SIGTERM)
    return model


def writes_files(model, data, cfg, ctx):
    """Overwrites a file outside its scratch folder (e.g. the model cache)."""
    open(WRITE_TARGET, "w").write("poisoned")
    return model


for fn in (pickles_code, hooks_model, lingers, kills_server, kills_driver, writes_files):
    register_method(fn.__name__)(fn)
'''

PATCHES_ON_IMPORT = '''
import numpy as np
import torch
import torch.nn.functional as F

import bench.metrics
from bench.api import register_method

torch.Tensor.argmax = lambda self, *a, **k: torch.zeros(self.shape[0], dtype=torch.long)
F.cross_entropy = lambda *a, **k: torch.tensor(0.0, requires_grad=True)
np.mean = lambda *a, **k: 0.5
for name in dir(bench.metrics):
    if callable(getattr(bench.metrics, name)) and not name.startswith("_"):
        setattr(bench.metrics, name, lambda *a, **k: 0.0)


@register_method("patched_at_import")
def patched_at_import(model, data, cfg, ctx):
    """Returns the original model; its file patched torch, numpy and the harness on import."""
    return model
'''


ROUTES = {"float64": "torch default dtype torch.float32 -> torch.float64",
          "no_grad": "torch gradient mode True -> False", "threads": "torch thread count 1 -> 2",
          "chdir": "working directory", "exits": "called exit(3)",
          "hard_exit": "its process ended (exit code 0) before sending a result",
          "segfaults": "its process was killed by SIGSEGV", "interrupts": "raised KeyboardInterrupt",
          "writes_files": "PermissionError",  # writes outside its scratch folder (bench.landlock)
          "kills_server": "PermissionError", "kills_driver": "PermissionError"}  # signals leave no sandbox
# recorded ok: they harm nothing (patched_at_import's file patched torch, numpy and the harness in
# its own processes only)
HARMLESS = ("shifts_batches", "flips_memory", "pickles_code", "hooks_model", "lingers", "patched_at_import")


def _suite(tiny_suite, methods):
    listed = "".join(f"  {m}: {{}}\n" for m in methods)
    return tiny_suite(TINY_SUITE.replace("  retrain: {}\n", "  retrain: {}\n" + listed), f"s{len(methods)}.yaml")


def test_poisoning_routes_fail_their_own_run_and_leave_later_runs_alone(cli, tiny_suite, tmp_path, forget_plugins):
    """Includes what a method returns: a model that runs code when unpickled, or carries a
    forward hook reading the caller's labels, comes back as weights only (a state dict read
    with weights_only=True); processes a call leaves behind are killed when it ends. And what a
    method file does on import: its top-level code runs only in processes of its own
    (bench.methods_loader), so patching torch.Tensor.argmax, F.cross_entropy, numpy.mean and
    the harness's metrics there changes nothing in the driver."""
    import time

    import numpy as np
    import torch

    import bench.metrics

    marker, target = tmp_path / "lingered", tmp_path / "cache-file"
    target.write_text("clean")
    plugin, patches = tmp_path / "poison.py", tmp_path / "patches.py"
    plugin.write_text(f"LINGER_MARKER, WRITE_TARGET = {str(marker)!r}, {str(target)!r}\n" + POISON)
    patches.write_text(PATCHES_ON_IMPORT)
    args = ("--quiet", "--seeds", "0", "--no-leaderboard", "--plugin", plugin)
    assert cli("run", _suite(tiny_suite, []), *args, "--results", "clean")[0] == 0
    argmax, mean, metrics = torch.Tensor.argmax, np.mean, dict(vars(bench.metrics))
    code, _, err = cli("run", _suite(tiny_suite, [*HARMLESS, *ROUTES]), *args, "--plugin", patches,
                       "--results", "poisoned")
    assert code == 0, err
    assert torch.Tensor.argmax is argmax and np.mean is mean and dict(vars(bench.metrics)) == metrics
    records = {r["method"]: r for r in load_records(Path("poisoned"))}
    for method, reason in ROUTES.items():
        assert records[method]["status"] == "failed" and reason in records[method]["error"], records[method]
    clean = {r["method"]: r for r in load_records(Path("clean"))}
    for method in ("original", "retrain", "finetune", "gradient_ascent"):
        assert records[method]["status"] == "ok"
        assert records[method]["metrics"] == clean[method]["metrics"], method  # untouched by the poison
        assert records[method]["env"]["threads"] == 1
    assert not list(Path("/").glob("poisoned"))  # no later output moved by the chdir
    for method in ("pickles_code", "hooks_model", "patched_at_import"):  # the original's weights, scored as such
        assert records[method]["status"] == "ok"
        assert records[method]["metrics"]["test_acc"] == clean["original"]["metrics"]["test_acc"]
    time.sleep(3)
    assert not marker.exists()  # the lingering process was killed
    assert target.read_text() == "clean"  # writes outside its scratch folder are refused (bench.landlock)


def test_a_method_file_that_changes_global_state_on_import_is_refused(cli, tiny_suite, tmp_path, forget_plugins):
    import torch

    plugin = tmp_path / "at_import.py"
    plugin.write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "changed global state on import (torch default dtype torch.float32 -> torch.float64)" in err
    assert torch.get_default_dtype() == torch.float32 and not Path("r").exists()


HUNT = '''
import gc
import inspect

import torch
from bench.api import register_method

TARGET = torch.tensor({target}, dtype=torch.uint8)


def _holds_target(obj):
    return (issubclass(type(obj), torch.Tensor) and obj.dtype == torch.uint8 and obj.dim() == 4
            and obj.shape[1:] == TARGET.shape and bool((obj == TARGET).flatten(1).all(1).any()))


@register_method("hunts_test", deterministic=True)
def hunts_test(model, data, cfg, ctx):
    """Looks for the test split through the caller's frames, the workspace and the garbage
    collector; reports what it found in its returned weights (it may not write files)."""
    found = [0.0, 0.0, 0.0, 0.0]  # .test, .train_part, .splits in a frame; a test image through gc
    frame = inspect.currentframe()
    while frame is not None:
        for value in frame.f_locals.values():
            for i, attr in enumerate(("test", "train_part", "splits")):
                if getattr(value, attr, None) is not None and not isinstance(value, type):
                    found[i] = 1.0
        frame = frame.f_back
    found[3] = float(any(_holds_target(obj) for obj in gc.get_objects()))
    with torch.no_grad():
        next(model.parameters()).view(-1)[:4].copy_(torch.tensor(found))
    return model
'''


def test_a_method_finds_no_route_to_the_test_split(tmp_path, forget_plugins):
    """The routes a method took to the test images (the caller's frames, the workspace's
    `train_part` and `splits`, a walk of the garbage collector) find nothing in the method's own
    process; the same code run in the caller's process finds them (so the hunt itself works)."""
    import numpy as np

    from bench.checks import problem
    from bench.execute import call_method
    from bench.methods_loader import load_plugin, method_registry

    p = problem(tmp_path)
    seen = np.concatenate([p.data.forget.x, p.data.retain.x, p.data.val.x]).reshape(-1, 64)
    only_test = next(x for x in p.ws.test.x if not (seen == x.reshape(1, 64).numpy()).all(1).any())
    plugin = tmp_path / "hunt.py"
    plugin.write_text(HUNT.format(target=only_test.tolist()))
    load_plugin(str(plugin))
    entry = method_registry().get("hunts_test")
    found = lambda model: next(model.parameters()).view(-1)[:4].tolist()  # noqa: E731
    model, _, status, error = call_method(entry, p.original, p.data, None, p.ws.context(0, "hunt"))
    assert status == "ok", error
    assert found(model) == [0.0, 0.0, 0.0, 0.0]
    ws = p.ws  # noqa: F841 - the workspace, in this frame, as the runner holds it
    method_registry().unregister("hunts_test")  # the plugin's code never ran here: run it here now
    runpy.run_path(str(plugin))
    hunt = method_registry().get("hunts_test").fn
    here = hunt(copy.deepcopy(p.original), p.data.private_copy(), None, p.ws.context(0, "hunt"))  # in this process
    assert found(here) == [1.0, 1.0, 1.0, 1.0]


SLEEPER = '''
import time
from pathlib import Path
from bench.api import register_method


@register_method("sleeper")
def sleeper(model, data, cfg, ctx):
    """Sleeps long enough to be interrupted."""
    print("started", flush=True)  # the driver's stdout (a method's process may not write files)
    time.sleep(60)
    return model
'''


@pytest.mark.slow
def test_the_users_ctrl_c_ends_the_sweep_and_the_method_process(tiny_suite, tmp_path):
    """SIGINT reaches the whole process group: the method's process ignores it and is killed by
    the driver, which stops the sweep as interrupted (exit 130), writing no record of the call."""
    import os
    import signal
    import subprocess
    import sys
    import time

    plugin = tmp_path / "sleeper.py"
    plugin.write_text(SLEEPER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    driver = subprocess.Popen([sys.executable, "-m", "bench", "run", str(_suite(tiny_suite, ["sleeper"])), "--quiet",
                               "--seeds", "0", "--no-leaderboard", "--plugin", str(plugin), "--results", "r"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert "started\n" in iter(driver.stdout.readline, "")  # reads up to the sleeper's line
    sleepers = subprocess.run(["pgrep", "-s", str(driver.pid), "-f", "unlearn-bench|bench"], capture_output=True,
                              text=True).stdout.split()
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "interrupted; finished runs are recorded, rerun to resume." in err
    alive = lambda: [pid for pid in sleepers if Path(f"/proc/{pid}").exists()]  # noqa: E731
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sleepers) >= 3 and alive() == []  # driver, fork server, the sleeping child
    assert not [r for r in load_records(tmp_path / "r") if r["method"] == "sleeper"]


@pytest.mark.parametrize("body, reason", [
    ("import os\nos._exit(0)\n", "its process ended (exit code 0) before sending a result while importing it"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "its process was killed by SIGSEGV while importing it"),
    ("from dataclasses import dataclass, field\nfrom bench.api import register_method\n"
     "@dataclass(frozen=True)\nclass C:\n    layers: list = field(default_factory=lambda: [object()])\n"
     "@register_method('odd_default', config=C)\ndef odd_default(model, data, cfg, ctx):\n    '''x'''\n    return model\n",
     "config field 'layers': its default or choices are not plain values"),
])
def test_a_method_file_that_dies_or_cannot_be_described_on_import_is_refused(cli, tiny_suite, tmp_path, forget_plugins,
                                                                              body, reason):
    plugin = tmp_path / "bad_import.py"
    plugin.write_text(body)
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"plugin '{plugin}'" in err and reason in err, err
    assert not Path("r").exists()


def _scratch_of_this_call(setup, receive, send):
    import os
    import tempfile

    receive()
    return [tempfile.gettempdir(), os.getpid()], b""


def test_each_call_writes_in_a_scratch_folder_unique_to_its_server_and_removed_after():
    """A scratch folder named by pid alone clashed with a dead server's leftover of the same pid
    (FileExistsError: the call failed); now it lives in a folder unique to its server."""
    import time

    from bench.execute import prepare_server
    from bench.sandbox import run_isolated

    (scratch, pid), _ = run_isolated(_scratch_of_this_call, None, None, lambda m: None, prepare=prepare_server)
    assert Path(scratch).name == str(pid) and Path(scratch).parent.name.startswith("unlearn-bench-calls-")
    for _ in range(50):  # removed when the server reaps the child
        if not Path(scratch).exists():
            break
        time.sleep(0.1)
    assert not Path(scratch).exists() and Path(scratch).parent.is_dir()


def _acts_on_its_server(setup, receive, send):
    import os
    import resource

    receive()
    refused = []
    for name, act in (("prlimit", lambda: resource.prlimit(os.getppid(), resource.RLIMIT_CPU, (10_000, 10_000))),
                      ("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, os.getppid(), 5)),
                      ("sched_setaffinity", lambda: os.sched_setaffinity(os.getppid(), os.sched_getaffinity(0)))):
        try:
            act()
        except PermissionError:
            refused.append(name)
    resource.setrlimit(resource.RLIMIT_CORE, resource.getrlimit(resource.RLIMIT_CORE))  # its own: allowed
    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0))
    return refused, b""


def test_a_method_process_cannot_change_another_process_limits_or_priority():
    """prlimit on the harness (a CPU-time limit of 1 s got it killed by the kernel), setpriority and
    sched_setaffinity (they change others' wall time) are refused; its own limits stay its own."""
    from bench.execute import prepare_server
    from bench.sandbox import run_isolated

    refused, _ = run_isolated(_acts_on_its_server, None, None, lambda m: None, prepare=prepare_server)
    assert refused == ["prlimit", "setpriority", "sched_setaffinity"]


def _writes_devices(setup, receive, send):
    import os

    receive()
    with open(os.devnull, "w") as null:  # a method may silence output (CUDA opens its devices likewise)
        null.write("quiet")
    try:
        with open("/dev/shm/unlearn-bench-probe", "w") as shared:  # a shared folder: still refused
            shared.write("x")
        refused = False
    except PermissionError:
        refused = True
    return refused, b""


def test_a_method_process_may_open_device_files_for_writing_but_not_shared_folders():
    """CUDA opens /dev/nvidiactl, /dev/nvidia0 and /dev/nvidia-uvm read-write: Landlock's write rule
    refused that, so no method call could use a GPU. Device files get a rule of their own
    (`bench.landlock.device_files`); /dev/shm stays closed."""
    from bench.execute import prepare_server
    from bench.landlock import device_files
    from bench.sandbox import run_isolated

    assert Path("/dev/null") in device_files() and not any(p.is_dir() for p in device_files())
    refused, _ = run_isolated(_writes_devices, None, None, lambda m: None, prepare=prepare_server)
    assert refused is True or not Path("/dev/shm").is_dir()
