"""How model jobs should share a CPU machine without a GPU: K trainings one after another with all the cores each
(what the default profile's `gpu=1` cap did), against K side by side with one thread each (what the workflow does
now without a GPU: one job per core, `cpu_jobs`; workflow/rules/common.smk).

    python benchmarks/model_jobs.py --cache resources/cache/synth_mosi.h5            # K = the cores, 2 epochs

Each job is a real `rider train` (its own process, as Snakemake runs it) of the default run's RIDER-MoE on the
given cache. Run it on a quiet machine. The last line printed is one JSON object: the wall time of each way and
`sequential_over_parallel` (> 1: side by side is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

# The default run's RIDER-MoE (config.yaml, datasets.synth_mosi).
SPEC = {"kind": "rider_moe", "model": {"d_model": 64, "expert_layers": 2, "expert_ff": 128},
        "train": {"epochs": 2, "lr": 1.0e-3}}


def train(cache: str, seed: int, threads: int, epochs: int, folder: str) -> float:
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": epochs}}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rider", "train", "--spec", json.dumps(spec), "--cache", cache,
                    "--seed", str(seed), "--threads", str(threads), "--out-dir", folder],
                   check=True, capture_output=True, env={**os.environ, "TQDM_DISABLE": "1"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="a cache HDF5 file (the default run's)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="K trainings (the cores)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        for k in range(args.jobs):
            train(args.cache, k, cores, args.epochs, f"{root}/sequential{k}")
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda k: train(args.cache, k, 1, args.epochs, f"{root}/parallel{k}"), range(args.jobs)))
        parallel = time.perf_counter() - started
    print(f"{args.jobs} trainings of {args.epochs} epochs on {cores} cores: one after another with {cores} threads "
          f"{sequential:.1f} s; side by side with 1 thread each {parallel:.1f} s")
    print(json.dumps({"jobs": args.jobs, "cores": cores, "epochs": args.epochs, "sequential_s": sequential,
                      "parallel_s": parallel, "sequential_over_parallel": sequential / parallel}))


if __name__ == "__main__":
    main()
