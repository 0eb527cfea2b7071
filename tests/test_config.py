"""params.yaml handling: precedence (file < smoke overlay < --set), validation errors naming key and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from darts.config import ConfigError, config_hash, load_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def write_params(tmp_path: Path, mutate) -> Path:
    tree = yaml.safe_load(PARAMS.read_text())
    mutate(tree)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "darts", *args], capture_output=True, text=True, cwd=cwd or REPO)


def test_committed_params_are_paper_scale_and_valid():
    p = load_params(PARAMS)
    assert p.scale == "paper"
    assert (p.search_cnn.layers, p.search_cnn.init_channels, p.search_cnn.epochs) == (8, 16, 50)
    assert (p.train_cifar10.layers, p.train_cifar10.init_channels, p.train_cifar10.epochs) == (20, 36, 600)
    assert p.train_wikitext2.nhid == 700 and p.train_ptb.nhid == 850


def _sections() -> dict[str, type]:
    from darts.config import Params, Section

    return {name: f.annotation for name, f in Params.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, Section)}


def test_params_yaml_is_the_only_home_of_every_value(tmp_path):
    """No schema field that params.yaml holds has a Python default: the schema keeps types and
    bounds, the file the values (a key missing from it is an error, not a silent default)."""
    from darts.config import Params

    raw = yaml.safe_load(PARAMS.read_text())
    assert all(f.is_required() for f in Params.model_fields.values())
    held: dict[type, set[str]] = {}
    for name, model in _sections().items():
        held.setdefault(model, set()).update(raw[name])
    for model, keys in held.items():
        with_default = sorted(k for k, f in model.model_fields.items() if k in keys and not f.is_required())
        assert not with_default, f"{model.__name__}: {with_default} have defaults but params.yaml holds them"
    path = write_params(tmp_path, lambda t: t["train_imagenet"].pop("lr_gamma"))
    with pytest.raises(ConfigError, match=rf"{path}: missing key 'train_imagenet.lr_gamma'"):
        load_params(path)


def _changed(value):
    """Another valid value of the same type (None when there is no safe generic change)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float) and value:
        return value / 2
    return None


@pytest.mark.parametrize("section", list(_sections()))
def test_a_value_changed_in_a_copy_of_params_yaml_changes_the_params(tmp_path, section):
    """Edit one value of each section in a copy of the file, load it: that value, and only it, moved."""
    raw = yaml.safe_load(PARAMS.read_text())
    keys = sorted(raw[section], key=lambda k: k != "epochs")   # epochs where there are (emsize is tied to nhid)
    key, new = next((k, _changed(raw[section][k])) for k in keys if _changed(raw[section][k]) is not None)
    path = write_params(tmp_path, lambda t: t[section].__setitem__(key, new))
    before, after = load_params(PARAMS).model_dump(), load_params(path).model_dump()
    assert after[section][key] == new != before[section][key]
    after[section][key] = before[section][key]
    assert after == before


@pytest.mark.parametrize("key, value", [
    ("select_cnn.epochs", 7), ("select_rnn.epochs", 9), ("train_imagenet.lr", 0.3),
    ("train_imagenet.layers", 12), ("train_wikitext2.dropouth", 0.3), ("train_wikitext2.weight_decay", 1e-6),
    ("select_rnn.dropouti", 0.1), ("search_rnn.arch_lr", 0.01), ("search_cnn.arch_betas", (0.6, 0.9)),
])
def test_values_that_used_to_live_in_python_too_come_from_the_file(tmp_path, key, value):
    """The sections built in Python before (select epochs, the ImageNet and WikiText-2 overrides,
    the arch optimiser) read the file like every other value."""
    section, name = key.split(".")
    written = list(value) if isinstance(value, tuple) else value
    path = write_params(tmp_path, lambda t: t[section].__setitem__(name, written))
    assert getattr(getattr(load_params(path), section), name) == value


def test_smoke_overlay_then_set_precedence():
    paper = load_params(PARAMS)
    smoke = load_params(PARAMS, scale="smoke")
    raw = yaml.safe_load(PARAMS.read_text())
    assert smoke.scale == "smoke"
    assert smoke.search_cnn.epochs == raw["smoke"]["search_cnn"]["epochs"] != paper.search_cnn.epochs
    assert smoke.search_cnn.lr == paper.search_cnn.lr  # keys absent from the overlay keep the main value
    over = load_params(PARAMS, scale="smoke", overrides=["search_cnn.epochs=7", "search_cnn.lr=0.5"])
    assert (over.search_cnn.epochs, over.search_cnn.lr) == (7, 0.5)


def test_scale_has_one_spelling_per_use(tmp_path, monkeypatch):
    """The file's `scale:` for the pipeline, --scale for one command; nothing else moves it."""
    with pytest.raises(ConfigError, match=r"--set scale=smoke: the scale is chosen with --scale"):
        load_params(PARAMS, overrides=["scale=smoke"])
    monkeypatch.setenv("DARTS_SCALE", "smoke")   # the old Snakemake override: no longer read
    assert load_params(PARAMS).scale == "paper"
    # `scale: smoke` beside the unmerged overlay (e.g. `dvc exp run -S scale=smoke`): dvc.yaml would
    # expand the main tree's (paper) lists, so it is refused, naming the file and the way out
    path = write_params(tmp_path, lambda t: t.__setitem__("scale", "smoke"))
    with pytest.raises(ConfigError, match=rf"{path}: 'scale: smoke' beside an unmerged 'smoke:' overlay.*make smoke"):
        load_params(path)


