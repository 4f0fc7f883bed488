"""Time the SDK aligner and the fast aligner side by side on a MOSEI-like synthetic subset.

    python benchmarks/align.py                              # 100 videos per split (300 videos), both aligners
    python benchmarks/align.py --videos-per-split 50        # a smaller subset
    python benchmarks/align.py --full                       # + the fast aligner on the full MOSEI-sized set
    python benchmarks/align.py --full --full-videos-per-split 800   # + a larger subset, extrapolated

The subset is the synthetic generator at MOSEI settings (COVAREP-like audio at 100 Hz, Facet-like vision at
30 Hz, MOSEI's segments per video in each split, and by default MOSEI's words per segment), written into a
temporary folder. Each aligner runs the whole
align stage (``rider.data.align.align``: validation, non-finite cleaning, alignment, writing the aligned file,
sha256 of the inputs for provenance) in a child process of its own, so that each peak memory is its own: VmHWM
of the child (its peak resident set size, interpreter and libraries included; not ``ru_maxrss``, which Linux
carries over from the parent), beside the same figure for a child that only imports those libraries. The two
aligners take turns ``--repeats`` times and each one's fastest run is kept (other jobs only slow runs down); the
load average is printed. Each child's CPU time (all its threads) is printed too: on a shared machine it moves less than
the wall clock. The time to only read every labelled video's arrays is printed as the I/O floor both pay, and
the time of the alignment calls proper (the SDK's ``align`` passes; the fast aligner's ``align_videos``). The two aligned files are compared (segments, word rows, max |difference| of the features). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MOSEI_SEGMENTS_PER_VIDEO = {"train": 16326 / 2249, "valid": 1871 / 300, "test": 4659 / 678}
MOSEI_SEGMENTS = 16326 + 1871 + 4659
# Genuine MOSEI transcripts (../shared/data/cmu-real/mosei_text.csv) hold 19.8 words per segment on average
# (median 17) over 7.6 s; the generator's default, 6-20 words of 0.3 s, makes shorter segments and videos, which
# favours the SDK (its cost per video grows with words x frames, the fast aligner's with frames).
MOSEI_WORDS_PER_SEGMENT = [7, 33]


def child(task: str, raw_dir: str, out: str) -> None:
    """Run in a fresh process: one align stage (``sdk`` / ``fast``), a read of every labelled video's arrays
    (``read``: the I/O floor of any aligner), or only the imports (``import-sdk`` / ``import-fast``)."""
    os.environ["TQDM_DISABLE"] = "1"
    summary: dict = {}
    if task.startswith("import-"):
        import h5py  # noqa: F401
        import numpy  # noqa: F401

        import rider.data.align  # noqa: F401
        import rider.data.fast_align  # noqa: F401
        if task == "import-sdk":
            import mmsdk.mmdatasdk  # noqa: F401
    elif task == "read":
        from rider.data.csd import ROLES
        from rider.data.fast_align import CsdReader
        from rider.data.synthetic import RAW_FILES

        started, cpu = time.perf_counter(), time.process_time()
        readers = {role: CsdReader(Path(raw_dir) / RAW_FILES[role], ROLES[role]) for role in ROLES}
        for video in readers["labels"].videos:
            for reader in readers.values():
                reader.read(video)
        summary["seconds"] = time.perf_counter() - started
        summary["cpu_seconds"] = time.process_time() - cpu
    else:
        import logging

        from rider.data.align import align
        from rider.data.synthetic import RAW_FILES

        logging.disable(logging.INFO)
        raw = {role: Path(raw_dir) / name for role, name in RAW_FILES.items()}
        proper = time_alignment_proper()
        started, cpu = time.perf_counter(), time.process_time()
        summary = align(raw, out, aligner=task)
        summary["seconds"] = time.perf_counter() - started
        summary["cpu_seconds"] = time.process_time() - cpu  # every thread of the process
        summary["alignment_seconds"], summary["alignment_cpu_seconds"] = proper
    summary["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(summary))


def time_alignment_proper() -> list[float]:
    """Wrap the alignment calls proper (the SDK's two ``align`` passes with the zero imputation; the fast
    aligner's ``align_videos``), without reading, validation, cleaning or writing; return [wall s, CPU s of the
    calling thread], filled in as they run."""
    import rider.data.align
    import rider.data.fast_align

    spent = [0.0, 0.0]

    def timed(function):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - wall
                spent[1] += time.thread_time() - cpu
        return wrapper

    rider.data.align.align_with_sdk = timed(rider.data.align.align_with_sdk)
    rider.data.fast_align.align_videos = timed(rider.data.fast_align.align_videos)
    return spent


def peak_rss_mib() -> float:
    """This process's peak resident set size: VmHWM of /proc/self/status where there is one (Linux).

    Not ``ru_maxrss``: Linux carries it over from the parent through fork and exec, so every child would report
    at least the parent's peak (here the parent holds the generated data).
    """
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux (bytes on macOS)


def best_of(runs: list[dict]) -> dict:
    """The fastest run, with every run's time beside it (other jobs on the machine only ever slow a run down)."""
    best = min(runs, key=lambda run: run["seconds"])
    fastest = {key: min(run[key] for run in runs) for key in ("cpu_seconds", "alignment_seconds",
                                                               "alignment_cpu_seconds") if key in best}
    return {**best, **fastest, "all_seconds": [round(run["seconds"], 3) for run in runs],
            "peak_rss_mib": max(run["peak_rss_mib"] for run in runs)}


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def run_child(*args: str) -> dict:
    # The SDK prints a status line per step on stdout: the summary is the child's last line.
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                            check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def generate_subset(folder: Path, videos_per_split: int | None, words_per_segment: tuple[int, int]) -> tuple[dict, float]:
    from rider.data.synthetic import FOLD_SIZES, SyntheticConfig, generate

    if videos_per_split is None:
        config = SyntheticConfig(size="mosei", words_per_segment=words_per_segment)
    else:
        segments = tuple(max(1, round(videos_per_split * MOSEI_SEGMENTS_PER_VIDEO[s])) for s in FOLD_SIZES["mosei"])
        config = SyntheticConfig(size="mosei", videos_per_split=videos_per_split, segments_per_split=segments,
                                 words_per_segment=words_per_segment)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the SDK's writer prints a status line per step
        paths = generate(config, folder)
    return paths, time.perf_counter() - started


