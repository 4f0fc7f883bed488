"""DMD: its graph distillers and decoupling losses worked out by hand, padding kept out of the flattened layers, the
trainer logging the authors' weighted sum, and the faithfulness count against the authors' code."""

import copy
import csv
import dataclasses
import math

import pytest
import torch
import yaml
from snakemake.utils import update_config

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.baselines.dmd import (EDGES, PAPER, DMDConfig, DMDLoss, GraphDistiller, HOMO_PRIOR_LOGITS, edge_regulariser,
                             label_margin, logit_distillation, orthogonality, representation_repulsion)
from rider.train.trainer import RunSpec, run_config, train

from conftest import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
TINY = {"d_model": 4, "heads": 2, "layers": 1, "memory_layers": 1, "kernel_text": 3, "kernel_audio": 1,
        "kernel_vision": 2, "homo_graph_dim": 3, "hetero_graph_dim": 2, "text_dim": 6, "audio_dim": 5,
        "vision_dim": 3, "max_len": 7}


def tiny_inputs(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 7, 6, generator=g), torch.randn(B, 7, 5, generator=g), torch.randn(B, 7, 3, generator=g),
            torch.tensor([7, 3, 1, 0, 5][:B]))


def test_the_edge_order_and_the_authors_priors():
    # Students then teachers in the authors' (l, v, a) order: (l, v), (l, a), (v, l), (v, a), (a, l), (a, v).
    assert EDGES == ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1))
    # softmax(4 x [0, 0, 1, 0, 1, 0]): e^4 / (4 + 2 e^4) = 0.48233 on v <- l and a <- l, 1 / (4 + 2 e^4) elsewhere.
    distiller = GraphDistiller(2, 3, 0.125, HOMO_PRIOR_LOGITS)
    big, small = math.exp(4) / (4 + 2 * math.exp(4)), 1 / (4 + 2 * math.exp(4))
    torch.testing.assert_close(distiller.prior, torch.tensor([small, small, big, small, big, small]))


def test_graph_distiller_edges_by_hand():
    # g = 1: a node is [logit, 0] (W_logit = 1, W_repr = 0); W_edge reads the student's logit only. One sample,
    # logits (l, v, a) = (8, 0, 0): scores (8, 8, 0, 0, 0, 0), x 1/8 -> (1, 1, 0, 0, 0, 0), one softmax over the six.
    distiller = GraphDistiller(repr_dim=1, graph_dim=1, edge_scale=0.125, prior_logits=HOMO_PRIOR_LOGITS)
    with torch.no_grad():
        for linear in (distiller.embed_logit, distiller.embed_repr, distiller.edge):
            linear.weight.zero_()
            linear.bias.zero_()
        distiller.embed_logit.weight.fill_(1.0)
        distiller.edge.weight[0, 0] = 1.0
    edges = distiller(torch.tensor([[8.0], [0.0], [0.0]]), torch.zeros(3, 1, 1))
    e = math.e
    expected = torch.tensor([e, e, 1, 1, 1, 1]) / (2 * e + 4)
    torch.testing.assert_close(edges, expected[:, None])
    # W_edge's bias shifts every score alike: the softmax removes it (and so it is not applied).
    with torch.no_grad():
        distiller.edge.bias.fill_(5.0)
    torch.testing.assert_close(distiller(torch.tensor([[8.0], [0.0], [0.0]]), torch.zeros(3, 1, 1)), expected[:, None])


def test_edge_regulariser_by_hand():
    # Mean over the batch of the edges: ((1 + 0) / 2, 0, (0 + 1) / 2, 0, 0, 0) = (0.5, 0, 0.5, 0, 0, 0);
    # prior (0.5, 0.5, 0, ...): squared differences 0 + 0.25 + 0.25 = 0.5.
    edges = torch.zeros(6, 2)
    edges[0, 0] = edges[2, 1] = 1.0
    prior = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    assert edge_regulariser(edges, prior).item() == pytest.approx(0.5)


