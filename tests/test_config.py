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


def test_yaml_keys_match_schema_defaults():
    """The file spells out every key at paper scale, and its values equal the schema's defaults
    (so the code's defaults and the documented file cannot drift apart)."""
    from darts.config import Params

    raw = yaml.safe_load(PARAMS.read_text())
    defaults = Params().model_dump(mode="json")
    for section, values in raw.items():
        if section in ("smoke", "scale"):
            continue
        for key, value in values.items():
            expected = defaults[section][key]
            got = list(value) if isinstance(value, list) else value
            assert got == expected, f"{section}.{key}: params.yaml {got!r} != schema default {expected!r}"


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
