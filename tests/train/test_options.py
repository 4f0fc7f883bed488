"""The trainer's options for training as the baselines' authors do (issue 21), each worked out on a tiny case:
value vs norm clipping, Adam's L2 vs AdamW's decoupled decay, gradient accumulation, the plateau schedule and early
stopping. The defaults are the paper's (AdamW, norm clipping, one batch per step, constant rate, every epoch)."""

import csv

import pytest
import torch

import rider.train.trainer as trainer
from rider.model.stages import single_stage
from rider.train.trainer import (RunSpec, TrainConfig, clip_gradients, optimisation_step, plateau_schedulers,
                                 stage_optimizers)


def with_gradient(values):
    model = torch.nn.Linear(len(values), 1, bias=False)
    model.weight.grad = torch.tensor([values])
    return model


def test_value_clipping_clips_each_element_and_norm_clipping_the_norm():
    model = with_gradient([3.0, -0.2, -4.0, 0.5])
    clip_gradients(model, 0.6, "value")
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.6, -0.2, -0.6, 0.5]]))
    model = with_gradient([3.0, 0.0, -4.0, 0.0])  # norm 5: scaled by 1/5, direction kept
    clip_gradients(model, 1.0, "norm")
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.6, 0.0, -0.8, 0.0]]), rtol=1e-5, atol=1e-6)
    model = with_gradient([3.0, -4.0])
    clip_gradients(model, 0.0, "value")  # 0: no clipping
    assert model.weight.grad.tolist() == [[3.0, -4.0]]


