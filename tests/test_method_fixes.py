"""The method fixes of issue 7, each against the official code's behaviour."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from bench.models import build_model
from methods._common import last_layers
from methods.boundary_shrink import neighbour_labels
from methods.scrub import ScrubConfig, decayed_lr


def test_boundary_shrink_steps_in_pixel_units_then_clamps_and_rounds():
    """With CIFAR normalisation, a step of 0.1 on normalised inputs is ~0.02 in pixels (5x too
    weak); the official FGSM steps 0.1 in [0, 1] pixel units, clamps, and rounds to 8 bits."""
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    seen = {}

    class Probe(nn.Module):  # a linear model that records the images it is asked about
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3 * 4 * 4, 3)

        def forward(self, x):
            seen.setdefault("calls", []).append(x.detach() * std + mean)
            return self.lin(x.flatten(1))

    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (8, 3, 4, 4)).float() / 255
    probe = Probe()
    neighbour_labels(probe, (pixels - mean) / std, torch.zeros(8, dtype=torch.long), 0.1, mean, std)
    neighbour = seen["calls"][-1]
    step = (neighbour - pixels).abs()
    inside = (neighbour > 1e-4) & (neighbour < 1 - 1e-4)
    assert torch.allclose(step[inside], torch.full_like(step[inside], 0.1), atol=0.5 / 255 + 1e-5)
    assert neighbour.min() >= -1e-6 and neighbour.max() <= 1 + 1e-6
    assert torch.allclose(neighbour * 255, torch.round(neighbour * 255), atol=1e-3)


def test_scrub_uses_the_large_scale_batches_and_decays_the_lr():
    cfg = ScrubConfig()
    assert (cfg.forget_batch_size, cfg.retain_batch_size) == (512, 256)
    assert [decayed_lr(cfg, e) for e in (1, 3, 4, 6, 10)] == pytest.approx([5e-4, 5e-4, 5e-5, 5e-6, 5e-7])


def test_cf_k_counts_layers_not_stages():
    resnet = build_model("resnet18", 3, 32, 10)
    (fc,) = last_layers(resnet, 1)
    assert fc is resnet.fc  # one layer is the classifier, not the whole of layer4
    two = last_layers(resnet, 2)
    assert two[-1] is resnet.fc and any(m is resnet.layer4[1].bn2 for m in two)
    assert any(m is resnet.layer4[1].conv2 for m in two) and len(two) == 3
    mlp = build_model("mlp", 1, 8, 10)
    assert last_layers(mlp, 2) == [mlp[1], mlp[3]]
    with pytest.raises(ValueError):
        last_layers(mlp, 3)


def test_methods_declare_their_forget_protocols():
    from bench.methods_loader import method_registry

    for name in ("boundary_shrink", "bad_teacher", "ssd"):
        assert method_registry().get(name).info.protocols == ("class",)
    assert method_registry().get("finetune").info.protocols == ("random", "class")  # the default
    assert np.all([p in ("random", "class", "file") for e in method_registry().entries()
                   for p in e.info.protocols])


def test_a_misspelled_declaration_is_refused_at_registration():
    from bench.api import register_method
    from bench.errors import UserError

    with pytest.raises(UserError, match="unknown declaration 'protocol'. Did you mean 'protocols'"):
        register_method("misspelled", protocol=("class",))


def test_eu_k_reinitialises_the_last_conv_linear_layers_and_keeps_the_norm_layers_after_them():
    """Goel et al.'s resetFinalResnet re-initialises Conv2d/Linear only; the BatchNorm in the tail
    keeps its weights and running statistics (it is trained, not reset)."""
    from methods.eu_k import reinitialise_last_layers

    def net():
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.BatchNorm1d(3))

    torch.manual_seed(0)
    model, fresh = net(), net()
    with torch.no_grad():
        model[4].weight.fill_(2.0)
        model[4].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert [type(m) for m in last_layers(model, 1)] == [nn.Linear, nn.BatchNorm1d]
    reinitialise_last_layers(model, fresh, 1)
    assert torch.equal(model[3].weight, fresh[3].weight) and torch.equal(model[3].bias, fresh[3].bias)
    assert torch.equal(model[4].weight, before["4.weight"]) and torch.equal(model[4].running_mean, before["4.running_mean"])
    assert torch.equal(model[0].weight, before["0.weight"])  # outside the last layer: untouched


def test_bad_teacher_loss_is_the_official_kl_with_pytorchs_mean_reduction():
    """UnlearnerLoss: F.kl_div(log_softmax(student / T), softmax(teacher / T)) with the default
    "mean" reduction, batchmean / classes; the harness used batchmean (10x on 10 classes) and T^2."""
    from methods.bad_teacher import unlearner_loss

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g)
    for t in (1.0, 4.0):
        p = torch.softmax(teacher / t, 1)
        by_hand = (p * (p.log() - torch.log_softmax(student / t, 1))).sum() / (16 * 10)
        assert unlearner_loss(student, teacher, t).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_mia_efficacy_drops_the_forgotten_class_from_the_svcs_non_members():
    """SalUn removes the forgotten class from the test set under class forgetting: the SVC's
    non-members (and the retain sample drawn to their size) exclude it."""
    from bench.attacks.base import AttackInput
    from bench.attacks.population import svc_training_sets
    from bench.spec import AttackSettings

    def split(n, label, loss):
        return {"loss": np.full(n, loss, np.float32), "label": np.full(n, label), "conf": np.zeros(n, np.float32)}

    test = {k: np.r_[a, b] for (k, a), b in zip(split(30, 0, 5.0).items(), split(70, 1, 0.5).values())}
    outputs = {"retain": split(200, 1, 0.1), "test": test, "forget": split(20, 0, 0.1), "val": split(10, 0, 1.0)}
    members, nonmembers = svc_training_sets(AttackInput(outputs, AttackSettings(), 0, forget_label=0))
    assert len(nonmembers) == len(members) == 70 and np.allclose(nonmembers, np.exp(-0.5))
    members, nonmembers = svc_training_sets(AttackInput(outputs, AttackSettings(), 0))  # random forgetting: all
    assert len(nonmembers) == 100


@pytest.mark.parametrize("method", ["gradient_ascent", "random_label", "salun", "l1_sparse"])
def test_salun_and_sparse_methods_default_to_their_batch_of_256(method):
    from bench.methods_loader import method_registry

    assert method_registry().get(method).config().batch_size == 256
