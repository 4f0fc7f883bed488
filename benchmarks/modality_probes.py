"""Print how much each modality of a cache carries: the label probes and, for synthetic data, the quality probes.

    python benchmarks/modality_probes.py resources/cache/synth_mosi.h5
    python benchmarks/modality_probes.py /tmp/me/cache.h5 --seed 1

Probes are fitted on the train split and scored on the test split (rider.data.modality_probes says which probes
and on which statistics). The numbers in rider/data/synthetic.py's docstring come from this script. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from rider.data.modality_probes import format_tables, label_probes, quality_probes, segment_statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", help="a cache file written by `rider cache`")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MLP probe (0)")
    args = parser.parse_args()
    start = time.perf_counter()
    train, test = (segment_statistics(args.cache, split) for split in ("train", "test"))
    labels = label_probes(train, test, seed=args.seed)
    quality = quality_probes(train, test) if "quality" in train["latents"] else None
    print(format_tables(labels, quality))
    print(f"\n{len(train['labels'])} train / {len(test['labels'])} test segments; {time.perf_counter() - start:.1f} s")
    print(json.dumps({"labels": labels, "quality_auroc": None if quality is None else quality.tolist()}))


if __name__ == "__main__":
    main()
