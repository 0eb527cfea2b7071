"""A workspace: a folder that runs the pipeline at one scale, beside the project, never inside it.

dvc.yaml expands the lists of the params.yaml it finds, and DVC's templating cannot see an
overlay. So a scale is a folder: the project's own (paper scale, the params.yaml you edit) or a
workspace whose params.yaml is the project's resolved at that scale (the smoke overlay merged in).
There, `dvc repro`, `snakemake` and `dvc commit` read one file and agree, and the project's tracked
files, its runs/ and its dvc.lock are never touched. Syncing again copies only what changed, so a
second `make smoke` finds every stage up to date.
"""

from __future__ import annotations

import filecmp
import logging
import shutil
from pathlib import Path

import yaml

from darts.config import load_params, read_yaml, resolve_tree
from darts.errors import DartsError
from darts.io import write_text

log = logging.getLogger(__name__)

# What a stage reads besides its inputs: the definition, the code it depends on, the paper's
# numbers. The pipeline's outputs (data/, runs/, results/ tables) are the workspace's own.
SOURCES = ("dvc.yaml", ".dvcignore", "darts", "workflow", "results/paper", "DEVIATIONS.md")
SKIP = ("__pycache__", ".pytest_cache")


def _files(root: Path, entry: str) -> list[str]:
    path = root / entry
    if path.is_file():
        return [entry]
    return sorted(str(p.relative_to(root)) for p in path.rglob("*")
                  if p.is_file() and not any(part in SKIP for part in p.parts) and p.suffix != ".pyc")


def sync(project: Path, dest: Path, scale: str) -> list[str]:
    """Make ``dest`` a workspace of ``project`` at ``scale``; return the files it changed."""
    project, dest = project.resolve(), dest.resolve()
    sources = [project / entry for entry in SOURCES]
    if dest == project or any(dest == s or s in dest.parents for s in sources):
        raise DartsError(f"{dest}: a workspace needs its own folder, not the project or one of its sources")
    params_file = project / "params.yaml"
    tree, _ = resolve_tree(params_file, read_yaml(params_file), scale)
    changed = []
    for entry in SOURCES:
        if not (project / entry).exists():
            raise DartsError(f"{project / entry}: missing; run `darts workspace` from the project's root")
        wanted = set(_files(project, entry))
        for rel in sorted(wanted):
            src, dst = project / rel, dest / rel
            if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            changed.append(rel)
        if (dest / entry).is_dir():
            for rel in set(_files(dest, entry)) - wanted:   # a module deleted in the project
                (dest / rel).unlink()
                changed.append(rel)
    text = (f"# {params_file} resolved at scale {scale} by `darts workspace`: edit that file, then run\n"
            f"# `darts workspace` (or `make smoke`) again; changes made here are overwritten.\n"
            + yaml.safe_dump(tree, sort_keys=False))
    target = dest / "params.yaml"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        write_text(target, text)
        changed.append("params.yaml")
    load_params(target)   # the resolved file validates as it stands
    if not (dest / ".dvc").is_dir():
        from dvc.repo import Repo  # here, not at the top: `darts --help` imports this module; DVC takes 1.4 s

        Repo.init(str(dest), no_scm=True).close()
        changed.append(".dvc")
    return changed
