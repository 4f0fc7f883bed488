"""Masked views (App. B.2), missing modalities (App. C.2), the encoders' pooling, and how often experts run."""

import pytest
import torch

from rider.model import build_model
from rider.model.rider_moe.encoders import ModalityEncoder
from rider.model.rider_moe.network import build_views


from tiny_model import tiny_batch, tiny_config  # noqa: E402


def count_expert_calls(model):
    calls = []
    model.experts.register_forward_hook(lambda module, args, output: calls.append(tuple(args[0].shape)))
    return calls


# Views ----------------------------------------------------------------------------------------------------------

def test_build_views_swaps_exactly_one_modality_per_masked_view():
    h, mask = torch.randn(5, 3, 8), torch.randn(3, 8)
    views = build_views(h, mask)  # (V, B, M, D)
    assert views.shape == (4, 5, 3, 8)
    assert torch.equal(views[0], h)
    for m in range(3):
        for m2 in range(3):
            expected = mask[m].expand(5, 8) if m2 == m else h[:, m2]
            assert torch.equal(views[1 + m][:, m2], expected), (m, m2)


@pytest.mark.parametrize("mask_kind", ["learned", "zeros"])
def test_fused_tokens_of_each_masked_view_differ_in_exactly_one_token(mask_kind):
    torch.manual_seed(0)
    model = build_model(tiny_config(mask_kind=mask_kind)).train()
    tokens = model(*tiny_batch()).fused_tokens  # (V, B, M, D)
    assert tokens.shape == (4, 4, 3, 16)
    emb = model.fusion.modality_emb
    for m in range(3):
        for m2 in range(3):
            if m2 == m:  # the masked token is MASK_m + its modality embedding, the same for every sample
                assert torch.equal(tokens[1 + m][:, m], (model.mask[m] + emb[m]).expand(4, 16))
            else:
                assert torch.equal(tokens[1 + m][:, m2], tokens[0][:, m2])
    assert not torch.equal(tokens[0][:, 0], (model.mask[0] + emb[0]).expand(4, 16))


def test_inference_calls_the_experts_once_on_b_samples():
    model = build_model(tiny_config()).eval()
    calls = count_expert_calls(model)
    out = model(*tiny_batch())
    assert calls == [(4, 3, 16)]
    assert out.expert_outputs.shape == (1, 4, 5)


def test_training_calls_the_experts_once_on_4b_samples():
    model = build_model(tiny_config()).train()
    calls = count_expert_calls(model)
    out = model(*tiny_batch())
    assert calls == [(16, 3, 16)]
    assert out.expert_outputs.shape == (4, 4, 5)


@pytest.mark.parametrize("switch", [{"masked_views": False}, {"single_expert": True}])
def test_training_without_views_calls_the_experts_once_on_b_samples(switch):
    model = build_model(tiny_config(**switch)).train()
    calls = count_expert_calls(model)
    model(*tiny_batch())
    assert calls == [(4, 3, 16)]


