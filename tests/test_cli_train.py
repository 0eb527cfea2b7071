"""`darts train` and `darts evaluate` find their data through the library (darts.train.run): a
missing ImageNet gives the clear error naming the root, and a selection candidate trains through the
same function as `darts train --split search`."""

from __future__ import annotations

from pathlib import Path

import pytest

from darts.cli import main
from darts.config import load_params
from darts.errors import DartsError
from darts.genotypes import load_genotype
from darts.train.run import data_root, train_genotype

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def smoke_args(tmp_path: Path, *sets: str) -> list[str]:
    overrides = [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", *sets]
    return ["--params", str(PARAMS), "--scale", "smoke", *[a for s in overrides for a in ("--set", s)]]


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_an_imagenet_root_without_train_gives_the_clear_error_naming_it(tmp_path, capsys, command):
    root = tmp_path / "imagenet"
    (root / "val").mkdir(parents=True)  # a root, but no train/
    extra = ["--out", str(tmp_path / "out")] if command == "train" else ["--weights", str(tmp_path / "w.pt")]
    code = main([command, "imagenet", "--genotype", "DARTS_V2", "--imagenet-root", str(root), *extra,
                 *smoke_args(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"no ImageNet data at {root} (no train/ folder)" in err
    assert "--imagenet-root" in err and "image-net.org" in err  # the data module's help on getting it
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_data_root_defaults_to_the_dataset_folder_under_data_root(tmp_path):
    params = load_params(PARAMS, "smoke", [f"data.root={tmp_path}"])
    assert data_root("cifar10", params) == tmp_path / "cifar10"
    assert data_root("ptb", params, tmp_path / "elsewhere") == tmp_path / "elsewhere"
    with pytest.raises(DartsError, match=f"no ImageNet data at {tmp_path / 'x'}"):
        data_root("imagenet", params, tmp_path / "x")


def test_a_genotype_of_the_other_space_is_refused_before_any_data_is_read(tmp_path):
    params = load_params(PARAMS, "smoke", [f"data.root={tmp_path / 'none'}"])
    with pytest.raises(DartsError, match="ptb trains RNN genotypes, not CNN ones"):
        train_genotype("ptb", params, load_genotype("DARTS_V2", "cnn"), 0, tmp_path / "out")
    with pytest.raises(DartsError, match="ImageNet trains on its full training set"):
        train_genotype("imagenet", params, load_genotype("DARTS_V2", "cnn"), 0, tmp_path / "out", split="search")
    assert not (tmp_path / "out").exists()
