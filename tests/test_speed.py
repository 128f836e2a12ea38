"""The speed benchmark and gpu-check commands: what they report and how they refuse bad input.
Speed itself is measured by running them, not asserted here."""

import json

import numpy as np
import pytest
import torch

from bench.speed import decode_folder, image_folder


def test_speed_times_both_loops_on_the_same_images(cli, tmp_path):
    out = tmp_path / "speed.json"
    code, stdout, err = cli("speed", "--device", "cpu", "--model", "mlp", "--images", "40", "--epochs", "1",
                            "--batch-size", "16", "--workers", "0", "--data-root", str(tmp_path / "none"),
                            "--output", str(out))
    assert code == 0, err
    report = json.loads(out.read_text())
    assert [loop["loop"] for loop in report["loops"]] == ["kit-style", "harness"]
    assert report["images"] == 40 and report["source"].startswith("random JPEGs")
    assert all(loop["images_per_s"] > 0 and loop["timed_s"] > 0 for loop in report["loops"])
    harness, kit = (loop["images_per_s"] for loop in report["loops"][::-1])
    assert report["ratios_to_kit_style"]["harness"] == pytest.approx(harness / kit, abs=1e-3)
    assert "x kit" in stdout and "harness" in stdout
    assert report["notes"] == ["harness: the runs' device policy for mlp on cpu: fp32, plain layout"]


def test_a_conv_net_on_cpu_trains_in_bf16_with_channels_last_and_is_also_timed_plain(cli, tmp_path):
    """The policy picks precision and memory format per model (bench.policy): cnn-small on CPU runs
    under bf16 autocast with channels_last, and the report times plain fp32 beside it."""
    from bench.policy import DevicePolicy

    assert DevicePolicy.decide("cpu", 2, model="cnn-small").key() == {
        "device": "cpu", "threads": 2, "bf16": True, "channels_last": True, "compile": False}
    assert not DevicePolicy.decide("cpu", 2, model="mlp").bf16 and DevicePolicy.decide("cuda", model="mlp").bf16
    out = tmp_path / "speed.json"
    code, stdout, err = cli("speed", "--device", "cpu", "--model", "cnn-small", "--images", "32", "--epochs", "1",
                            "--batch-size", "16", "--workers", "0", "--data-root", str(tmp_path / "none"),
                            "--output", str(out))
    assert code == 0, err
    report = json.loads(out.read_text())
    assert [loop["loop"] for loop in report["loops"]] == ["kit-style", "harness", "harness in fp32, plain layout"]
    assert "cnn-small on cpu: bf16, channels_last" in report["notes"][0]


def test_the_harness_loop_reads_the_same_pixels_as_the_kit_loop(tmp_path):
    from torchvision.datasets import ImageFolder

    image_folder(tmp_path, 12, None)
    split = decode_folder(tmp_path, torch.device("cpu"))
    kit = ImageFolder(str(tmp_path))
    for i in (0, 5, 11):
        image, label = kit[i]
        assert torch.equal(split.x[i], torch.from_numpy(np.array(image)).permute(2, 0, 1))
        assert int(split.y[i]) == label


@pytest.mark.parametrize("args, needle", [
    (["speed", "--images", "0"], "--images 0: give a positive number"),
    (["speed", "--device", "tpu"], "--device 'tpu'"),
    (["speed", "--model", "resnet19"], "unknown model 'resnet19'"),
    (["gpu-check", "--kit-epochs", "0"], "--kit-epochs 0: give a positive number"),
])
def test_bad_speed_arguments(cli, args, needle):
    code, _, err = cli(*args)
    assert code == 2 and needle in err and "Traceback" not in err


def test_gpu_check_without_a_gpu_says_so_and_writes_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    code, _, err = cli("gpu-check", "--output", str(out))
    assert code == 2 and "needs a CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