def test_batched_views_leave_the_full_view_unchanged():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    full_only = model(*tiny_batch())
    with_views = model(*tiny_batch(), with_views=True)
    torch.testing.assert_close(with_views.expert_outputs[0], full_only.expert_outputs[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(with_views.prediction, full_only.prediction, atol=1e-6, rtol=0)
    torch.testing.assert_close(with_views.routing, full_only.routing)


def test_views_as_one_batch_equal_views_one_at_a_time():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    out = model(*tiny_batch(), with_views=True)
    one_by_one = torch.stack([model.experts(view) for view in out.fused_tokens])
    torch.testing.assert_close(out.expert_outputs, one_by_one, atol=1e-6, rtol=0)


def test_prediction_is_the_routed_sum_of_full_view_experts():
    torch.manual_seed(0)
    model = build_model(tiny_config()).train()
    out = model(*tiny_batch())
    torch.testing.assert_close(out.prediction, (out.routing * out.expert_outputs[0]).sum(-1))  # Eq. 1
    torch.testing.assert_close(out.routing.sum(-1), torch.ones(4))


# Missing modalities (App. C.2) ----------------------------------------------------------------------------------

def test_an_absent_modality_is_replaced_by_its_mask_before_everything():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    text, audio, vision, lengths = tiny_batch()
    presence = torch.tensor([[True, False, True]] * 2 + [[True, True, True]] * 2)
    out = model(text, audio, vision, lengths, presence=presence)
    emb = model.fusion.modality_emb
    assert torch.equal(out.fused_tokens[0][:2, 1], (model.mask[1] + emb[1]).expand(2, 16))
    # Whatever the absent audio holds cannot reach the probes, the router or the prediction.
    other = model(text, torch.randn_like(audio), vision, lengths, presence=presence)
    for field in ("prediction", "routing", "probe_logits", "consensus"):
        torch.testing.assert_close(getattr(other, field)[:2], getattr(out, field)[:2], atol=0, rtol=0)
    assert not torch.allclose(other.prediction[2:], out.prediction[2:])


# Encoders -------------------------------------------------------------------------------------------------------

def _encoder():
    torch.manual_seed(0)
    return ModalityEncoder(5, tiny_config()).eval()


def test_pooling_ignores_everything_after_the_length():
    enc = _encoder()
    x, lengths = torch.randn(3, 6, 5), torch.tensor([2, 6, 4])
    h = enc(x, lengths)
    y = x.clone()
    y[0, 2:] = 100.0
    y[2, 4:] = -7.0
    torch.testing.assert_close(enc(y, lengths), h, atol=1e-6, rtol=0)
    y[1, 5] = 3.0  # inside the second sample's length: must matter
    assert not torch.allclose(enc(y, lengths)[1], h[1])


def test_a_sample_does_not_see_its_neighbours():
    enc = _encoder()
    x, lengths = torch.randn(3, 6, 5), torch.tensor([2, 6, 4])
    torch.testing.assert_close(enc(x[1:2], lengths[1:2]), enc(x, lengths)[1:2], atol=1e-6, rtol=0)


def test_length_one_pools_the_first_position_only():
    enc = _encoder()
    x = torch.randn(1, 6, 5)
    # With one valid word, attention can only look at itself: h is that word's encoder output alone.
    only_first = enc.transformer(enc.proj(x[:, :1]) + enc.pos[:1])[:, 0]
    torch.testing.assert_close(enc(x, torch.tensor([1])), only_first, atol=1e-6, rtol=0)


def test_zero_length_gives_a_finite_vector_and_finite_gradients():
    enc = _encoder().train()
    x = torch.randn(2, 6, 5, requires_grad=True)
    h = enc(x, torch.tensor([0, 3]))
    assert torch.isfinite(h).all() and torch.all(h[0] == 0)
    h.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_model_with_empty_samples_is_finite():
    model = build_model(tiny_config()).train()
    text, audio, vision, _ = tiny_batch()
    out = model(text, audio, vision, torch.tensor([0, 0, 2, 6]))
    assert all(torch.isfinite(t).all() for t in out)


def test_wrong_feature_count_is_reported_by_name():
    model = build_model(tiny_config())
    text, audio, vision, lengths = tiny_batch()
    with pytest.raises(ValueError, match="audio has 73 features"):
        model(text, audio[..., :73], vision, lengths)
    with pytest.raises(ValueError, match="7 words"):
        model(*(torch.cat([t, t[:, :1]], dim=1) for t in (text, audio, vision)), lengths)


def test_trimming_a_batch_to_its_longest_sample_changes_nothing():
    model = build_model(tiny_config()).eval()
    text, audio, vision, _ = tiny_batch()
    lengths = torch.tensor([1, 3, 2, 3])  # the longest sample holds 3 of the 6 positions
    untrimmed = torch.stack([enc(x, lengths) for enc, x in zip(model.encoders, (text, audio, vision))], dim=1)
    torch.testing.assert_close(model.encode(text, audio, vision, lengths), untrimmed, atol=1e-6, rtol=0)
    # What lies beyond the longest sample is padding: changing it changes nothing.
    garbage = [x.clone() for x in (text, audio, vision)]
    for x in garbage:
        x[:, 3:] = 50.0
    torch.testing.assert_close(model(*garbage, lengths).prediction, model(text, audio, vision, lengths).prediction)