def test_logit_distillation_by_hand_moves_only_the_student():
    # logits (l, v, a) per sample: l (1, 0), v (3, 0), a (0, 2). Weights = edges + prior, prior 0 here: edge (l <- v)
    # weighs sample 0 by 1: |1 - 3| / 2 = 1; edge (v <- a) weighs sample 1 by 1: |0 - 2| / 2 = 1. Total 2.
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], requires_grad=True)
    edges = torch.zeros(6, 2)
    edges[0, 0] = edges[3, 1] = 1.0
    loss = logit_distillation(logits, edges, torch.zeros(6))
    assert loss.item() == pytest.approx(2.0)
    # Gradient: the students only (teachers detached), sign(student - teacher) x weight / B.
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[-0.5, 0.0], [0.0, -0.5], [0.0, 0.0]]))
    # With every weight 1: pairs (l,v) 1, (l,a) 1.5, (v,a) 2.5, each counted in both directions: 10.
    assert logit_distillation(logits.detach(), torch.zeros(6, 2), torch.ones(6)).item() == pytest.approx(10.0)


def test_representation_repulsion_by_hand():
    # H = 2. l: (1, 0), (1, 0); v: (1, 0), (0, 1); a: (-1, 0), (1, 1). Cosines clamped at 0, batch means:
    # l~v (1, 0) -> 0.5; l~a (-1 -> 0, 1/sqrt 2) -> 1/(2 sqrt 2); v~a (-1 -> 0, 1/sqrt 2) -> 1/(2 sqrt 2).
    reprs = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [1.0, 1.0]]])
    # Weights all 1: both directions of each pair: 2 x (0.5 + 2 / (2 sqrt 2)) = 1 + sqrt 2.
    assert representation_repulsion(reprs, torch.zeros(6, 2), torch.ones(6)).item() == pytest.approx(1 + math.sqrt(2))
    # Edge (l <- v) weighted (2, 0): the authors reduce the hinge over the batch first, 0.5 x mean(2, 0) = 0.5
    # (a per-sample weighting would give mean(2 x 1, 0 x 0) = 1).
    edges = torch.zeros(6, 2)
    edges[0] = torch.tensor([2.0, 0.0])
    assert representation_repulsion(reprs, edges, torch.zeros(6)).item() == pytest.approx(0.5)


def test_orthogonality_by_hand():
    # (B, d, T) = (3, 2, 2). Sample 0: s = c -> cos 1; sample 1: s and c on different steps -> 0; sample 2: c = -s
    # -> -1, clamped to 0. Mean 1/3. A zero stream (an empty sample) gives cos 0, not NaN.
    s = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]] * 3)
    c = torch.stack([s[0], torch.tensor([[0.0, 1.0], [0.0, 0.0]]), -s[2]])
    assert orthogonality(s, c).item() == pytest.approx(1 / 3)
    assert orthogonality(torch.zeros(1, 2, 2), c[:1]).item() == 0.0


def test_label_margin_by_hand():
    # One modality (M = 1), labels (1, 1, 0, -1), f0 (1, 0), f1 (0, 1), f2 (1, 0), f3 (-1, 0).
    # Anchor 0: positive 1 (cos 0); negatives 2 (cos 1, margin 0.15) -> 1.15, 3 (cos -1, margin 0.3) -> 0: 0.575.
    # Anchor 1: positive 0 (cos 0); negatives 2 (cos 0) -> 0.15, 3 (cos 0) -> 0.3: 0.225.
    # Anchors 2 and 3 have no positive: left out. Loss (0.575 + 0.225) / 2 = 0.4.
    feats = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]])
    assert label_margin(feats, torch.tensor([1.0, 1.0, 0.0, -1.0])).item() == pytest.approx(0.4)
    # M = 2, B = 2, labels (1, 0): a sample's two modalities are each other's positive. Text (1, 0) for both
    # samples, vision (0, 1) for both. Every anchor: positive cos 0; negatives cos 1 -> 1.15 and cos 0 -> 0.15: 0.65.
    aligned = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    assert label_margin(aligned, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.65)
    # Every label equal: no negatives, no anchor counts: 0.
    assert label_margin(aligned, torch.tensor([1.0, 1.0])).item() == 0.0


def test_label_margin_equals_the_loop_over_anchors_with_ties():
    """The vectorised hinge against a literal loop over anchors, positives and negatives (the HingeLoss
    definition), on labels with many ties (so anchors have different numbers of positives)."""
    g = torch.Generator().manual_seed(0)
    aligned, labels = torch.randn(3, 10, 4, generator=g), torch.tensor([1.0, 1, 0, 2, 0, 1, -1, 2, 2, 0.5])
    feats, ids = aligned.transpose(0, 1).reshape(30, 4), labels.repeat_interleave(3)
    cos = torch.nn.functional.cosine_similarity(feats[:, None], feats[None], dim=-1, eps=0)
    per_anchor = []
    for i in range(30):
        positives = [p for p in range(30) if p != i and ids[p] == ids[i]]
        negatives = [n for n in range(30) if ids[n] != ids[i]]
        if positives and negatives:
            per_anchor.append(sum(max(0.0, 0.15 * abs(ids[i] - ids[n]).item() - cos[i, p].item() + cos[i, n].item())
                                  for p in positives for n in negatives) / (len(positives) * len(negatives)))
    assert label_margin(aligned, labels).item() == pytest.approx(sum(per_anchor) / len(per_anchor), rel=1e-5)


