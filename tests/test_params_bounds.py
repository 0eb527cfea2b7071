"""params.yaml values that used to be accepted and then crashed a run (or ran silently wrong) are
refused before any work: strict types, repeated keys, the main tree at every scale, the bounds the
code downstream needs. Each refusal names the source (file or --set), the key and the value."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from darts.config import SEED_BOUND, ConfigError, load_params, seed_arg

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def copy_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of params.yaml with one text edit (the first occurrence of ``old``)."""
    text = PARAMS.read_text()
    assert old in text, old
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


# -- strict types ------------------------------------------------------------------------------

@pytest.mark.parametrize("item, fragment", [
    ("search_cnn.epochs=true", "search_cnn.epochs"),          # bool is no int (it ran 1 epoch)
    ("search_cnn.epochs=3.0", "search_cnn.epochs"),           # nor is a float
    ("search_cnn.epochs='3'", "search_cnn.epochs"),           # nor a string
    ("search_cnn.lr=false", "search_cnn.lr"),                 # bool is no float
    ("runtime.deterministic=1", "runtime.deterministic"),     # int is no bool
    ("pipeline.seeds=[0, true]", "pipeline.seeds.1"),
    ("search_cnn.arch_betas=[0.5]", "search_cnn.arch_betas"),
])
def test_strict_types_refuse_coercions(item, fragment):
    with pytest.raises(ConfigError) as err:
        load_params(PARAMS, overrides=[item])
    message = str(err.value)
    assert message.startswith("--set ") and fragment in message, message


def test_ints_are_floats_and_yaml_1_2_exponents_are_numbers():
    p = load_params(PARAMS, overrides=["search_cnn.lr=1", "search_cnn.arch_lr=1e-3", "data.download_timeout=30"])
    assert p.search_cnn.lr == 1.0 and isinstance(p.search_cnn.lr, float)
    assert p.search_cnn.arch_lr == 0.001
    assert p.search_cnn.arch_betas == (0.5, 0.999)   # a YAML list read as the tuple


def test_a_bool_in_the_file_is_refused_naming_file_and_key(tmp_path):
    path = copy_with(tmp_path, "  epochs: 50\n", "  epochs: yes\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid value True for 'search_cnn.epochs'"):
        load_params(path)


# -- duplicate keys, the main tree at every scale ------------------------------------------------

def test_a_repeated_key_is_refused_naming_its_line(tmp_path):
    path = copy_with(tmp_path, "  epochs: 50\n", "  epochs: 50\n  epochs: 3\n")
    line = path.read_text().splitlines().index("  epochs: 3") + 1
    with pytest.raises(ConfigError, match=rf"{path}: line {line}: duplicate key 'epochs' \(first at line {line - 1}\)"):
        load_params(path)
    top = copy_with(tmp_path, "scale: paper\n", "scale: paper\nscale: paper\n")
    with pytest.raises(ConfigError, match="duplicate key 'scale'"):
        load_params(top)


def test_the_same_key_in_different_mappings_is_fine():
    raw = yaml.safe_load(PARAMS.read_text())
    assert raw["search_cnn"]["epochs"] != raw["smoke"]["search_cnn"]["epochs"]
    load_params(PARAMS, scale="smoke")


def test_a_bad_main_tree_value_fails_at_smoke_scale_too(tmp_path):
    """The overlay replaces search_cnn.epochs at smoke scale; the file is still wrong, and says so."""
    path = copy_with(tmp_path, "  epochs: 50\n", "  epochs: fifty\n")
    for scale in ("paper", "smoke"):
        with pytest.raises(ConfigError, match=rf"^{path}: invalid value 'fifty' for 'search_cnn.epochs'"):
            load_params(path, scale=scale)


def test_non_utf8_params_name_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(PARAMS.read_bytes().replace(b"# Every", b"# \xff Every", 1))
    with pytest.raises(ConfigError, match=rf"{path}: not UTF-8"):
        load_params(path)


def test_the_file_must_say_its_scale(tmp_path):
    path = copy_with(tmp_path, "scale: paper\n", "")
    with pytest.raises(ConfigError, match=rf"{path}: missing key 'scale'"):
        load_params(path)


# -- bounds the code downstream needs ------------------------------------------------------------

