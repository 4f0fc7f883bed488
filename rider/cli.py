"""The ``rider`` command: one sub-command per workflow stage.

Snakemake rules call these with ``--spec``, the JSON of the rule's own config section (so a change to another
section never reruns the rule). By hand, ``--config config.yaml --dataset NAME`` reads the same section.

Errors leave as one line on stderr, ``rider <stage>: error: <message>``, exit status 2, never a traceback: the
arguments are checked when parsed (files that must exist, counts, seeds, JSON), the inputs a stage reads are
opened through the checked readers (a truncated file is named as such) and checked against each other (a cache of
another dataset, a plan drawn from another cache) before any work; whatever the library raises for bad input
(``ValueError``, ``OSError``) is printed the same way. An unexpected failure is one line too, exit status 1;
``rider -v`` shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from rider.config import ConfigError, from_mapping, load_config

log = logging.getLogger("rider")

DEFAULT_SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"
MAX_SEED = 2**32 - 1  # the trainer seeds numpy's global generator, which takes no more


# --- argument types: checked when parsed, so a wrong argument is named before any work -----------------------------


def _input_file(what: str) -> Callable[[str], Path]:
    def check(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{path}: is a folder, expected a {what}")
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"{path}: no such {what}")
        return path
    return check


def _input_folder(what: str) -> Callable[[str], Path]:
    def check(text: str) -> Path:
        path = Path(text)
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path}: no such {what}" + (" (a file)" if path.exists() else ""))
        return path
    return check


def _output_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: is a folder, expected a file to write")
    blocking = next((parent for parent in path.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: cannot be written, {blocking} is a file, not a folder")
    return path


def _output_folder(text: str) -> Path:
    path = Path(text)
    blocking = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: cannot be a folder, {blocking} is a file")
    return path


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argument type: a whole number in [low, high] (no upper bound without ``high``)."""
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} must lie in [{low}, {high}]")
        return value
    return check


