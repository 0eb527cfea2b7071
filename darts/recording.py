"""What every run writes into its output folder: per-epoch history (JSONL for people and
scripts, CSV for ``dvc plots``), ``metrics.json`` (for ``dvc metrics``/``dvc exp show``) and
``meta.json`` (provenance). All writes are atomic; the history lives in the checkpoint too, so a
resumed run rewrites exactly what an uninterrupted one would have."""

from __future__ import annotations

import csv
import io
import logging
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from darts.io import write_json, write_jsonl, write_text
from darts.rundir import HISTORY, META, METRICS_CSV

log = logging.getLogger(__name__)


# The per-epoch record is written by hand, not with DVCLive: its resume appends to its .tsv files
# (a checkpoint behind the folder logs an epoch twice, one ahead leaves a gap), its summary would
# overwrite metrics.json every step, and Live() costs ~3.5 s per run (it imports dvc and opens the
# repo); exactness would mean wiping and replaying it from the checkpoint on every start, i.e. this.
class Recorder:
    """history.jsonl and metrics.csv, rewritten whole from ``history`` (the checkpoint's copy), and
    the per-epoch log line with an ETA."""

    def __init__(self, out: str | Path, total_epochs: int, history: list[dict] | None = None):
        self.out = Path(out)
        self.total = total_epochs
        self.history: list[dict] = list(history or [])
        self._t0 = time.monotonic()
        self._start_epoch = len(self.history)

    def write_history(self) -> None:
        write_jsonl(self.out / HISTORY, self.history)
        write_text(self.out / METRICS_CSV, scalar_csv(self.history))

    def log_epoch(self, row: dict[str, Any], summary_keys: tuple[str, ...] = ()) -> None:
        """Record one epoch, rewrite history.jsonl and metrics.csv, print a line with an ETA."""
        self.history.append(row)
        self.write_history()
        done = len(self.history) - self._start_epoch
        per_epoch = (time.monotonic() - self._t0) / max(done, 1)
        eta = per_epoch * (self.total - len(self.history))
        shown = " ".join(f"{k}={_fmt(row[k])}" for k in summary_keys if k in row)
        log.info("epoch %d/%d %s (%.1fs/epoch, ETA %s)", len(self.history), self.total, shown,
                 per_epoch, _duration(eta))


def scalar_csv(rows: list[dict]) -> str:
    """The numeric top-level fields of each row, one column each, in first-seen order."""
    cols: list[str] = []
    for row in rows:
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in cols:
                cols.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        rev = out.stdout.strip() if out.returncode == 0 else None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{rev}-dirty" if rev and dirty else rev
    except (OSError, subprocess.SubprocessError):
        return None


def write_meta(out: str | Path, params: dict[str, Any], **extra: Any) -> None:
    """Provenance of a run: what ran, with which params, code and library versions."""
    import torch

    from darts import __version__

    write_json(Path(out) / META, {
        **extra,
        "params": params,
        "argv": sys.argv,
        "darts_version": __version__,
        "git_revision": git_revision(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "host": platform.node(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def device_cost(device: Any, wall_seconds: float) -> dict[str, Any]:
    """The paper's 'search cost': device time, in GPU-days only when it ran on a GPU."""
    import torch

    name = torch.cuda.get_device_name(device) if getattr(device, "type", "") == "cuda" else platform.processor() or "cpu"
    hours = wall_seconds / 3600.0
    return {
        "wall_seconds": round(wall_seconds, 3),
        "device": str(device),
        "device_name": name,
        "device_hours": hours,
        "gpu_days": hours / 24.0 if getattr(device, "type", "") == "cuda" else None,
    }


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
