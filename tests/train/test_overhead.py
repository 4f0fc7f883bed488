"""Appendix D on this run: the step counts by hand, and a real (tiny) timing of one view against four."""

import pytest

from rider.train.overhead import measure_step_times, step_counts

TINY = {"d_model": 16, "expert_layers": 1, "expert_heads": 2, "expert_ff": 32, "encoder_heads": 2,
        "text_dim": 12, "audio_dim": 6, "vision_dim": 5, "max_len": 8}


def test_step_counts_of_appendix_d():
    # App. D: MOSI 1,284 training samples, batch 32, 60 epochs -> 41 steps/epoch, 2,460 steps, 9,840 view-forwards.
    assert step_counts(1284, 32, 60) == {"train_samples": 1284, "batch_size": 32, "steps_per_epoch": 41,
                                         "epochs": 60, "total_steps": 2460, "view_forwards": 9840,
                                         "single_view_forwards": 2460}
    assert step_counts(16326, 32, 60)["view_forwards"] == 122_640  # MOSEI
    assert step_counts(64, 32, 1)["steps_per_epoch"] == 2  # no short last batch
    with pytest.raises(ValueError, match="batch_size = 0"):
        step_counts(10, 0, 1)


def test_four_views_cost_more_arithmetic_than_one():
    # masked_views: False, as trained by the ablation: the timing switches the views on to have four to time.
    times = measure_step_times("rider_moe", {**TINY, "masked_views": False}, {}, batch_size=4, steps=2, warmup=1, device="cpu")
    assert times["single_view_ms"] > 0 and times["four_view_ms"] > 0
    assert times["step_time_multiplier"] == pytest.approx(times["four_view_ms"] / times["single_view_ms"])
    # Encoders and router run once, fusion + experts four times: between 1x and 4x the arithmetic.
    assert 1.0 < times["flop_ratio"] < 4.0
