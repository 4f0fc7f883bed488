"""Corruption-aware training: the seeded stream of stressed training batches (rider.train.corruption)."""

import math

import numpy as np
import pytest
import torch

from rider.model.objective import Batch
from rider.stress import iter_severities, load_test_split, read_plan
from rider.stress.plan import build_plan
from rider.train.corruption import (
    TrainingCorruption,
    draw_presence,
    drop_positions,
    feature_sigma,
    pick_donor,
    stretch_rows,
    zero_absent_batch,
)
from rider.train.trainer import RunSpec, TrainConfig, train

from conftest import TINY_RUN

SIGMA = {"audio": torch.full((2,), 0.5), "vision": torch.full((3,), 2.0)}


def hand_batch(labels=(1.0, -2.0, 0.0, 2.5)):
    B, L = len(labels), 6
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([4, 6, 2, 5][:B])
    real = (torch.arange(L)[None, :] < lengths[:, None])[..., None]
    text, audio, vision = (torch.randn(B, L, F, generator=g) * real for F in (4, 2, 3))
    return Batch(text, audio, vision, lengths, torch.tensor(labels), torch.arange(B))


def stream(seed=3, run_seed=1, stressors=("noise", "missing", "conflict")):
    return TrainingCorruption(stressors, seed, run_seed, SIGMA)


def test_the_stream_is_reproducible_and_its_seed_matters():
    batch = hand_batch()
    a, b, c = stream(), stream(), stream(seed=4)
    draws_a = [a(batch) for _ in range(6)]
    draws_b = [b(batch) for _ in range(6)]
    draws_c = [c(batch) for _ in range(6)]
    for x, y in zip(draws_a, draws_b):
        assert (x.stressor, x.severity) == (y.stressor, y.severity)
        assert all(torch.equal(p, q) for p, q in zip(x.batch[:3], y.batch[:3]))
    assert [(x.stressor, x.severity) for x in draws_a] != [(x.stressor, x.severity) for x in draws_c]


def test_the_stream_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    corruption = stream()
    for _ in range(5):
        corruption(hand_batch())
    assert torch.equal(torch.rand(3), expected)


def test_severities_stay_within_the_test_grids_largest():
    corruption = stream()
    seen = {}
    for _ in range(300):
        out = corruption(hand_batch())
        seen.setdefault(out.stressor, []).append(out.severity)
    assert set(seen) == {"noise", "missing", "conflict"}
    assert max(seen["noise"]) <= 0.5 and max(seen["missing"]) <= 0.8 and max(seen["conflict"]) <= 1.0
    assert min(min(v) for v in seen.values()) >= 0.0


def test_drop_positions_zeroes_round_share_times_length_real_positions():
    batch = hand_batch()
    out = drop_positions(batch.text, batch.lengths, 0.5, torch.Generator().manual_seed(1))
    zeroed = (out.abs().sum(dim=-1) == 0) & (batch.text.abs().sum(dim=-1) != 0)  # (B, L)
    # lengths 4, 6, 2, 5 -> round(2), round(3), round(1), round(2.5) = 2 (half to even, as numpy)
    assert zeroed.sum(dim=1).tolist() == [2, 3, 1, 2]
    real = torch.arange(6)[None, :] < batch.lengths[:, None]
    assert not (zeroed & ~real).any()


def test_noise_adds_rho_sigma_z_only_on_real_positions():
    batch = hand_batch()
    corruption = stream(stressors=("noise",))
    out = corruption.noise(batch, 0.0)
    assert all(torch.equal(x, y) for x, y in zip(out[:3], batch[:3]))  # rho = 0 is the clean batch
    big = hand_batch()
    big = big._replace(audio=torch.zeros(4, 6, 2), lengths=torch.tensor([6, 6, 6, 6]))
    noisy = corruption.noise(big, 0.5).audio  # 3 of 6 timesteps zeroed, the rest N(0, (0.5 * 0.5)^2)
    kept = noisy[noisy != 0]
    assert kept.numel() == 4 * 3 * 2
    assert kept.std().item() == pytest.approx(0.25, rel=0.35)
    assert torch.equal(corruption.noise(hand_batch(), 0.5).audio[2, 2:], torch.zeros(4, 2))  # padding stays zero


def test_missingness_never_drops_all_three_modalities():
    g = torch.Generator().manual_seed(0)
    presence = draw_presence(2000, 0.8, g)
    assert presence.any(dim=1).all()
    # Per-modality drop rate once all-dropped samples are redrawn: m (1 - m^2) / (1 - m^3) = 0.59 at m = .8.
    assert (~presence).float().mean().item() == pytest.approx(0.8 * (1 - 0.64) / (1 - 0.512), abs=0.03)
    assert draw_presence(50, 0.0, g).all()