def test_workspace_params_are_the_overlay_merged_into_the_main_tree(tmp_path):
    from darts.pipeline.workspace import sync

    sync(REPO, tmp_path / "ws", "smoke")
    resolved = yaml.safe_load((tmp_path / "ws" / "params.yaml").read_text())
    overlay = yaml.safe_load(PARAMS.read_text())["smoke"]
    assert resolved["scale"] == "smoke" and "smoke" not in resolved
    # what DVC's templating reads (the main tree) now holds the smoke lists
    assert resolved["pipeline"]["seeds"] == overlay["pipeline"]["seeds"]
    assert load_params(tmp_path / "ws" / "params.yaml") == load_params(PARAMS, scale="smoke")
    with pytest.raises(ConfigError, match=r"resolved at scale smoke.*--scale paper"):
        load_params(tmp_path / "ws" / "params.yaml", scale="paper")
    assert sync(REPO, tmp_path / "ws", "smoke") == []     # a second sync changes nothing


@pytest.mark.parametrize(
    "mutate, fragments",
    [
        (lambda t: t["search_cnn"].__setitem__("epochs", -3), ["search_cnn.epochs", "-3"]),
        (lambda t: t["search_cnn"].__setitem__("epochz", 3), ["search_cnn.epochz", "unknown"]),
        (lambda t: t["train_ptb"].__setitem__("lr", "fast"), ["train_ptb.lr", "'fast'"]),
        (lambda t: t["runtime"].__setitem__("device", "tpu"), ["runtime.device", "'tpu'"]),
        (lambda t: t["smoke"]["search_cnn"].__setitem__("layerz", 2), ["smoke.search_cnn.layerz", "unknown"]),
        (lambda t: t.__setitem__("scale", "huge"), ["scale", "'huge'"]),
    ],
)
def test_bad_values_name_file_key_and_value(tmp_path, mutate, fragments):
    path = write_params(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_bad_value_in_smoke_overlay_is_attributed_to_it(tmp_path):
    path = write_params(tmp_path, lambda t: t["smoke"]["search_cnn"].__setitem__("epochs", 0))
    load_params(path)  # paper scale does not use the bad overlay value
    with pytest.raises(ConfigError, match=r"smoke overlay.*search_cnn.epochs"):
        load_params(path, scale="smoke")


def test_bad_set_overrides():
    with pytest.raises(ConfigError, match="unknown key 'search_cnn.nope'"):
        load_params(PARAMS, overrides=["search_cnn.nope=1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_params(PARAMS, overrides=["search_cnn.epochs"])
    with pytest.raises(ConfigError, match=r"--set search_cnn.epochs.*-1"):
        load_params(PARAMS, overrides=["search_cnn.epochs=-1"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("search_cnn: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_config_hash_changes_with_any_value():
    a = load_params(PARAMS).search_cnn.model_dump(mode="json")
    b = load_params(PARAMS, overrides=["search_cnn.lr=0.03"]).search_cnn.model_dump(mode="json")
    assert config_hash(a, 0) == config_hash(dict(a), 0)
    assert config_hash(a, 0) != config_hash(b, 0)
    assert config_hash(a, 0) != config_hash(a, 1)


def test_cli_config_error_exits_2_and_names_key(tmp_path):
    path = write_params(tmp_path, lambda t: t["data"].__setitem__("download_timeout", -1))
    result = run_cli("data", "ptb", "--params", str(path), "--out", str(tmp_path / "ptb"))
    assert result.returncode == 2, result.stderr
    assert "data.download_timeout" in result.stderr and "-1" in result.stderr


def test_help_does_not_import_torch():
    code = "import sys; from darts.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_info_sizes_networks_from_params_like_every_command(tmp_path, capsys):
    """`darts info` reads --params/--scale/--set: the ptb network is train_ptb's emsize/nhid, the
    CIFAR-10 one train_cifar10's layers/init_channels (--layers/--channels are validated overrides)."""
    import json

    from darts.cli import main

    def info(*args: str) -> dict:
        assert main(["info", "--genotype", "DARTS_V2", "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    path = write_params(tmp_path, lambda t: (t["train_ptb"].update(emsize=400, nhid=400),
                                            t["train_cifar10"].update(layers=8, init_channels=16)))
    assert (info("--dataset", "ptb")["nhid"], info("--dataset", "ptb", "--params", str(path))["nhid"]) == (850, 400)
    assert info("--dataset", "ptb", "--set", "train_ptb.nhid=600", "--set", "train_ptb.emsize=600")["nhid"] == 600
    cifar = info("--dataset", "cifar10", "--params", str(path))
    assert (cifar["layers"], cifar["channels"]) == (8, 16)
    smoke = load_params(PARAMS, "smoke").train_cifar10
    assert info("--dataset", "cifar10", "--scale", "smoke")["channels"] == smoke.init_channels
    assert main(["info", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--layers", "1"]) == 2
    assert "train_cifar10.layers" in capsys.readouterr().err