def test_the_loss_weights_are_the_authors():
    # combined = task (8 L1 terms) + 0.05 (homo logit + 10 reg) + 0.05 (hetero logit + 10 repr + 10 reg)
    #          + (cycle + recon + (margin + ort) x 0.1) x 0.1.
    assert DMDLoss().coefficients() == {
        "task": 1.0, "branch_task": 1.0, "homo_logit": 0.05, "homo_reg": 0.5, "hetero_logit": 0.05,
        "hetero_repr": 0.5, "hetero_reg": 0.5, "recon": 0.1, "cycle": 0.1, "margin": 0.01, "ort": 0.01}
    assert MODEL_KINDS["dmd"].objective(PAPER["mosi"], DMDLoss(), 10).terms == tuple(DMDLoss().coefficients())


def test_padded_steps_are_zero_in_every_stream():
    torch.manual_seed(0)
    model = build_model(DMDConfig(**TINY), "dmd").eval()
    text, audio, vision, lengths = tiny_inputs(5)
    out = model(text, audio, vision, lengths)
    # Streams in the authors' (l, v, a) order, kernels 3, 2, 1: T = 5, 6, 7; sample 1 (3 words) has min(3, T) real
    # steps, sample 3 (0 words) none.
    for streams in (out.projected, out.specific, out.invariant, out.reconstructed, out.specific_again):
        for z, T in zip(streams, (5, 6, 7)):
            assert z.shape == (5, 4, T)
            assert z[1, :, 3:].abs().max() == 0 and z[3].abs().max() == 0
            assert (z[1, :, :3].abs().sum(0) > 0).all()  # the real steps are not zeroed



def test_bad_inputs_and_config_name_the_field():
    model = build_model(DMDConfig(**TINY), "dmd")
    text, audio, vision, lengths = tiny_inputs()
    with pytest.raises(ValueError, match="audio has 4 features"):
        model(text, audio[..., :4], vision, lengths)
    with pytest.raises(ValueError, match="max_len = 7"):
        model(torch.zeros(3, 8, 6), torch.zeros(3, 8, 5), torch.zeros(3, 8, 3), lengths)
    with pytest.raises(ValueError, match="d_model = 50 is not divisible by heads = 4"):
        DMDConfig(heads=4)
    with pytest.raises(ValueError, match="kernel_audio = 60"):
        DMDConfig(kernel_audio=60)
    with pytest.raises(ValueError, match="edge_regulariser = -1"):
        DMDLoss(edge_regulariser=-1)
    with pytest.raises(ConfigError, match="memory_layer"):
        DMDConfig.from_dict({"memory_layer": 3})
    cfg = DMDConfig(d_model=30, heads=6, causal=False)
    assert DMDConfig.from_dict(cfg.to_dict()) == cfg
    assert DMDLoss.from_dict(DMDLoss(homo_weight=0.1).to_dict()) == DMDLoss(homo_weight=0.1)


def test_the_trainer_logs_the_authors_weighted_sum(tiny_dataset, tmp_path):
    run = {"kind": "dmd", "model": {k: v for k, v in TINY.items() if not k.endswith(("_dim", "max_len"))},
           "train": {"epochs": 1, "lr": 1e-3, "grad_clip": 0.6, "batch_size": 16}}
    train(RunSpec.from_dict(run), tiny_dataset["cache"], tmp_path, seed=0, threads=1)
    with open(tmp_path / "epochs.csv") as f:
        (row,) = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    weights = DMDLoss().coefficients()
    assert row["train_total"] == pytest.approx(sum(w * row[f"train_{t}"] for t, w in weights.items()), rel=1e-5)
    assert all(row[f"train_{t}"] > 0 for t in weights if t != "margin")


