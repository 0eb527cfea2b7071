# One rule per resolved DVC stage (see darts/pipeline/dvc_stages.py). The command travels through
# `params` because `shell:` is formatted late: a loop variable named there would be the last one.
import os

from darts.config import load_params
from darts.pipeline.dvc_stages import is_directory, load_jobs_cached, params_fingerprint

ROOT = os.path.abspath(os.path.join(workflow.basedir, ".."))
JOBS = load_jobs_cached(ROOT, os.path.join(ROOT, ".snakemake", "dvc-jobs.json"))
# Cluster resources in dvc.yaml's `meta` are sized for the paper's runs; a smoke workspace's jobs
# take the profile's default resources instead.
PAPER_SCALE = load_params(os.path.join(ROOT, "params.yaml")).scale == "paper"

workdir: ROOT


for job in JOBS:
    resources_ = job.resources() if PAPER_SCALE else {}
    rule:
        name: job.rule_name
        input: job.inputs
        output: [directory(out) if is_directory(out) else out for out in job.outputs]
        params:
            cmd=job.cmd,
            dvc=params_fingerprint(job),
        threads: resources_.get("cpus_per_task", 1)
        resources: **resources_
        log: f".snakemake/logs/{job.rule_name}.log"
        shell: "({params.cmd}) > {log} 2>&1"