def one_step(mode: str, weight_decay: float = 0.1, lr: float = 0.01) -> float:
    """θ = 2 and a loss with zero gradient: only the decay moves θ."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    stages = single_stage({"task": 1.0})
    (optimizer,) = stage_optimizers(model, stages, TrainConfig(lr=lr, weight_decay=weight_decay,
                                                               weight_decay_mode=mode))
    optimisation_step(model, optimizer, 0.0 * model.weight.sum(), grad_clip=0.0)
    return model.weight.item()


def test_l2_decay_is_normalised_by_adam_and_decoupled_decay_is_not():
    # AdamW: θ (1 - lr · wd) = 2 (1 - 0.001); Adam with L2: the gradient is wd · θ = 0.2, and Adam's first step
    # moves θ by lr · g / |g| = lr, whatever the decay's size.
    assert one_step("decoupled") == pytest.approx(2.0 * (1 - 0.01 * 0.1))
    assert one_step("l2") == pytest.approx(2.0 - 0.01, rel=1e-5)
    assert one_step("l2", weight_decay=1e-3) == pytest.approx(2.0 - 0.01, rel=1e-4)
    assert isinstance(stage_optimizers(torch.nn.Linear(1, 1), single_stage({"task": 1.0}), TrainConfig())[0],
                      torch.optim.AdamW)


def two_models(optimizer=torch.optim.SGD, **options):
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 1) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    return models, [optimizer(m.parameters(), lr=0.1, **options) for m in models]


X = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
Y = torch.randn(8, generator=torch.Generator().manual_seed(2))


def loss(model, rows):
    return (model(X[rows]).squeeze(-1) - Y[rows]).abs().mean()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_accumulating_n_batches_equals_one_batch_n_times_as_large(reduction):
    """mean: the gradient of four batches of two, averaged, is that of one batch of eight (SGD takes the same step).
    sum: four times that gradient, which Adam turns into the same step (up to its eps)."""
    models, optimizers = two_models(torch.optim.SGD if reduction == "mean" else torch.optim.Adam)
    before = models[1].weight.detach().clone()
    optimisation_step(models[0], optimizers[0], loss(models[0], slice(0, 8)), grad_clip=0.0)
    for i in range(4):
        optimisation_step(models[1], optimizers[1], loss(models[1], slice(2 * i, 2 * i + 2)), grad_clip=0.0,
                          first=i == 0, last=i == 3, scale=0.25 if reduction == "mean" else 1.0)
        if i < 3:  # nothing moves before the group's last batch
            assert torch.equal(models[1].weight, before)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)


def test_clipping_acts_after_every_batch_on_what_has_accumulated():
    """MMSA's order: clip after each backward, so with value clipping 0.6 two batches whose gradients are 1 and
    -0.5 in an element leave clip(clip(1) - 0.5) = 0.1 there, where clipping the sum once would leave 0.5."""
    weight = torch.nn.Parameter(torch.zeros(2))
    model = torch.nn.Module()
    model.weight = weight
    optimizer = torch.optim.SGD([weight], lr=1.0)
    optimisation_step(model, optimizer, (weight * torch.tensor([1.0, 0.2])).sum(), 0.6, "value", last=False)
    assert weight.grad.tolist() == pytest.approx([0.6, 0.2])
    optimisation_step(model, optimizer, (weight * torch.tensor([-0.5, 0.2])).sum(), 0.6, "value", first=False)
    assert weight.grad.tolist() == pytest.approx([0.1, 0.4])
    assert weight.tolist() == pytest.approx([-0.1, -0.4])


def test_the_plateau_schedule_lowers_the_rate_after_patience_epochs_without_improvement():
    model = torch.nn.Linear(1, 1)
    (optimizer,) = stage_optimizers(model, single_stage({"task": 1.0}), TrainConfig(lr=1.0))
    assert plateau_schedulers([optimizer], TrainConfig()) == []  # schedule none: a constant rate
    (scheduler,) = plateau_schedulers([optimizer], TrainConfig(schedule="plateau", plateau_patience=2,
                                                               plateau_factor=0.5))
    rates = []
    for mae in (1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.94):  # best 0.9 at epoch 2, then none lower
        scheduler.step(mae)
        rates.append(optimizer.param_groups[0]["lr"])
    # The rate drops when more than `patience` epochs in a row brought no lower MAE: after epoch 5 (3 bad epochs),
    # then again 3 bad epochs later.
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("values, message", [
    ({"grad_clip_mode": "max"}, "grad_clip_mode"), ({"weight_decay_mode": "adamw"}, "weight_decay_mode"),
    ({"schedule": "cosine"}, "schedule"), ({"accumulate": 0}, "accumulate"), ({"patience": -1}, "patience"),
    ({"accumulate_reduction": "max"}, "accumulate_reduction"),
    ({"plateau_factor": 1.0}, "plateau_factor"), ({"plateau_patience": 0}, "plateau_patience"),
])
def test_bad_option_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)


def test_early_stopping_stops_and_keeps_the_best_epoch(tiny_dataset, tmp_path, monkeypatch):
    """The validation predictions are the labels + an offset per epoch, so the validation MAE follows a chosen
    curve: best at epoch 2, and with patience 3 the run stops at epoch 5; the plateau schedule (patience 1) halves
    the rate after epoch 4; the checkpoint holds epoch 2's weights."""
    offsets = iter([0.5, 0.3, 0.4, 0.45, 0.35, 0.1, 0.1])
    states = []

    def predict(model, split, batch_size, kind=None):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return split.labels.numpy() + next(offsets)

    monkeypatch.setattr(trainer, "predict", predict)
    spec = RunSpec.from_dict({"kind": "text_only", "model": {"d_model": 8, "encoder_layers": 1, "encoder_heads": 2},
                              "train": {"epochs": 7, "batch_size": 16, "lr": 1e-3, "patience": 3,
                                        "schedule": "plateau", "plateau_patience": 1, "plateau_factor": 0.5,
                                        "accumulate": 2, "accumulate_reduction": "sum", "grad_clip": 0.5,
                                        "grad_clip_mode": "value",
                                        "weight_decay_mode": "l2", "device": "cpu"}})
    metadata = trainer.train(spec, tiny_dataset["cache"], tmp_path, seed=0, threads=1)
    assert (metadata["best_epoch"], metadata["epochs_run"], metadata["epochs"]) == (2, 5, 7)
    assert metadata["best_valid"]["mae"] == pytest.approx(0.3)
    rows = list(csv.DictReader(open(tmp_path / "epochs.csv")))
    assert [float(r["lr"]) for r in rows] == [1e-3, 1e-3, 1e-3, 1e-3, 5e-4]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], states[1][k]) for k in states[1])
    assert not all(torch.equal(saved[k], states[4][k]) for k in states[4])


def test_more_batches_per_step_than_an_epoch_has_is_refused(tiny_dataset, tmp_path):
    spec = RunSpec.from_dict({"kind": "text_only", "model": {"d_model": 8, "encoder_layers": 1, "encoder_heads": 2},
                              "train": {"epochs": 1, "batch_size": 16, "accumulate": 8, "device": "cpu"}})
    with pytest.raises(ValueError, match="accumulate = 8 batches per step, but an epoch of stage train has 3"):
        trainer.train(spec, tiny_dataset["cache"], tmp_path, seed=0, threads=1)
