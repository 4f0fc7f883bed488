"""A stage killed while writing (kill -9, a full disk) leaves a temporary file; the next run of the stage removes it."""

import os
import resource
import signal
import subprocess
import sys
import time

from rider.atomic import atomic_path
from rider.cli import main

GRIDS = '{"seed": 0, "grids": {"noise": [0.0, 0.5], "missing": [0.0, 0.4], "conflict": [0.0, 1.0]}}'
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_stage_that_ran_out_of_disk_leaves_nothing_after_the_next_run(tiny_dataset, tmp_path):
    plan = tmp_path / "plan" / "stress_plan.h5"
    plan.parent.mkdir()
    command = [sys.executable, "-m", "rider", "plan", "--spec", GRIDS, "--cache", str(tiny_dataset["cache"]),
               "--out", str(plan)]

    def small_disk():  # the file size limit stands in for a full disk: writes past it fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    failed = subprocess.run(command, preexec_fn=small_disk, capture_output=True, env=ENV)
    assert failed.returncode != 0
    assert not plan.exists()
    left = temporaries(plan.parent)
    assert len(left) == 1  # HDF5 dies in its own cleanup, so the temporary outlives the failed run

    assert main(["plan", "--spec", GRIDS, "--cache", str(tiny_dataset["cache"]), "--out", str(plan)]) == 0
    assert plan.exists()
    assert temporaries(plan.parent) == []


def writer(final):
    """A process inside ``atomic_path(final)`` that never finishes; returns (process, its temporary)."""
    code = ("import sys, time; from rider.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1], suffix='.h5') as tmp:\n"
            "    tmp.write_bytes(b'half'); print(tmp, flush=True); time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def test_writer_killed_with_sigkill(tmp_path):
    final = tmp_path / "cache.h5"
    process, tmp = writer(final)
    assert os.path.exists(tmp)
    # A live writer's temporary is not touched by another write of the same file.
    with atomic_path(final, suffix=".h5") as new:
        new.write_bytes(b"meanwhile")
    assert os.path.exists(tmp)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert os.path.exists(tmp)  # nothing ran to clean up

    with atomic_path(final, suffix=".h5") as new:
        new.write_bytes(b"finished")
    assert final.read_bytes() == b"finished"
    assert temporaries(tmp_path) == []


def test_temporaries_of_other_hosts_and_other_files(tmp_path):
    from rider.atomic import FOREIGN_STALE_S, stale_temporaries

    final = tmp_path / "model.pt"
    foreign = tmp_path / ".model.pt.otherhost.123.abcdefgh.tmp.pt"
    old_foreign = tmp_path / ".model.pt.otherhost.456.abcdefgh.tmp.pt"
    legacy = tmp_path / ".model.pt.x1y2z3w4.tmp.pt"  # written before temporaries carried host and pid
    sibling = tmp_path / ".model.pt.json.otherhost.1.abcdefgh.tmp"  # another output's temporary
    for path in (foreign, old_foreign, legacy, sibling):
        path.write_bytes(b"")
    long_ago = time.time() - 2 * FOREIGN_STALE_S
    os.utime(old_foreign, (long_ago, long_ago))
    assert stale_temporaries(final) == sorted([old_foreign, legacy])