@pytest.mark.parametrize("items, scale, key", [
    # search_rnn: batchify cuts tokens into batch_size columns; training windows need 3 rows
    # (variable_bptt yields while i < rows - 2: else an epoch of no steps divides by zero tokens)
    (["search_rnn.train_tokens=20"], "paper", "search_rnn.train_tokens"),
    (["search_rnn.train_tokens=47"], "smoke", "search_rnn.train_tokens"),            # 16 columns: 48 needed
    # validation and the architecture stream need 2 rows (inputs and next-word targets)
    (["search_rnn.eval_tokens=20"], "paper", "search_rnn.eval_tokens"),
    (["search_rnn.eval_tokens=31"], "smoke", "search_rnn.eval_tokens"),
    (["search_rnn.arch_data=train_holdout", "search_rnn.train_tokens=300"], "smoke", "search_rnn.train_tokens"),
    (["train_ptb.train_tokens=40"], "smoke", "train_ptb.train_tokens"),
    (["train_ptb.eval_tokens=31"], "smoke", "train_ptb.eval_tokens"),
    (["train_ptb.test_batch_size=64", "train_ptb.eval_tokens=100"], "smoke", "train_ptb.eval_tokens"),
    # BatchNorm in training mode needs two images (the auxiliary tower normalises 1x1 features)
    (["train_cifar10.batch_size=1"], "paper", "train_cifar10.batch_size"),
    (["select_cnn.batch_size=1"], "paper", "select_cnn.batch_size"),
    # reduction cells at layers//3 and 2*layers//3: 1 merges them (a shape error in the auxiliary
    # tower), 2 leaves no normal cell
    (["train_cifar10.layers=1"], "paper", "train_cifar10.layers"),
    (["train_imagenet.layers=2"], "paper", "train_imagenet.layers"),
    (["search_cnn.layers=2"], "smoke", "search_cnn.layers"),
    # seeds are packed as signed 64-bit ints (darts.data.loading.derive_seed)
    ([f"pipeline.seeds=[0, {2**63}]"], "paper", "pipeline.seeds"),
    (["pipeline.select_seed=-1"], "paper", "pipeline.select_seed"),
    ([f"pipeline.cifar10_runs=[{2**63}]"], "paper", "pipeline.cifar10_runs"),
    (["pipeline.snapshot_epochs=[0]"], "paper", "pipeline.snapshot_epochs"),
    # the decoder is tied to the embedding (darts.spaces.rnn.model)
    (["train_ptb.nhid=600"], "paper", "train_ptb.nhid"),
])
def test_values_that_crash_later_are_refused_up_front(items, scale, key):
    with pytest.raises(ConfigError) as err:
        load_params(PARAMS, scale=scale, overrides=items)
    assert f"--set {key}" in str(err.value), str(err.value)


@pytest.mark.parametrize("items, scale", [
    (["search_rnn.train_tokens=48", "search_rnn.eval_tokens=32"], "smoke"),     # the least that run
    (["search_rnn.arch_data=train_holdout", "search_rnn.train_tokens=320"], "smoke"),  # tail 32, head 288
    (["train_ptb.train_tokens=48", "train_ptb.eval_tokens=32"], "smoke"),
    (["train_cifar10.batch_size=2", "train_cifar10.layers=3", "search_cnn.layers=3"], "paper"),
    ([f"pipeline.seeds=[{2**63 - 1}]", "pipeline.snapshot_seeds=[]"], "paper"),
])
def test_the_least_values_that_work_are_accepted(items, scale):
    load_params(PARAMS, scale=scale, overrides=items)


def test_the_token_message_says_what_is_needed():
    with pytest.raises(ConfigError, match=r"--set search_rnn.train_tokens: 20 leaves the training stream 20 tokens: "
                                          r"0 rows of batch_size 256, and it needs 3 \(768 tokens\)"):
        load_params(PARAMS, overrides=["search_rnn.train_tokens=20"])


def test_seed_arg_bounds_command_line_seeds():
    assert seed_arg("0") == 0 and seed_arg(str(SEED_BOUND - 1)) == SEED_BOUND - 1
    for bad in (str(SEED_BOUND), "-1", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_arg(bad)


def test_cli_refuses_before_any_work_with_exit_2(tmp_path):
    """`darts search rnn` with a token cap its batches cannot use: exit 2 naming the key, no run folder."""
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "darts", "search", "rnn", "--seed", "0", "--out", str(out),
                             "--data", str(tmp_path / "no-data"), "--set", "search_rnn.train_tokens=20"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2, result.stderr
    assert "search_rnn.train_tokens" in result.stderr and "20" in result.stderr
    assert not out.exists()