def test_the_schema_describes_every_field_and_paper_yaml_holds_the_authors_sizes():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert set(schema["dmd_model"]["properties"]) == {f.name for f in dataclasses.fields(DMDConfig)}
    assert set(schema["dmd_loss"]["properties"]) == {f.name for f in dataclasses.fields(DMDLoss)}
    with pytest.raises(ConfigError, match="hidden_size"):
        validate_config({"models": {"m": {"kind": "dmd", "model": {"hidden_size": 32}}}}, SCHEMA)
    config = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
    update_config(config, yaml.safe_load((REPO / "configs/paper.yaml").read_text()))
    config = validate_config(config, SCHEMA)
    strip = ("text_dim", "audio_dim", "vision_dim", "max_len")
    for dataset, paper in (("synth_mosi", "mosi"), ("synth_mosei", "mosei"), ("mosi", "mosi"), ("mosei", "mosei")):
        spec = RunSpec.from_dict(run_config(config["datasets"][dataset], {"kind": "dmd"}))
        expected = dataclasses.replace(PAPER[paper], **{k: getattr(spec.model, k) for k in strip})
        assert spec.model == expected and spec.loss == DMDLoss(), dataset
        assert (spec.train.lr, spec.train.weight_decay, spec.train.batch_size, spec.train.grad_clip) == \
               (1e-4, 0.0, 160, 0.6)


# The authors' counts: their own code (github.com/mdswyz/DMD, trains/singleTask/model/dmd.py and
# distillnets/get_distillation_kernel{,_homo}.py), built on the CPU with torch 2.13 (scratch venv, MMSA's) from
# config/config.json's sizes and run.py's distillers, with ``use_bert`` false (so no BERT is built: theirs is
# fine-tuned, ours reads frozen features), need_data_aligned true (L = 50), and the feature dims of their config
# (MOSI [768, 5, 20], MOSEI [768, 74, 35]); the distillers' ``.cuda()`` made a no-op. Network 4,743,658 (MOSI),
# 1,792,778 (MOSEI); HomoGD 3,649 / 2,369, HeteroGD 3,425 / 2,145.
# By hand, MOSI (d = 50, k = 5, T = 46, flat = T d = 2,300):
#   convolutions 768x50x5 + 5x50x5 + 20x50x5 = 198,250; 1x1 specific 3 x 2,500, invariant 2,500, decoders
#   3 x 5,000 = 25,000; proj_cosine and align, 6 x (2,300 x 50 + 50) = 690,300;
#   HomoGD heads 3 x [(2,300x50 + 50) + (50x2,300 + 2,300) + 2,301] = 3 x 234,651 = 703,953;
#   a d-wide layer 4 x 50^2 + 4 x 50 (attention) + 2 x 50 x 200 + 250 (feed-forward) + 200 (two norms) = 30,650,
#   a transformer 4 x 30,650 + 100 = 122,700: nine of them (3 invariant, 6 crossmodal) 1,104,300; a 2d-wide one
#   4 x 121,300 + 200 = 485,400, three memories 1,456,200; invariant head (150: 2 x 22,650 + 151) 45,451;
#   hetero heads 3 x (2 x 10,100 + 101) = 60,903; gates 3 x 10,100 + 22,650 = 52,950; fusion head (450:
#   2 x 202,950 + 451) 406,351. Sum 4,743,658. HomoGD: Linear(1, 64) 128 + Linear(50, 64) 3,264 + Linear(256, 1)
#   257 = 3,649; HeteroGD: 64 + Linear(100, 32) 3,232 + Linear(128, 1) 129 = 3,425.
# The totals (network + distillers) are held against ours in tests/model/test_kinds.py (AUTHORS_COUNTS).
AUTHORS_DISTILLERS = {"mosi": (3_649, 3_425), "mosei": (2_369, 2_145)}
AUTHORS_DIMS = {"mosi": (768, 5, 20), "mosei": (768, 74, 35)}


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_the_graph_distillers_count_as_the_authors(dataset):
    t, a, v = AUTHORS_DIMS[dataset]
    model = build_model(dataclasses.replace(PAPER[dataset], text_dim=t, audio_dim=a, vision_dim=v), "dmd")
    homo, hetero = AUTHORS_DISTILLERS[dataset]
    assert (count_parameters(model.homo_graph), count_parameters(model.hetero_graph)) == (homo, hetero)


def test_registered_with_the_authors_sizes():
    kind = MODEL_KINDS["dmd"]
    assert kind.config is DMDConfig and kind.loss is DMDLoss and kind.absent == "zeros" and not kind.routed
    assert kind.modalities == ("text", "audio", "vision")
    assert (kind.paper["mosei"].d_model, kind.paper["mosei"].kernel_audio, kind.paper["mosi"].heads) == (30, 1, 10)
