"""Pipeline: `dvc repro` killed (its whole process group, SIGKILL) while a stage is at its final
write; the stage is not recorded; then `dvc repro` again: the folder DVC records (the `.dir`
manifest in its cache) holds exactly the documented files, and the folder on disk too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from darts import rundir
from killing import FAULT_ENV, FAULT_READY_ENV, REPO, mirror_root, names

sys.path.insert(0, str(REPO / "tests"))
from pipeline_helpers import fresh_clone, run, tool_env  # noqa: E402

pytestmark = pytest.mark.slow

STAGE = "search_rnn@first-0"  # with its one upstream stage, data@ptb: the cheapest search


def _recorded_files(repo: Path, stage: str) -> list[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    (out,) = lock["stages"][stage]["outs"]
    digest = out["md5"]
    assert digest.endswith(".dir"), out
    manifest = repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    return sorted(entry["relpath"] for entry in json.loads(manifest.read_text()))


def test_dvc_repro_killed_at_the_final_write_records_every_documented_file_on_rerun(tmp_path):
    repo = fresh_clone(tmp_path / "repo")
    ready = tmp_path / "ready"
    env = tool_env(mirror_root(), OMP_NUM_THREADS="1", **{FAULT_ENV: "metrics.json:1:stop", FAULT_READY_ENV: str(ready)})
    proc = subprocess.Popen(["dvc", "repro", STAGE], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not ready.exists():
            assert proc.poll() is None, f"dvc repro ended (exit {proc.returncode}) before the final write:\n" \
                                        f"{proc.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "the stage never reached its final write"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    out = repo / "runs" / "search_rnn" / "first" / "s0"
    assert any(n.startswith(".metrics.json.") for n in names(out)), "killed inside the metrics.json write"
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").exists() else {}
    assert STAGE not in (lock or {}).get("stages", {}), "a killed stage must not be recorded"

    run(["dvc", "repro", STAGE], repo, tool_env(mirror_root(), OMP_NUM_THREADS="1"))
    assert _recorded_files(repo, STAGE) == sorted(rundir.SEARCH_FILES)
    assert names(out) == sorted(rundir.SEARCH_FILES)