def test_a_donor_has_the_opposite_polarity():
    labels, lengths = torch.tensor([1.0, -2.0, 0.0, 2.5]), torch.tensor([4, 6, 2, 5])
    g = torch.Generator().manual_seed(0)
    assert {pick_donor(labels, lengths, 0, g) for _ in range(20)} == {1}  # the only negative sample
    assert {pick_donor(labels, lengths, 1, g) for _ in range(40)} == {0, 3}  # the positive ones
    assert {pick_donor(labels, lengths, 2, g) for _ in range(40)} <= {0, 1, 3}  # a 0 label takes any non-zero
    assert pick_donor(torch.tensor([1.0]), torch.tensor([3]), 0, g) is None  # alone in its batch


def test_stretch_rows_maps_each_receiver_row_onto_the_donor_span():
    donor = torch.arange(6.0)[:, None]  # rows 0..5, donor length 3
    out = stretch_rows(donor, 3, 5, torch.full((6, 1), -1.0))
    # t * 3 // 5 for t = 0..4: 0, 0, 1, 1, 2; row 5 stays the receiver's padding
    assert out[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, -1.0]


def test_conflict_at_one_swaps_every_receiver_and_keeps_text_and_labels():
    batch = hand_batch()
    out = stream(stressors=("conflict",)).conflict(batch, 1.0)
    assert torch.equal(out.text, batch.text) and torch.equal(out.labels, batch.labels)
    changed = [(not torch.equal(out.audio[i], batch.audio[i])) or (not torch.equal(out.vision[i], batch.vision[i]))
               for i in range(4)]
    assert all(changed)
    assert torch.equal(stream(stressors=("conflict",)).conflict(batch, 0.0).audio, batch.audio)


def test_zero_absent_batch_zeroes_only_the_absent_modalities():
    batch = hand_batch()
    presence = torch.tensor([[True, False, True], [False, True, True], [True, True, True], [True, True, False]])
    out = zero_absent_batch(batch, presence)
    assert out.audio[0].abs().sum() == 0 and out.text[1].abs().sum() == 0 and out.vision[3].abs().sum() == 0
    assert torch.equal(out.text[0], batch.text[0]) and torch.equal(out.vision[2], batch.vision[2])


def test_feature_sigma_reads_real_positions_only():
    values = torch.zeros(2, 4, 1)
    values[0, :2, 0] = torch.tensor([1.0, 3.0])
    values[1, :2, 0] = torch.tensor([1.0, 3.0])
    values[1, 3, 0] = 100.0  # padding: ignored
    assert feature_sigma(values, torch.tensor([2, 2])).item() == pytest.approx(1.0)


def test_unknown_stressors_are_refused():
    with pytest.raises(ValueError, match="unknown stressor"):
        TrainConfig(corrupt=("noise", "blur"))


def test_corrupt_training_runs_and_leaves_the_test_plan_unchanged(tiny_dataset, tmp_path):
    cache = tiny_dataset["cache"]
    before = build_plan(cache, tmp_path / "before.h5", seed=0, dataset="test")
    spec = RunSpec.from_dict({**TINY_RUN, "train": {**TINY_RUN["train"], "epochs": 2,
                                                    "corrupt": ["noise", "missing", "conflict"]}})
    metadata = train(spec, cache, tmp_path / "run", seed=0, threads=1)
    assert metadata["corrupt"] == ["noise", "missing", "conflict"] and math.isfinite(metadata["best_valid"]["mae"])
    after = build_plan(cache, tmp_path / "after.h5", seed=0, dataset="test")
    test = load_test_split(cache)
    for x, y in zip(iter_severities(read_plan(before), test), iter_severities(read_plan(after), test)):
        assert x[:2] == y[:2]
        assert all(np.asarray(x[2].arrays[k]).tobytes() == np.asarray(y[2].arrays[k]).tobytes()
                   for k in ("text_glove", "audio", "vision"))
        assert x[2].presence.tobytes() == y[2].presence.tobytes()


def test_clean_and_corrupt_training_differ_and_each_reproduces(tiny_dataset, tmp_path):
    cache = tiny_dataset["cache"]
    runs = {}
    for name, corrupt in (("clean", []), ("corrupt", ["missing", "conflict"]), ("again", ["missing", "conflict"])):
        spec = RunSpec.from_dict({**TINY_RUN, "train": {**TINY_RUN["train"], "epochs": 1, "corrupt": corrupt}})
        runs[name] = train(spec, cache, tmp_path / name, seed=0, threads=1)["best_valid"]
    assert runs["corrupt"] == runs["again"]
    assert runs["corrupt"] != runs["clean"]
