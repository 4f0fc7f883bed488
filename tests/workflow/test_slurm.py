"""profiles/slurm/ on a real one-node SLURM cluster on this machine, checked against a local run.

The fixture installs Debian's slurm-wlm and munge when they are missing (root, apt-get) and starts munged,
slurmctld and slurmd with a generated configuration under a temporary directory (tests/workflow/slurm/cluster.sh); the
node offers one GPU as a generic resource (a stand-in device: the GPU request is scheduled and counted by
SLURM, the job computes on the CPU). The same tiny configuration then runs twice, through
`snakemake --profile profiles/slurm` and as a plain local `snakemake --cores 2`, and the evaluations must agree.
The daemons are stopped whatever happens.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_RUN

CLUSTER = REPO / "tests/workflow/slurm/cluster.sh"
PROFILE = REPO / "profiles/slurm"
TARGET = "evaluations"   # data stages, plan, train, evaluate: the jobs that matter on a cluster
SLURM_RULES = ("generate", "align", "cache", "plan", "train", "evaluate")
GPU_RULES = ("train", "evaluate")

CONFIG = {
    "run": {"datasets": ["tiny"], "models": ["rider_moe"], "seeds": [0]},
    "datasets": {
        "tiny": {
            "source": "synthetic",
            "synthetic": {"seed": 3, "videos_per_split": 3, "segments_per_split": [24, 9, 12],
                          "vocabulary_size": 200, "audio_hz": 50},
            "model": TINY_RUN["model"],
            "train": {**TINY_RUN["train"], "epochs": 4},
        }
    },
    "stress": {"grids": {"noise": [0.0, 0.5], "missing": [0.0, 0.6], "conflict": [0.0, 1.0]}},
}

# Only what this test cluster needs on top of profiles/slurm (a second --profile overrides key by key; nothing
# of the profile's resources is replaced, so the GPU requests go to SLURM as a user's would): no slurmdbd here,
# so job status comes from squeue; a first status check after 1 s instead of 40; SLURM's job logs kept.
TEST_LAYER = {
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 1,
    "slurm-keep-successful-logs": True,
    "seconds-between-status-checks": 1,  # the default 10 s between polls is most of a tiny run's wall time
}

# Fields that measure time, not results.
# What differs between two runs of the same work: time, and the checksums of files built twice (an HDF5 file
# records when its objects were written, so a cache built again hashes differently; provenance names the bytes).
TIMING_KEYS = {"seconds", "train_seconds", "sha256"}


def why_not_here() -> str | None:
    if not sys.platform.startswith("linux"):
        return "a SLURM cluster on localhost needs Linux"
    if shutil.which("bash") is None:
        return "tests/workflow/slurm/cluster.sh needs bash"
    if os.geteuid() != 0:
        return "needs root: it starts slurmctld, slurmd and munged (and may apt-get install slurm-wlm)"
    installed = all(shutil.which(tool) for tool in ("sbatch", "squeue", "srun", "slurmctld", "slurmd", "munged"))
    if not installed and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install slurm-wlm and munge"
    return None


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], check=False, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster: the environment that reaches it (SLURM_CONF, PATH)."""
    reason = why_not_here()
    if reason:
        pytest.skip(reason)
    installed = run(["bash", CLUSTER, "install"], timeout=900)
    assert installed.returncode == 0, f"apt-get install slurm-wlm failed:\n{installed.stdout[-3000:]}\n" \
                                      f"{installed.stderr[-3000:]}"

    state = tmp_path_factory.mktemp("slurm")
    try:
        started = run(["bash", CLUSTER, "start", state], timeout=180)
        assert started.returncode == 0, f"the test cluster did not start:\n{started.stdout}{started.stderr}"
        settings = dict(line.split("=", 1) for line in started.stdout.splitlines()
                        if line.startswith(("SLURM_CONF=", "PATH_PREFIX=")))
        yield {"SLURM_CONF": settings["SLURM_CONF"], "PATH_PREFIX": settings["PATH_PREFIX"], "state": state}
    finally:
        stopped = run(["bash", CLUSTER, "stop", state], timeout=120)
        print(stopped.stdout, stopped.stderr)


