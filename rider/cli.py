"""The ``rider`` command: one sub-command per workflow stage.

Snakemake rules call these with ``--spec``, the JSON of the rule's own config section (so a change to another
section never reruns the rule). By hand, ``--config config.yaml --dataset NAME`` reads the same section.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rider.config import ConfigError, from_mapping, load_config

log = logging.getLogger("rider")

DEFAULT_SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"


def _dataset_spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.spec is not None:
        return json.loads(args.spec)
    if args.config is None or args.dataset is None:
        raise ConfigError("give either --spec JSON or both --config FILE and --dataset NAME")
    schema = args.schema or Path(args.config).resolve().parent / DEFAULT_SCHEMA
    config = load_config(args.config, schema)
    if args.dataset not in config["datasets"]:
        raise ConfigError(f"{args.config}: no dataset '{args.dataset}'; have {sorted(config['datasets'])}")
    return config["datasets"][args.dataset]


def _generate(args: argparse.Namespace) -> None:
    from rider.data.synthetic import SyntheticConfig, generate

    spec = _dataset_spec(args)
    if spec["source"] != "synthetic":
        raise ConfigError(f"dataset source is '{spec['source']}', not synthetic: nothing to generate")
    generate(from_mapping(SyntheticConfig, spec.get("synthetic", {}), "synthetic"), args.out_dir)


def _download(args: argparse.Namespace) -> None:
    from rider.data.download import DownloadConfig, download
    from rider.data.synthetic import RAW_FILES

    spec = _dataset_spec(args)
    files = {**RAW_FILES, "glove_vectors": "glove_vectors.csd"}
    download(from_mapping(DownloadConfig, spec.get("cmu", {}), "cmu"), args.out_dir, files, roles=args.roles)


def _labels(args: argparse.Namespace) -> None:
    from rider.data.folds import standard_folds
    from rider.data.segment_labels import write_segment_labels

    write_segment_labels(args.segment_table, args.text_table, standard_folds(args.folds), args.labels_out,
                         args.transcripts_out)


def _transcribe(args: argparse.Namespace) -> None:
    from rider.data.transcripts import write_transcript_words

    write_transcript_words(args.labels, args.segments, args.out)


def _align(args: argparse.Namespace) -> None:
    from rider.data.align import align

    spec = _dataset_spec(args)
    if args.aligner is not None:
        spec = {**spec, "aligner": args.aligner}
    raw = {"words": args.words, "audio": args.audio, "vision": args.vision, "labels": args.labels,
           "glove_vectors": args.glove_vectors}
    align({role: path for role, path in raw.items() if path is not None}, args.out, config=spec)


def _cache(args: argparse.Namespace) -> None:
    from rider.data.bert import TextEncoderConfig
    from rider.data.cache import CacheConfig, build_cache
    from rider.data.folds import standard_folds

    spec = _dataset_spec(args)
    text_encoder = from_mapping(TextEncoderConfig, spec.get("text_encoder", {}), "text_encoder")
    build_cache(
        args.aligned,
        args.glove,
        standard_folds(spec.get("folds", "mosi")),
        args.out,
        config=from_mapping(CacheConfig, spec.get("cache", {}), "cache"),
        dataset=args.name or "",
        latents_path=args.latents,
        provenance_config=spec,
        text_encoder=text_encoder,
    )


def _plan(args: argparse.Namespace) -> None:
    from rider.stress import build_plan

    spec = json.loads(args.spec)
    build_plan(args.cache, args.out, grids=spec["grids"], seed=spec["seed"])


def _train(args: argparse.Namespace) -> None:
    from rider.train.trainer import RunSpec, train

    train(RunSpec.from_dict(json.loads(args.spec)), args.cache, args.out_dir, args.seed, threads=args.threads)


def _evaluate(args: argparse.Namespace) -> None:
    from rider.evaluate import evaluate

    evaluate(args.checkpoint, args.cache, args.plan, args.out, device=args.device, threads=args.threads,
             predictions_path=args.predictions)


def _report(args: argparse.Namespace) -> None:
    from rider.report.build import write_figures, write_overhead, write_tables
    from rider.report.spec import ReportSpec

    needs = {"tables": ("paper", "paper_cost"), "figures": (), "overhead": ("paper_cost",)}[args.part]
    missing = [f"--{name.replace('_', '-')}" for name in needs if getattr(args, name) is None]
    if missing:
        raise ConfigError(f"rider report {args.part} needs {' and '.join(missing)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.part == "overhead":
        spec = json.loads(args.spec)
        written = write_overhead(spec["datasets"], args.paper_cost, args.out_dir, steps=spec.get("steps", 10),
                                 warmup=spec.get("warmup", 2))
    elif args.part == "tables":
        written = write_tables(ReportSpec.from_json(args.spec), args.paper, args.paper_cost, args.out_dir)
    else:
        written = write_figures(ReportSpec.from_json(args.spec), args.out_dir)
    log.info("wrote %s", ", ".join(str(path) for path in written))


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration (either --spec, or --config with --dataset)")
    group.add_argument("--spec", help="JSON of the dataset's config section (what Snakemake passes)")
    group.add_argument("--config", help="a config.yaml to read the section from")
    group.add_argument("--dataset", help="the dataset's name in that config")
    group.add_argument("--schema", help=f"JSON schema for --config (default: <config folder>/{DEFAULT_SCHEMA})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rider", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("generate", _generate, "Write the synthetic dataset's .csd files, GloVe file and latents.")
    _dataset_options(sub)
    sub.add_argument("--out-dir", required=True, type=Path, help="raw folder to write into")

    sub = command("download", _download, "Download the CMU .csd files (SDK URLs) with retries.")
    _dataset_options(sub)
    sub.add_argument("--out-dir", required=True, type=Path, help="raw folder to write into")
    sub.add_argument("--roles", nargs="+", choices=("words", "audio", "vision", "labels", "glove_vectors"),
                     help="only these sequences (default: words, audio, vision, labels)")

    sub = command("labels", _labels,
                  "Write a labels .csd and its transcript table from a segment table (CMU-MOSEI's label file rows).")
    sub.add_argument("--segment-table", required=True, type=Path,
                     help="the label file's rows with the standard split (mosei_segments.csv)")
    sub.add_argument("--text-table", required=True, type=Path, help="a transcript per segment (mosei_text.csv)")
    sub.add_argument("--folds", required=True, choices=("mosi", "mosei"),
                     help="the SDK's standard folds the cache applies; the table's split column must agree")
    sub.add_argument("--labels-out", required=True, type=Path, help="labels .csd to write")
    sub.add_argument("--transcripts-out", required=True, type=Path,
                     help="transcript table to write, keyed by the written rows (the transcribe stage's --segments)")

    sub = command("transcribe", _transcribe,
                  "Write a words .csd from segment transcripts, spread over each segment's labelled interval.")
    sub.add_argument("--labels", required=True, type=Path,
                     help="the label .csd (segment intervals): genuine, or written by `rider labels`")
    sub.add_argument("--segments", required=True, type=Path,
                     help="transcript table keyed by the label file's rows (mosi_segments.csv, or `rider labels`'s)")
    sub.add_argument("--out", required=True, type=Path, help="words .csd to write")

    sub = command("align", _align, "Align audio and vision to the words (SDK rules); group words per segment.")
    _dataset_options(sub)
    for role in ("words", "labels"):
        sub.add_argument(f"--{role}", required=True, type=Path, help=f"{role} .csd file")
    for role in ("audio", "vision"):
        sub.add_argument(f"--{role}", type=Path, help=f"{role} .csd file (left out for a dataset without {role})")
    sub.add_argument("--glove-vectors", type=Path,
                     help="the SDK's word-vector .csd (300-d GloVe per word), aligned to the words for text_glove")
    sub.add_argument("--aligner", choices=("fast", "sdk"),
                     help="fast (vectorised, streamed through the videos) or sdk (the CMU SDK itself, the "
                          "reference); "
                          "default: the spec's `aligner`, else fast")
    sub.add_argument("--out", required=True, type=Path, help="aligned HDF5 file to write")

    sub = command("cache", _cache, "Build the padded per-split training cache from the aligned file.")
    _dataset_options(sub)
    sub.add_argument("--aligned", required=True, type=Path, help="aligned HDF5 file")
    sub.add_argument("--glove", type=Path,
                     help="GloVe-format word-vector file; without it text_glove comes from the aligned file's "
                          "SDK word vectors, or has zero columns (then the spec's text_encoder must name a model)")
    sub.add_argument("--latents", type=Path, help="synthetic ground-truth latents (optional)")
    sub.add_argument("--name", help="dataset name recorded in the cache")
    sub.add_argument("--out", required=True, type=Path, help="cache HDF5 file to write")

    sub = command("plan", _plan, "Draw the seeded stress plan (every stressor x severity) for a dataset's test split.")
    sub.add_argument("--spec", required=True, help='JSON of the config\'s stress section: {"seed": .., "grids": {..}}')
    sub.add_argument("--cache", required=True, type=Path, help="cache HDF5 file")
    sub.add_argument("--out", required=True, type=Path, help="plan HDF5 file to write")

    sub = command("train", _train, "Train one model variant with one seed; keep the best-validation-MAE checkpoint.")
    sub.add_argument("--spec", required=True, help='JSON {"model": {..}, "loss": {..}, "train": {..}}')
    sub.add_argument("--cache", required=True, type=Path, help="cache HDF5 file")
    sub.add_argument("--seed", required=True, type=int)
    sub.add_argument("--threads", type=int, help="CPU threads for torch")
    sub.add_argument("--out-dir", required=True, type=Path, help="checkpoint folder to write")

    sub = command("evaluate", _evaluate, "Evaluate a checkpoint: clean, every stressor and severity, nAUC, DIR checks.")
    sub.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder (model.pt, config.json, ...)")
    sub.add_argument("--cache", required=True, type=Path, help="cache HDF5 file")
    sub.add_argument("--plan", required=True, type=Path, help="stress plan HDF5 file")
    sub.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sub.add_argument("--threads", type=int, help="CPU threads for torch")
    sub.add_argument("--out", required=True, type=Path, help="evaluation JSON to write")
    sub.add_argument("--predictions", type=Path,
                     help="HDF5 file to write every per-sample test prediction into (the report's bootstrap test)")

    sub = command("report", _report, "Write the report's tables, figures or App. D overhead from the evaluations.")
    sub.add_argument("part", choices=("tables", "figures", "overhead"),
                     help="tables: Tables 1-6; figures: Figures 3-5 and the latents; overhead: App. D step times")
    sub.add_argument("--spec", required=True,
                     help='JSON. tables, figures: {"runs": [{"dataset", "model", "seed", "eval"}], "models": '
                          '[[name, label]], "reference", "alpha", "tables", "paper"} (rider.report.spec); overhead: '
                          '{"datasets": {NAME: {"config": config.json, "cache": cache.h5, "paper": "mosi"}}, "steps", '
                          '"warmup"}')
    sub.add_argument("--paper", type=Path, help="published Tables 1-5 (resources/paper/rider_moe_published.csv)")
    sub.add_argument("--paper-cost", type=Path,
                     help="published Table 6 and App. D (resources/paper/rider_moe_published_cost.csv)")
    sub.add_argument("--threads", type=int, help="CPU threads for torch")
    sub.add_argument("--out-dir", required=True, type=Path, help="folder to write the tables or figures into")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from rider.data.csd import DataError
    from rider.data.download import DownloadError

    started = time.perf_counter()
    try:
        args.handler(args)
    except (ConfigError, DataError, DownloadError) as err:
        log.error("%s", err)
        print(f"rider {args.command}: error: {err}", file=sys.stderr)
        return 2
    log.info("rider %s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