def describe(paths: dict) -> dict:
    import h5py

    with h5py.File(paths["words"]) as words, h5py.File(paths["audio"]) as audio:
        videos = list(words["words/data"])
        n_words = sum(words[f"words/data/{v}/intervals"].shape[0] for v in videos)
        n_frames = sum(audio[f"audio/data/{v}/intervals"].shape[0] for v in videos)
    size = sum(paths[r].stat().st_size for r in ("words", "audio", "vision", "labels"))
    return {"videos": len(videos), "words": n_words, "audio_frames": n_frames, "raw_mib": size / 2**20}


def compare(sdk_path: Path, fast_path: Path) -> dict:
    import h5py
    import numpy as np

    with h5py.File(sdk_path) as sdk, h5py.File(fast_path) as fast:
        same = all(np.array_equal(sdk[n][()], fast[n][()]) for n in
                   ("segments/key", "segments/offset", "segments/interval", "words/word", "words/interval"))
        diff = max(float(np.abs(sdk[n][()] - fast[n][()]).max()) for n in ("audio", "vision"))
    return {"same_segments_and_words": same, "max_abs_feature_diff": diff}


def sha256_seconds(paths: dict) -> float:
    from rider.provenance import sha256_file

    started = time.perf_counter()
    for role in ("words", "audio", "vision", "labels"):
        sha256_file(paths[role])
    return time.perf_counter() - started


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        memory = f"{int(memory) / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        memory = "?"
    return f"{model}, {os.cpu_count()} cores, {memory} RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("TASK", "RAW_DIR", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--videos-per-split", type=int, default=100, help="subset aligned by both (default 100)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each aligner, alternating; best kept")
    parser.add_argument("--words-per-segment", type=int, nargs=2, default=MOSEI_WORDS_PER_SEGMENT, metavar=("LO", "HI"),
                        help="inclusive range of words per segment (default %(default)s: genuine MOSEI's mean of "
                             "19.8; the generator's own default is 6 20)")
    parser.add_argument("--full", action="store_true", help="also the fast aligner on a MOSEI-sized set")
    parser.add_argument("--full-videos-per-split", type=int, default=None,
                        help="with --full: a subset of this many videos per split instead, extrapolated to MOSEI")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temporary folder, removed)")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    os.environ["TQDM_DISABLE"] = "1"
    import logging

    logging.disable(logging.INFO)
    report: dict = {"machine": machine(), "peak_memory": "VmHWM (peak RSS) of each child process",
                    "load_average_at_start": load_average()}
    print(f"machine: {report['machine']}; load average at start {report['load_average_at_start']}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        geometry = tuple(args.words_per_segment)
        report["words_per_segment"] = geometry
        paths, gen_s = generate_subset(tmp / "subset", args.videos_per_split, geometry)
        subset = describe(paths)
        print(f"subset: {args.videos_per_split} videos per split of synthetic MOSEI, {geometry[0]}-{geometry[1]} words "
              f"per segment: {subset['videos']} videos, {subset['words']:,} words, {subset['audio_frames']:,} audio frames (100 Hz), "
              f"{subset['raw_mib']:.0f} MiB of .csd (generated in {gen_s:.1f} s)")
        baseline = {name: run_child(f"import-{name}", "-", "-")["peak_rss_mib"] for name in ("sdk", "fast")}
        runs: dict[str, list] = {"sdk": [], "fast": [], "read": []}
        for _ in range(args.repeats):
            for task in runs:
                runs[task].append(run_child(task, str(tmp / "subset"), str(tmp / f"{task}.h5")))
        results = {task: best_of(task_runs) for task, task_runs in runs.items()}
        for aligner in ("sdk", "fast"):
            result = results[aligner]
            print(f"  {aligner:4s}: {result['seconds']:8.2f} s (best of {result['all_seconds']}), CPU "
                  f"{result['cpu_seconds']:6.2f} s   peak RSS "
                  f"{result['peak_rss_mib']:6.0f} MiB (importing its libraries alone: {baseline[aligner]:.0f} MiB)"
                  f"   {result['segments']} segments")
        hashing = sha256_seconds(paths)
        reading = results["read"]["seconds"]
        ratio = results["sdk"]["seconds"] / results["fast"]["seconds"]
        agreement = compare(tmp / "sdk.h5", tmp / "fast.h5")
        cpu_ratio = results["sdk"]["cpu_seconds"] / results["fast"]["cpu_seconds"]
        print(f"  ratio sdk/fast: {ratio:.1f}x wall clock, {cpu_ratio:.1f}x CPU time (whole align stage, each in its "
              f"own process; CPU time counts every thread and moves less with other jobs on the machine)")
        sdk, fast = results["sdk"], results["fast"]
        proper_ratio = sdk["alignment_seconds"] / fast["alignment_seconds"]
        proper_cpu_ratio = sdk["alignment_cpu_seconds"] / fast["alignment_cpu_seconds"]
        print(f"  alignment proper (no reading, validation, cleaning, hashing or writing): sdk "
              f"{sdk['alignment_seconds']:.2f} s (CPU {sdk['alignment_cpu_seconds']:.2f} s), fast "
              f"{fast['alignment_seconds']:.2f} s (CPU {fast['alignment_cpu_seconds']:.2f} s): {proper_ratio:.0f}x wall, "
              f"{proper_cpu_ratio:.0f}x CPU")
        print(f"  shared by both: reading every labelled video's arrays takes {reading:.2f} s (best of "
              f"{results['read']['all_seconds']}); sha256 of the inputs for provenance {hashing:.2f} s (a second "
              f"thread, beside the alignment)")
        print(f"  same segments and word rows: {agreement['same_segments_and_words']};"
              f" max |audio/vision difference|: {agreement['max_abs_feature_diff']:.2e}")
        print(f"  load average at end {load_average()}")
        report["subset"] = {**subset, "videos_per_split": args.videos_per_split, "sdk": results["sdk"],
                            "fast": results["fast"], "read_only": results["read"],
                            "import_only_peak_rss_mib": baseline, "ratio": ratio, "cpu_ratio": cpu_ratio,
                            "alignment_proper_ratio": proper_ratio, "alignment_proper_cpu_ratio": proper_cpu_ratio, "sha256_s": hashing, **agreement}
        for path in [*paths.values(), tmp / "sdk.h5", tmp / "fast.h5"]:
            Path(path).unlink(missing_ok=True)

        if args.full:
            per_split = args.full_videos_per_split
            paths, gen_s = generate_subset(tmp / "full", per_split, geometry)
            full = describe(paths)
            fast = run_child("fast", str(tmp / "full"), str(tmp / "full.h5"))
            label = "full MOSEI-sized" if per_split is None else f"{per_split} videos per split"
            print(f"fast aligner, {label} synthetic set: {full['videos']:,} videos, {fast['segments']:,} segments, "
                  f"{full['words']:,} words, {full['audio_frames']:,} audio frames, {full['raw_mib']:,.0f} MiB of .csd "
                  f"(generated in {gen_s:.0f} s)")
            print(f"  fast: {fast['seconds']:.1f} s (CPU {fast['cpu_seconds']:.1f} s), peak RSS {fast['peak_rss_mib']:.0f} MiB;"
                  f" load average {load_average()}")
            entry = {**full, "fast": fast, "generate_s": gen_s}
            if per_split is not None:
                estimate = fast["seconds"] * MOSEI_SEGMENTS / fast["segments"]
                print(f"  EXTRAPOLATED (linear in segments) to MOSEI's {MOSEI_SEGMENTS:,} segments: {estimate:.0f} s")
                entry["extrapolated_mosei_s"] = estimate
            report["full" if per_split is None else "larger_subset"] = entry
    print(json.dumps(report))


if __name__ == "__main__":
    main()