def start_snakemake(workdir: Path, *args, extra_env: dict | None = None, path_prefix: str | None = None):
    """Start the repository's workflow on CONFIG in ``workdir``, run from there as a user would (profiles load
    only on the command line; running inside ``workdir`` keeps every .snakemake folder out of the checkout).
    Its output goes to ``workdir``/snakemake.out."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    if path_prefix:
        path = f"{path_prefix}{os.pathsep}{path}"
    env = {**os.environ, "PATH": path, "TQDM_DISABLE": "1", **(extra_env or {})}
    command = [sys.executable, "-m", "snakemake", "--snakefile", REPO / "Snakefile", "--directory", workdir,
               "--configfile", workdir / "tiny.yaml", *args, TARGET]
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen([str(part) for part in command], cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, workdir: Path) -> tuple[int, str]:
    """Wait for a run started by start_snakemake: its exit status and output."""
    returncode = process.wait(timeout=600)
    return returncode, (workdir / "snakemake.out").read_text()


def without_timing(value):
    if isinstance(value, dict):
        return {key: without_timing(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def slurm_jobs(cluster: dict, run_id: str) -> list[dict]:
    """Every job of one Snakemake run that this cluster still remembers (MinJobAge keeps finished ones)."""
    listed = run(["squeue", "--noheader", "--states=all", "--name", run_id, "--format=%i|%k|%T|%b"],
                 env={**os.environ, "SLURM_CONF": cluster["SLURM_CONF"]}, timeout=60)
    assert listed.returncode == 0, listed.stderr
    jobs = []
    for line in listed.stdout.splitlines():
        job_id, comment, state, tres_per_node = line.split("|")
        jobs.append({"id": job_id, "rule": comment.removeprefix("rule_").split("_wildcards_")[0], "state": state,
                     "tres_per_node": tres_per_node})
    return jobs


@pytest.mark.slow
def test_slurm_profile_runs_the_workflow_with_the_results_of_a_local_run(slurm_cluster, tmp_path):
    layer = tmp_path / "test-layer"
    layer.mkdir()
    (layer / "config.yaml").write_text(yaml.safe_dump({**TEST_LAYER, "slurm-logdir": str(tmp_path / "slurm-logs")}))

    # Both runs at once: the SLURM run spends most of its time waiting for the next status query.
    began = time.monotonic()
    on_slurm = start_snakemake(tmp_path / "slurm", "--profile", PROFILE, "--profile", layer,
                               extra_env={"SLURM_CONF": slurm_cluster["SLURM_CONF"]},
                               path_prefix=slurm_cluster["PATH_PREFIX"])
    try:
        # Two threads per model job, as the SLURM profile sets them: the same seed gives the same numbers only with
        # the same thread count (a GPU-less host runs its model jobs with one thread each by default).
        local = start_snakemake(tmp_path / "local", "--set-threads", "train=2", "evaluate=2", "overhead=2",
                                "--cores", "2")
        try:
            local_returncode, local_output = finish(local, tmp_path / "local")
        finally:
            if local.poll() is None:
                local.kill()
        returncode, output = finish(on_slurm, tmp_path / "slurm")
    finally:
        if on_slurm.poll() is None:
            on_slurm.kill()   # its SLURM jobs go when the fixture stops the cluster
    seconds = time.monotonic() - began
    assert returncode == 0, output[-6000:]
    assert local_returncode == 0, local_output[-4000:]

    # Every job went through SLURM, each rule once, and all of them completed there.
    run_id = next(line.split("SLURM run ID:")[1].strip() for line in output.splitlines() if "SLURM run ID:" in line)
    jobs = slurm_jobs(slurm_cluster, run_id)
    assert sorted(job["rule"] for job in jobs) == sorted(SLURM_RULES), jobs
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    assert output.count("has been submitted with SLURM jobid") == len(SLURM_RULES)
    # Training and evaluation asked SLURM for a GPU through gres (and ran, so they held the node's one GPU);
    # the other stages asked for none.
    for job in jobs:
        expected = "gres:gpu:1" if job["rule"] in GPU_RULES else "N/A"
        assert job["tres_per_node"] == expected, job
    completed = (Path(slurm_cluster["state"]) / "jobcomp.txt").read_text()
    assert all(f"JobId={job['id']} " in completed for job in jobs)

    # The same results as the local run: the evaluation (every stressor and severity) and the training record.
    seed_dir = Path("results/tiny/rider_moe/seed0")
    for name in ("eval.json", "metadata.json", "config.json"):
        cluster_result = json.loads((tmp_path / "slurm" / seed_dir / name).read_text())
        local_result = json.loads((tmp_path / "local" / seed_dir / name).read_text())
        assert without_timing(cluster_result) == without_timing(local_result), name
    curves = [list(csv.DictReader((tmp_path / where / seed_dir / "epochs.csv").read_text().splitlines()))
              for where in ("slurm", "local")]
    assert [without_timing(row) for row in curves[0]] == [without_timing(row) for row in curves[1]]
    print(f"SLURM run of {len(jobs)} jobs and local run side by side: {seconds:.0f} s")
