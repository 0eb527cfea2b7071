"""dvc.yaml's resolved stages as engine-neutral job specs: the Snakemake adapter's only source.

DVC's own loader expands foreach/matrix and ``${}``, so the Snakemake rules built from these specs
run exactly DVC's commands with DVC's outputs. Dependencies on a folder that holds other stages'
outputs (``runs/search_cnn/first``) become those outputs, since Snakemake links jobs by exact path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from darts.io import read_json, sha256_file, write_json

# Snakemake resource names for the keys of a stage's ``meta.resources`` (paper scale).
RESOURCE_NAMES = {"gpus": "gpu", "cpus": "cpus_per_task", "mem_mb": "mem_mb", "runtime": "runtime"}


@dataclass(frozen=True)
class Job:
    name: str                      # DVC's address, e.g. search_cnn@first-0
    cmd: str
    inputs: tuple[str, ...]        # upstream outputs and source paths
    outputs: tuple[str, ...]
    params: dict[str, Any]         # the values of the params.yaml keys the stage lists
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rule_name(self) -> str:
        """A Snakemake-safe rule name: search_cnn@first-0 -> search_cnn__first_0."""
        return re.sub(r"[^0-9A-Za-z_]", "_", self.name.replace("@", "__"))

    def resources(self) -> dict[str, int]:
        """Cluster resources from ``meta.resources``, renamed to Snakemake's resource names."""
        declared = (self.meta or {}).get("resources", {})
        unknown = set(declared) - set(RESOURCE_NAMES)
        if unknown:
            raise ValueError(f"dvc.yaml stage {self.name}: unknown meta.resources keys {sorted(unknown)}; "
                             f"expected {sorted(RESOURCE_NAMES)}")
        return {RESOURCE_NAMES[k]: int(v) for k, v in declared.items() if int(v) > 0}


def posix(path: str) -> str:
    return str(PurePosixPath(path))


def is_directory(path: str) -> bool:
    """The pipeline's convention: an output path without a file extension is a directory."""
    return PurePosixPath(path).suffix == ""


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _lookup(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"params file: key '{dotted}' listed in dvc.yaml is missing")
        node = node[part]
    return node


def load_jobs(root: str | Path = ".") -> list[Job]:
    """Every stage of the repository's dvc.yaml, resolved by DVC, in DVC's order."""
    # Imported here: Snakemake imports this module in every cluster job, where a load_jobs_cached hit
    # needs neither DVC (1.4 s to import) nor darts.config (pydantic, 1.0 s; both measured on this machine).
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    from darts.config import read_yaml

    with Repo(str(root)) as repo:
        stages = [s for s in repo.index.stages if getattr(s, "cmd", None)]
        producers = {posix(o.def_path): s.name for s in stages for o in s.outs}
        files: dict[str, dict] = {}
        jobs = []
        for stage in stages:
            inputs: list[str] = []
            params: dict[str, Any] = {}
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    if dep.def_path not in files:   # not setdefault: its default is evaluated every time
                        files[dep.def_path] = read_yaml(Path(root) / dep.def_path)
                    tree = files[dep.def_path]
                    params.update({key: _lookup(tree, key) for key in dep.params or tree})
                    continue
                dep_path = posix(dep.def_path)
                upstream = [out for out, name in producers.items()
                            if name != stage.name and _overlaps(out, dep_path)]
                inputs.extend(upstream or [dep_path])
            jobs.append(Job(
                name=stage.name,
                cmd=stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd),
                inputs=tuple(dict.fromkeys(inputs)),
                outputs=tuple(o.def_path for o in stage.outs),
                params=params,
                meta=dict(stage.meta or {}),
            ))
    return jobs


def params_fingerprint(job: Job) -> str:
    """What Snakemake's params trigger compares: the values of the params.yaml keys the stage lists."""
    return json.dumps(job.params, sort_keys=True, default=str)


def load_jobs_cached(root: str | Path, cache: str | Path) -> list[Job]:
    """``load_jobs``, remembered in ``cache`` until dvc.yaml or params.yaml change.

    Snakemake parses the Snakefile again inside every cluster job; the cache keeps that parse
    from loading DVC each time.
    """
    root, cache = Path(root), Path(cache)
    key = [sha256_file(root / name) for name in ("dvc.yaml", "params.yaml")]
    if cache.is_file():
        stored = read_json(cache)
        if stored.get("key") == key:
            return [Job(**job) for job in stored["jobs"]]
    jobs = load_jobs(root)
    write_json(cache, {"key": key, "jobs": [job.__dict__ for job in jobs]})
    return jobs