_count = _whole_number(1)
_seed = _whole_number(0, MAX_SEED)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg} at column {err.colno}): {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got a {type(value).__name__}")
    return value


def _only_keys(spec: Mapping[str, Any], allowed: set[str], argument: str = "--spec") -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{argument}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _dataset_spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.spec is not None:
        if args.config is not None:
            raise ConfigError("give either --spec JSON or --config FILE with --dataset NAME, not both")
        return args.spec
    if args.config is None or args.dataset is None:
        raise ConfigError("give either --spec JSON or both --config FILE and --dataset NAME")
    schema = args.schema or Path(args.config).resolve().parent / DEFAULT_SCHEMA
    config = load_config(args.config, schema)
    if args.dataset not in config["datasets"]:
        raise ConfigError(f"{args.config}: no dataset '{args.dataset}'; have {sorted(config['datasets'])}")
    return config["datasets"][args.dataset]


def _check_cache(path: Path, dataset: str | None) -> None:
    """A cache file that is whole, matches the layout and was built for ``dataset`` (when named)."""
    from rider.data.cache import check_cache_dataset, validate_cache

    validate_cache(path)
    check_cache_dataset(path, dataset, "--dataset")


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
    if spec.get("source", "cmu") != "cmu":
        raise ConfigError(f"dataset source is '{spec['source']}', not cmu: nothing to download")
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
    if args.name and args.dataset and args.name != args.dataset:
        raise ConfigError(f"--name {args.name} and --dataset {args.dataset} name different datasets")
    text_encoder = from_mapping(TextEncoderConfig, spec.get("text_encoder", {}), "text_encoder")
    build_cache(
        args.aligned,
        args.glove,
        standard_folds(spec.get("folds", "mosi")),
        args.out,
        config=from_mapping(CacheConfig, spec.get("cache", {}), "cache"),
        dataset=args.name or args.dataset or "",
        latents_path=args.latents,
        provenance_config=spec,
        text_encoder=text_encoder,
    )


def _pickle(args: argparse.Namespace) -> None:
    from rider.data.cache import CacheConfig
    from rider.data.pickle_source import PickleConfig, build_pickle_cache

    spec = _dataset_spec(args)
    if spec.get("source") != "pickle":
        raise ConfigError(f"dataset source is '{spec.get('source')}', not pickle: its cache comes from `rider cache`")
    if args.name and args.dataset and args.name != args.dataset:
        raise ConfigError(f"--name {args.name} and --dataset {args.dataset} name different datasets")
    source = from_mapping(PickleConfig, spec.get("pickle", {}), "pickle")
    path = args.pickle or source.path
    if path is None:
        raise ConfigError("no pickle file: give --pickle FILE or set the dataset's pickle.path")
    build_pickle_cache(path, args.out, layout=source.layout,
                       config=from_mapping(CacheConfig, spec.get("cache", {}), "cache"),
                       dataset=args.name or args.dataset or "", provenance_config=spec)


def _plan(args: argparse.Namespace) -> None:
    from rider.stress import build_plan

    _only_keys(args.spec, {"seed", "grids"})
    _check_cache(args.cache, args.dataset)
    build_plan(args.cache, args.out, grids=args.spec.get("grids"), seed=args.spec.get("seed", 0),
               dataset=args.dataset)


def _train(args: argparse.Namespace) -> None:
    from rider.data.cache import cache_features
    from rider.train.trainer import RunSpec, train

    spec = RunSpec.from_dict(args.spec)  # a bad spec stops here, before the cache is read
    _check_cache(args.cache, args.dataset)
    features = cache_features(args.cache)
    if features.get(spec.train.text_feature, 0) == 0:
        have = sorted(name for name, width in features.items() if width)
        raise ConfigError(f"{args.cache}: holds no {spec.train.text_feature} features (train.text_feature in --spec); "
                          f"it has {have}")
    train(spec, args.cache, args.out_dir, args.seed, threads=args.threads)


def _evaluate(args: argparse.Namespace) -> None:
    from rider.evaluate import evaluate

    if args.predictions is not None and args.predictions.resolve() == args.out.resolve():
        raise ConfigError(f"--out and --predictions are the same file, {args.out}")
    _check_cache(args.cache, args.dataset)
    evaluate(args.checkpoint, args.cache, args.plan, args.out, device=args.device, threads=args.threads,
             predictions_path=args.predictions)


def _overhead(args: argparse.Namespace) -> None:
    import torch

    from rider.train.overhead import write_overhead

    if args.threads:
        torch.set_num_threads(args.threads)
    write_overhead(args.run_config, args.cache, args.out, dataset=args.dataset, paper=args.paper, steps=args.steps,
                   warmup=args.warmup)


def _tune(args: argparse.Namespace) -> None:
    from rider.readers import read_json
    from rider.train.tune import TuneConfig, write_choice

    _only_keys(args.spec, {"search", "trials"})
    search = from_mapping(TuneConfig, args.spec.get("search", {}), "search")
    declared = args.spec.get("trials", [])
    if len(declared) != len(args.metadata):
        raise ConfigError(f"--spec declares {len(declared)} trials but --metadata names {len(args.metadata)} files")
    records = [{**trial, "metadata": read_json(path, "trial's metadata")} for trial, path in zip(declared, args.metadata)]
    choice = write_choice(search, records, args.out)
    for kind, entry in choice["chosen"].items():
        log.info("%s: %s", kind, entry["trial"])


def _count_parameters(args: argparse.Namespace) -> None:
    from rider.model.params import write_counts

    write_counts(args.kinds, args.out)


def _check_report_inputs(part: str, spec: Mapping[str, Any]) -> None:
    """The files a report part reads, opened through the checked readers before anything is drawn."""
    from rider.h5 import open_h5
    from rider.readers import read_json

    runs = spec.get("runs")
    if not isinstance(runs, list) or any(not isinstance(run, dict) or "eval" not in run for run in runs):
        raise ConfigError('--spec: "runs" must be a list of {"dataset", "model", "seed", "eval"}')
    for run in runs:
        read_json(run["eval"], "evaluation")
        if run.get("predictions") and part == "tables":
            with open_h5(run["predictions"], "predictions file"):
                pass
    if part == "tables":
        for path in spec.get("overhead", {}).values():
            read_json(path, "measurement (rider overhead)")
        if spec.get("parameters"):
            read_json(spec["parameters"], "measurement (rider count)", expect=list)


def _report(args: argparse.Namespace) -> None:
    from rider.report.build import write_figures, write_tables
    from rider.report.spec import ReportSpec

    needs = {"tables": ("paper", "paper_cost"), "figures": ()}[args.part]
    missing = [f"--{name.replace('_', '-')}" for name in needs if getattr(args, name) is None]
    if missing:
        raise ConfigError(f"rider report {args.part} needs {' and '.join(missing)}")
    _check_report_inputs(args.part, args.spec)
    if args.part == "tables":
        written = write_tables(ReportSpec.from_dict(args.spec), args.paper, args.paper_cost, args.out_dir)
    else:
        written = write_figures(ReportSpec.from_dict(args.spec), args.out_dir)
    log.info("wrote %s", ", ".join(str(path) for path in written))


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error of every other failure (argparse prints the usage above it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Arguments:
    """A stage's arguments, each kind declared once here: an input file of some kind, an output file or folder,
    the JSON spec, the dataset's section, the cache, the dataset name, the seed, threads. Each method adds one and
    returns the builder, so a stage's block reads as the list of what it takes."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser

    def add(self, *flags: str, **options: Any) -> "_Arguments":
        self.parser.add_argument(*flags, **options)
        return self

    def input(self, flag: str, what: str, help: str | None = None, required: bool = True) -> "_Arguments":
        """An existing file; ``what`` names its kind in the error when it is missing or a folder."""
        return self.add(flag, required=required, type=_input_file(what), help=help or what)

    def folder(self, flag: str, what: str, help: str | None = None) -> "_Arguments":
        return self.add(flag, required=True, type=_input_folder(what), help=help or what)

    def out(self, help: str, flag: str = "--out") -> "_Arguments":
        return self.add(flag, required=True, type=_output_file, help=help)

    def out_dir(self, help: str) -> "_Arguments":
        return self.add("--out-dir", required=True, type=_output_folder, help=help)

    def spec(self, help: str) -> "_Arguments":
        return self.add("--spec", required=True, type=_json_object, help=help)

    def dataset_section(self) -> "_Arguments":
        """The dataset's config section: --spec JSON (what Snakemake passes), or --config with --dataset."""
        group = self.parser.add_argument_group("configuration (either --spec, or --config with --dataset)")
        group.add_argument("--spec", type=_json_object,
                           help="JSON of the dataset's config section (what Snakemake passes)")
        group.add_argument("--config", type=_input_file("config file"), help="a config.yaml to read the section from")
        group.add_argument("--dataset", help="the dataset's name in that config")
        group.add_argument("--schema", type=_input_file("JSON schema"),
                           help=f"JSON schema for --config (default: <config folder>/{DEFAULT_SCHEMA})")
        return self

    def cache(self) -> "_Arguments":
        return self.input("--cache", "cache file", "cache HDF5 file")

    def dataset(self) -> "_Arguments":
        return self.add("--dataset", help="the dataset this is for: a cache file built for another one is refused "
                                          "(a swapped cache)")

    def seed(self) -> "_Arguments":
        return self.add("--seed", required=True, type=_seed, help=f"training seed, 0 to {MAX_SEED}")

    def threads(self) -> "_Arguments":
        return self.add("--threads", type=_count, help="CPU threads for torch")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rider", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; a traceback for internal errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    def command(name: str, handler: Callable, help: str) -> _Arguments:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return _Arguments(sub)

    command("generate", _generate, "Write the synthetic dataset's .csd files, GloVe file and latents.") \
        .dataset_section().out_dir("raw folder to write into")

    command("download", _download, "Download the CMU .csd files (SDK URLs) with retries.") \
        .dataset_section().out_dir("raw folder to write into") \
        .add("--roles", nargs="+", choices=("words", "audio", "vision", "labels", "glove_vectors"),
             help="only these sequences (default: words, audio, vision, labels)")

    command("labels", _labels,
            "Write a labels .csd and its transcript table from a segment table (CMU-MOSEI's label file rows).") \
        .input("--segment-table", "segment table",
               "the label file's rows with the standard split (mosei_segments.csv)") \
        .input("--text-table", "transcript table", "a transcript per segment (mosei_text.csv)") \
        .add("--folds", required=True, choices=("mosi", "mosei"),
             help="the SDK's standard folds the cache applies; the table's split column must agree") \
        .out("labels .csd to write", "--labels-out") \
        .out("transcript table to write, keyed by the written rows (the transcribe stage's --segments)",
             "--transcripts-out")

    command("transcribe", _transcribe,
            "Write a words .csd from segment transcripts, spread over each segment's labelled interval.") \
        .input("--labels", "label .csd", "the label .csd (segment intervals): genuine, or written by `rider labels`") \
        .input("--segments", "transcript table",
               "transcript table keyed by the label file's rows (mosi_segments.csv, or `rider labels`'s)") \
        .out("words .csd to write")

    align = command("align", _align, "Align audio and vision to the words (SDK rules); group words per segment.") \
        .dataset_section()
    for role in ("words", "labels"):
        align.input(f"--{role}", f"{role} .csd", f"{role} .csd file")
    for role in ("audio", "vision"):
        align.input(f"--{role}", f"{role} .csd", f"{role} .csd file (left out for a dataset without {role})",
                    required=False)
    align.input("--glove-vectors", "word-vector .csd",
                "the SDK's word-vector .csd (300-d GloVe per word), aligned to the words for text_glove",
                required=False) \
        .add("--aligner", choices=("fast", "sdk"),
             help="fast (vectorised, streamed through the videos) or sdk (the CMU SDK itself, the reference); "
                  "default: the spec's `aligner`, else fast") \
        .out("aligned HDF5 file to write")

    command("cache", _cache, "Build the padded per-split training cache from the aligned file.") \
        .dataset_section() \
        .input("--aligned", "aligned HDF5 file") \
        .input("--glove", "GloVe file",
               "GloVe-format word-vector file; without it text_glove comes from the aligned file's SDK word vectors, "
               "or has zero columns (then the spec's text_encoder must name a model)", required=False) \
        .input("--latents", "latents file", "synthetic ground-truth latents (optional)", required=False) \
        .add("--name", help="dataset name recorded in the cache (default: --dataset)") \
        .out("cache HDF5 file to write")

    command("pickle", _pickle, "Build the training cache from MulT's or MMSA's aligned pickle, read safely.") \
        .dataset_section() \
        .input("--pickle", "pickle file", "the pickle (default: the spec's pickle.path)", required=False) \
        .add("--name", help="dataset name recorded in the cache (default: --dataset)") \
        .out("cache HDF5 file to write")

    command("plan", _plan, "Draw the seeded stress plan (every stressor x severity) for a dataset's test split.") \
        .spec('JSON of the config\'s stress section: {"seed": .., "grids": {..}} (defaults when left out)') \
        .cache().dataset().out("plan HDF5 file to write")

    command("train", _train, "Train one model variant with one seed; keep the best-validation-MAE checkpoint.") \
        .spec('JSON {"kind": .., "model": {..}, "loss": {..}, "train": {..}}') \
        .cache().dataset().seed().threads().out_dir("checkpoint folder to write")

    command("evaluate", _evaluate, "Evaluate a checkpoint: clean, every stressor and severity, nAUC, DIR checks.") \
        .folder("--checkpoint", "checkpoint folder", "checkpoint folder (model.pt, config.json, ...)") \
        .cache() \
        .input("--plan", "stress plan", "stress plan HDF5 file (it must have been drawn from --cache)") \
        .dataset() \
        .add("--device", default="auto", choices=("auto", "cpu", "cuda")) \
        .threads() \
        .out("evaluation JSON to write") \
        .add("--predictions", type=_output_file,
             help="HDF5 file to write every per-sample test prediction into (the report's bootstrap test)")

    command("overhead", _overhead,
            "Time a trained run's training step, single view against the four views (App. D); write JSON.") \
        .input("--run-config", "checkpoint configuration", "the run's checkpoint config.json") \
        .input("--cache", "cache file", "cache HDF5 file (its training split size)") \
        .add("--dataset", required=True, help="the dataset's name (recorded)") \
        .add("--paper", choices=("mosi", "mosei"), help="the paper dataset whose App. D numbers sit beside") \
        .add("--steps", type=_count, default=10, help="timed steps (median reported)") \
        .add("--warmup", type=_count, default=2, help="untimed steps first") \
        .threads() \
        .out("timing JSON to write")

    command("tune", _tune, "Choose each kind's trial of the declared search by validation MAE; write the choice.") \
        .spec('JSON {"search": {"kinds", "seed", "sizes", "lr_factors"}, "trials": [{"kind", "trial", "base", '
              '"overrides"}]} (rider.train.tune)') \
        .add("--metadata", required=True, nargs="+", type=_input_file("trial's metadata"),
             help="each declared trial's metadata.json (rider train), in the order of --spec's trials") \
        .out("choice JSON to write")

    command("count", _count_parameters,
            "Count each model kind's parameters at its authors' published sizes; write JSON.") \
        .add("--kinds", required=True, nargs="+", help="model kinds (rider.model.MODEL_KINDS)") \
        .out("JSON file to write")

    command("report", _report, "Write the report's tables (with App. D) or figures from the evaluations.") \
        .add("part", choices=("tables", "figures"),
             help="tables: Tables 1-6 and App. D; figures: Figures 3-5 and the latents") \
        .spec('JSON: {"runs": [{"dataset", "model", "seed", "eval"}], "models": [[name, label]], "reference", '
              '"alpha", "tables", "paper", "baselines", "overhead", "parameters"} (rider.report.spec)') \
        .input("--paper", "published-results table", "published Tables 1-5 (resources/paper/rider_moe_published.csv)",
               required=False) \
        .input("--paper-cost", "published-cost table",
               "published Table 6 and App. D (resources/paper/rider_moe_published_cost.csv)", required=False) \
        .out_dir("folder to write the tables or figures into")
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from rider.data.download import DownloadError

    started = time.perf_counter()
    try:
        args.handler(args)
    # Bad input: the library raises ValueError (ConfigError, DataError, ProvenanceError are ones) naming the file
    # and field; OSError for a file that cannot be read or written (a missing one, a full disk); a diverged run.
    except (ValueError, OSError, DownloadError, FloatingPointError) as err:
        print(f"rider {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rider {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, still one line: the traceback is one -v away
        if args.verbose:
            raise
        print(f"rider {args.command}: internal error: {type(err).__name__}: {_one_line(err)} (rerun with "
              "rider -v for the traceback)", file=sys.stderr)
        return 1
    log.info("rider %s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
