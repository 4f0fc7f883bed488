"""Parameter counts of every model kind at its authors' published sizes (Table 6; the faithfulness check).

``rider count`` writes them as JSON for the report (results/parameters.json); ``python -m rider.model.params``
prints them. Models are built on the meta device: no memory is allocated, so the 91 M-parameter RIDER-MoE at
the MOSEI sizes costs nothing. RIDER-MoE's counts exceed the paper's Table 6 (1,522,299 MOSI; 12,011,259 MOSEI),
which five separate Transformer experts at the App. C.5 sizes cannot reach (DESIGN §3).
"""

from __future__ import annotations

import os
from typing import Iterable

import torch

from rider.atomic import write_json
from rider.model import MODEL_KINDS, build_model, count_parameters, model_kind

TABLE_6 = {"mosi": 1_522_299, "mosei": 12_011_259}


def paper_size_counts(kinds: Iterable[str]) -> list[dict]:
    """One row per (kind, paper dataset) the kind has published sizes for: {kind, title, dataset, parameters}."""
    rows = []
    for name in dict.fromkeys(kinds):
        entry = model_kind(name)
        for dataset, cfg in entry.paper.items():
            with torch.device("meta"):
                model = build_model(cfg, name)
            rows.append({"kind": name, "title": entry.title or name, "dataset": dataset,
                         "parameters": count_parameters(model)})
    return rows


def write_counts(kinds: Iterable[str], out_path: str | os.PathLike) -> list[dict]:
    rows = paper_size_counts(kinds)
    write_json(out_path, rows)
    return rows


def main() -> None:
    print(f"{'kind':<12}{'dataset':<8}{'parameters':>14}{'RIDER-MoE Table 6':>20}")
    for row in paper_size_counts(MODEL_KINDS):
        paper = f"{TABLE_6[row['dataset']]:,}" if row["kind"] == "rider_moe" else ""
        print(f"{row['kind']:<12}{row['dataset']:<8}{row['parameters']:>14,}{paper:>20}")


if __name__ == "__main__":
    main()
