"""Hand-made evaluation JSONs (the layout rider.evaluate writes) for the report tests, with numbers chosen so that
means, stds, nAUCs and paired tests can be worked out by hand; and the figure sizes the tests expect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from rider.metrics import METRIC_KEYS
from rider.report.spec import ReportSpec, RunRef

FIVE = ["U_T", "U_A", "U_V", "R", "S"]
GRIDS = {"noise": [0.0, 0.5, 1.0], "missing": [0.0, 0.2, 0.8], "conflict": [0.0, 0.5, 1.0]}

# Per model and seed: clean acc2_non0 and corr; every other clean metric is 0.5, MAE 0.7.
CLEAN = {
    "rider_moe": {"acc2_non0": [0.80, 0.82, 0.84], "corr": [0.50, 0.60, 0.70]},
    "no_dir": {"acc2_non0": [0.70, 0.73, 0.74], "corr": [0.45, 0.70, 0.60]},
    "single_expert": {"acc2_non0": [0.60, 0.65, 0.61], "corr": [0.40, 0.42, 0.41]},
}
SEEDS = (0, 1, 2)
NAN = float("nan")
# Under every stressor a metric falls linearly: value(s) = clean - DROP[model] * s.
DROP = {"rider_moe": 0.1, "no_dir": 0.2, "single_expert": 0.3}
DESCRIPTIONS = {"rider_moe": "RIDER-MoE (full)", "no_dir": "w/o DIR (λ_PID = λ_syn = 0)",
                "single_expert": "Expert collapse: single expert"}


def make_eval(model: str, seed_index: int) -> dict:
    clean = {key: 0.5 for key in METRIC_KEYS}
    clean["mae"] = 0.7
    for key, values in CLEAN[model].items():
        clean[key] = values[seed_index]
    five = model != "single_expert"
    stress = {}
    for stressor, grid in GRIDS.items():
        stress[stressor] = [
            {"severity": s, "metrics": {k: v - DROP[model] * s for k, v in clean.items()},
             # π: U's 0.1 in total, R 0.3 + 0.2 s, S 0.6 - 0.2 s
             "routing": [0.05, 0.03, 0.02, 0.3 + 0.2 * s, 0.6 - 0.2 * s] if five else [1.0],
             "present": [1.0, 1.0, 1.0],
             **({"signals": signals_at(s)} if five else {})}
            for s in grid
        ]
    result = {"clean": clean, "stress": stress, "parameters": 1_000_000 if five else 999_000,
              "experts": FIVE if five else ["single"], "seed": SEEDS[seed_index]}
    if five:
        # Pooled AUROCs: r_m .9/.7/.8 under missingness (mean .8); under conflict text is never swapped (NaN), so
        # r_m's mean is (.5 + .7) / 2 = .6, and cons .60, .61, .62 over the seeds (mean .61).
        result["separation"] = {
            "missing": {"reliability": {"text": 0.9, "audio": 0.7, "vision": 0.8}, "consensus": 0.55,
                        "entropy": {"text": 0.6, "audio": 0.6, "vision": 0.6}},
            "noise": {"reliability": {"text": 0.5, "audio": 0.4, "vision": 0.3}, "consensus": 0.45,
                      "entropy": {"text": 0.3, "audio": 0.3, "vision": 0.3}},
            "conflict": {"reliability": {"text": NAN, "audio": 0.5, "vision": 0.7},
                         "consensus": 0.6 + 0.01 * seed_index, "entropy": {"text": NAN, "audio": 0.5, "vision": 0.5}},
        }
        result["quality_tracking"] = {"reliability": {"pearson": {"text": 0.2, "audio": 0.4, "vision": 0.6},
                                                      "spearman": {"text": 0.1, "audio": 0.2, "vision": 0.3},
                                                      "auroc": {"text": 0.7, "audio": 0.8, "vision": NAN}}}
        result["dir"] = {"delta_u_avg": 0.1 + 0.01 * seed_index, "var_r": 0.05, "off_s": 0.02,
                         "corr_syn_residual": 0.3}
        result["latent_correlation"] = {
            e: {z: (0.9 if z == {"U_T": "u_T", "U_A": "u_A", "U_V": "u_V", "R": "r", "S": "s"}[e] else 0.1)
                for z in ("r", "s", "u_T", "u_A", "u_V")}
            for e in FIVE
        }
    else:
        result["latent_correlation"] = {"single": {z: 0.2 for z in ("r", "s", "u_T", "u_A", "u_V")}}
    return result


def signals_at(s: float) -> dict:
    """The chain's means at severity s: H_T rises by .4 s, r_T falls by .1 s (A and V take it up), cons falls by .1 s,
    the prior stays put (the issue's Eq. 35 break)."""
    return {"entropy": {"text": 1.5 + 0.4 * s, "audio": 1.6, "vision": 1.6},
            "reliability": {"text": 0.4 - 0.1 * s, "audio": 0.3 + 0.05 * s, "vision": 0.3 + 0.05 * s},
            "mean_reliability": 1 / 3, "consensus": 0.9 - 0.1 * s,
            "expert_prior": dict(zip(FIVE, (0.26, 0.25, 0.16, 0.17, 0.16)))}


def write_runs(root: Path, models=tuple(CLEAN), dataset: str = "synth_mosi") -> list[RunRef]:
    runs = []
    for model in models:
        for index, seed in enumerate(SEEDS):
            path = root / dataset / model / f"seed{seed}" / "eval.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(make_eval(model, index)))
            runs.append(RunRef(dataset, model, seed, path))
    return runs


def make_spec(runs: list[RunRef], **tables) -> ReportSpec:
    models = dict.fromkeys(run.model for run in runs)
    return ReportSpec(runs=tuple(runs), models={m: DESCRIPTIONS[m] for m in models}, reference="rider_moe",
                      alpha=0.05, tables=tables, paper={run.dataset: "mosi" for run in runs})


# Worked out from the panel sizes in rider/report/figures.py, at 150 dpi (inches x 150):
EXPECTED = {  # one dataset
    "figure3_severity": (1740, 795),  # 3 panels x 3.0 in + 2.6 in legend; 2 rows x 2.4 in + 0.5 in title
    "figure4_routing": (1740, 435),  # 3 x 3.0 + 2.6; 1 x 2.4 + 0.5
    "figure5_dir": (1800, 525),  # 4 x 3.0; 1 x 3.0 + 0.5
    "figure_latents": (1320, 615),  # 4.2 + 4.6; 3.6 + 0.5
    "figure_chain": (1740, 1875),  # 3 x 3.0 + 2.6; 5 links x 2.4 + 0.5 (the reference only)
}


def assert_drawn(path, size):
    image = Image.open(path)
    assert image.format == "PNG" and image.size == size, (path.name, image.size)
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert (pixels < 250).mean() > 0.02, f"{path.name} is nearly blank"  # lines, bars, text, not a white page
