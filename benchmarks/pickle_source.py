"""Time the pickle stage (`rider pickle`) on MOSEI-sized pickles of both layouts: wall time and peak memory.

    python benchmarks/pickle_source.py                      # both layouts, in a temporary folder
    python benchmarks/pickle_source.py --layouts mult --folder /tmp/me

Each pickle has MOSEI's standard split sizes (16,326 / 1,871 / 4,659 segments, 22,856 in all) and 50 rows per
segment, random values laid out as the real files are: MulT's (300-d text, 74-d audio, 35-d vision, padding at the
front, -inf in the audio, labels (N, 1, 1), ids (N, 2) of byte strings) pickled with protocol 2 as Python 3 writes
it (numpy's raw data as latin-1 text, the costliest form to read back), and MMSA's (768-d text, padding at the end,
ids "<video>$_$<clip>", regression labels) with protocol 4. Segment lengths are drawn from 1 to 50. The stage runs
in a child process under /usr/bin/time -v: its wall time, its CPU time and its peak resident set size (the
interpreter and libraries included). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIZES = {"train": 16326, "valid": 1871, "test": 4659}
ROWS = 50
WIDTHS = {"mult": (300, 74, 35), "mmsa": (768, 74, 35)}


def split_arrays(layout: str, split: str, n: int, rng: np.random.Generator) -> dict:
    lengths = rng.integers(1, ROWS + 1, size=n)
    real = np.arange(ROWS)[None, :] < lengths[:, None]  # (n, L): the real rows at the front
    if layout == "mult":
        real = real[:, ::-1]  # MulT's: at the end, the padding in front
    streams = {}
    for name, width in zip(("text", "audio", "vision"), WIDTHS[layout]):
        values = rng.standard_normal((n, ROWS, width), dtype=np.float32)
        values[~real] = 0.0
        streams[name] = values
    streams["audio"][:, :, 0][real & (rng.random((n, ROWS)) < 0.02)] = -np.inf  # COVAREP's -inf
    labels = np.clip(rng.normal(0.0, 1.2, size=n), -3, 3).astype(np.float32)
    if layout == "mult":
        ids = np.array([[f"video{i // 10}".encode(), str(i % 10).encode()] for i in range(n)])
        return {**streams, "labels": labels.reshape(-1, 1, 1), "id": ids}
    ids = np.array([f"{split}video{i // 10}$_${i % 10}" for i in range(n)], dtype=object)
    return {**streams, "regression_labels": labels.astype(np.float64), "id": ids,
            "raw_text": np.array(["some words"] * n, dtype=object)}


def write_pickle(layout: str, path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = {split: split_arrays(layout, split, n, rng) for split, n in SIZES.items()}
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=2 if layout == "mult" else 4)


def run_stage(layout: str, path: Path, out: Path) -> dict:
    spec = {"source": "pickle", "pickle": {"layout": layout}}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "rider", "pickle", "--spec", json.dumps(spec),
               "--pickle", str(path), "--name", f"bench_{layout}", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"rider pickle failed:\n{result.stderr[-3000:]}")
    report = result.stderr

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", report).group(1).strip()

    wall = [float(part) for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    seconds = sum(value * 60 ** i for i, value in enumerate(reversed(wall)))
    return {"layout": layout, "pickle_bytes": path.stat().st_size, "cache_bytes": out.stat().st_size,
            "wall_s": round(seconds, 1),
            "cpu_s": round(float(field("User time (seconds)")) + float(field("System time (seconds)")), 1),
            "peak_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", choices=("mult", "mmsa"), default=["mult", "mmsa"])
    parser.add_argument("--folder", type=Path, help="where to write the pickles and caches (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        results = []
        for layout in args.layouts:
            path, out = Path(folder) / f"{layout}.pkl", Path(folder) / f"{layout}.h5"
            write_pickle(layout, path, args.seed)
            results.append(run_stage(layout, path, out))
            print(f"{layout}: {results[-1]}", flush=True)
            path.unlink()
            out.unlink()
    print(json.dumps({"segments": sum(SIZES.values()), "load_average": os.getloadavg(), "runs": results}))


if __name__ == "__main__":
    main()
