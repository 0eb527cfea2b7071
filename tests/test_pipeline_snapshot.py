"""snapshot_eval (the paper's Fig. 3): the cell of the requested search epoch is retrained by the
selection recipe, and the report's search-progress figure then draws the retrained snapshots. (That
the instances follow pipeline.snapshot_seeds is tested with the other lists in test_pipeline_select.)"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from darts.cli import main
from darts.config import load_params
from darts.errors import DartsError
from darts.genotypes import load_genotype, random_genotype
from darts.io import read_json
from darts import rundir
from darts.pipeline.snapshot import snapshot_genotype

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def plant_history(search: Path, space: str, epochs: int) -> dict[int, dict]:
    """A search's history.jsonl whose every epoch derived a different (random) cell."""
    genotypes = {e: random_genotype(space, random.Random(1000 + e)).to_json() for e in range(1, epochs + 1)}
    search.mkdir(parents=True, exist_ok=True)
    rows = [{"epoch": e, "lr": 0.025, "valid_acc": 10.0 * e, "genotype": g} for e, g in genotypes.items()]
    (search / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return genotypes


@pytest.mark.parametrize("space", ["cnn", "rnn"])
def test_snapshot_genotype_is_the_one_derived_at_that_epoch(tmp_path, space):
    genotypes = plant_history(tmp_path, space, epochs=3)
    assert len({json.dumps(g, sort_keys=True) for g in genotypes.values()}) == 3
    for epoch in (1, 2, 3):
        assert snapshot_genotype(tmp_path / "history.jsonl", epoch, space).to_json() == genotypes[epoch]


def test_snapshot_genotype_names_the_file_and_epoch_when_it_is_absent(tmp_path):
    plant_history(tmp_path, "cnn", epochs=3)
    history = tmp_path / "history.jsonl"
    with pytest.raises(DartsError, match=rf"{history}: no epoch 7 recorded \(epochs 1-3\)"):
        snapshot_genotype(history, 7, "cnn")
    with pytest.raises(DartsError, match=rf"{history}: epoch 2 holds a CNN genotype; a RNN one is needed"):
        snapshot_genotype(history, 2, "rnn")
    with pytest.raises(DartsError, match=rf"{tmp_path / 'missing.jsonl'}: file not found"):
        snapshot_genotype(tmp_path / "missing.jsonl", 1, "cnn")


def test_snapshot_epochs_lie_within_the_searches():
    for scale in ("smoke", "paper"):
        params = load_params(PARAMS, scale)
        assert params.pipeline.snapshot_seeds == []     # off by default
        for space in ("cnn", "rnn"):
            epochs = getattr(params, f"search_{space}").epochs
            assert set(params.pipeline.snapshot_epochs) <= set(range(1, epochs + 1)), (scale, space)


@pytest.fixture()
def snapshot_argv(tmp_path, mirror):
    """Smoke-scale config options with this test's checkpoints and the mirror's CIFAR-10 subset."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "cifar10").symlink_to(mirror / "cifar10-mini")
    sets = [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", f"data.root={data_root}"]
    return ["--params", str(PARAMS), "--scale", "smoke", *[a for s in sets for a in ("--set", s)]]


def test_real_snapshot_retraining_feeds_the_search_progress_figure(tmp_path, snapshot_argv, capsys):
    from darts.report import figures as F

    runs = tmp_path / "runs"
    planted = plant_history(rundir.search_dir(runs, "cnn", "first", 0), "cnn", epochs=2)
    out = runs / "snapshot_eval" / "cnn" / "first-s0"
    argv = ["snapshot", "cnn", "--order", "first", "--seed", "0", "--out", str(out), "--runs", str(runs)]

    # an epoch the search never reached fails before anything is trained
    assert main([*argv, *snapshot_argv, "--set", "pipeline.snapshot_epochs=[1,7]"]) == 1
    history = rundir.search_dir(runs, "cnn", "first", 0) / "history.jsonl"
    assert f"{history}: no epoch 7 recorded" in capsys.readouterr().err
    assert not out.exists()

    assert main([*argv, *snapshot_argv]) == 0  # smoke: pipeline.snapshot_epochs [1, 2]
    record = read_json(out / "snapshots.json")
    assert [s["epoch"] for s in record["snapshots"]] == [1, 2] and record["metric"] == "valid_error"
    for snap in record["snapshots"]:
        run_dir = out / f"e{snap['epoch']}"
        metrics, meta = read_json(run_dir / "metrics.json"), read_json(run_dir / "meta.json")
        # the selection recipe: select_cnn on the search split, seed pipeline.select_seed, no test set
        assert (meta["split"], meta["seed"], meta["params"]["scale"]) == ("search", 0, "smoke")
        assert "select_cnn" in meta["params"] and not any(k.startswith("test_") for k in metrics)
        assert meta["genotype"] == planted[snap["epoch"]]
        assert load_genotype(run_dir / "genotype.json", "cnn").to_json() == planted[snap["epoch"]]
        assert 0.0 <= metrics["valid_error"] <= 100.0 and snap["score"] == metrics["valid_error"]

    fig = F.search_progress_figure(runs, "cnn")
    try:
        title = " ".join(fig._suptitle.get_text().split())
        assert "retrained snapshots" in title and "SMOKE SCALE" in title
        (ax,) = fig.axes
        (line,) = [line for line in ax.lines if len(line.get_ydata())]
        assert list(line.get_xdata()) == [1, 2]
        assert list(line.get_ydata()) == [s["score"] for s in record["snapshots"]]
    finally:
        F.plt.close(fig)
