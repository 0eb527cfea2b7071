"""The one place that reads params.yaml.

Precedence, lowest first: the file's main tree (paper scale), the ``smoke:`` overlay when the
active scale is ``smoke``, then ``--set key.path=value`` overrides. The scale is the file's
``scale:`` (``paper`` in the project's params.yaml; ``smoke`` in a workspace that ``darts workspace``
resolved), or ``--scale`` for one command.
The merged tree is validated by the pydantic models below; any problem raises ``ConfigError``,
which the CLI turns into exit code 2 with a message naming the file, the key and the value.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from darts.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")
SCALES = ("paper", "smoke")


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


PosInt = Field(gt=0)
NonNegFloat = Field(ge=0.0)
Prob = Field(ge=0.0, lt=1.0)


class Runtime(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 keeps torch's default")
    deterministic: bool = False
    num_workers: int = Field(4, ge=0, description="DataLoader worker processes")
    checkpoint_dir: str = Field(".darts/checkpoints", description="resumable state, outside every engine's outputs")
    progress: bool = True


class Data(Section):
    root: str = "data"
    mirror: Optional[str] = None
    imagenet_root: Optional[str] = None
    download_timeout: float = Field(60.0, gt=0)


Order = Literal["first", "second"]
Method = Literal["first", "second", "random"]
CNNCell = Literal["DARTS_V1", "DARTS_V2", "NASNet", "AmoebaNet"]
RNNCell = Literal["DARTS_V1", "DARTS_V2", "ENAS"]


class Pipeline(Section):
    """The stage instances that exist: dvc.yaml's foreach/matrix expand exactly these lists."""

    seeds: list[int] = Field([0, 1, 2, 3], min_length=1)
    cnn_orders: list[Order] = ["first", "second"]
    rnn_orders: list[Order] = ["first", "second"]
    cnn_methods: list[Method] = ["first", "second", "random"]
    rnn_methods: list[Method] = ["first", "second", "random"]
    imagenet_methods: list[Method] = ["second"]
    wikitext2_methods: list[Method] = ["second"]
    cifar10_runs: list[int] = Field(list(range(10)), min_length=1, description="run ids (and seeds) of the final CIFAR-10 runs")
    select_seed: int = Field(0, ge=0, description="the seed every selection candidate trains with")
    random_cnn_samples: int = Field(24, gt=0)
    random_rnn_samples: int = Field(8, gt=0)
    published_cifar10: list[CNNCell] = []
    published_imagenet: list[CNNCell] = []
    published_ptb: list[RNNCell] = []
    published_wikitext2: list[RNNCell] = []
    snapshot_seeds: list[int] = Field([], description="searches whose Fig. 3 snapshots are retrained; [] = off")
    snapshot_epochs: list[int] = Field([10, 20, 30, 40, 50], min_length=1,
                                       description="search epochs whose derived cell snapshot_eval retrains")

    @model_validator(mode="after")
    def _consistent(self) -> "Pipeline":
        """Each list names only instances that exist upstream, so no stage waits on a missing folder."""
        for name in [n for n in type(self).model_fields if isinstance(getattr(self, n), list)]:
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"pipeline.{name}: duplicate entries in {values}")
        checks = [
            ("cnn_methods", self.cnn_methods, [*self.cnn_orders, "random"], "pipeline.cnn_orders or 'random'"),
            ("rnn_methods", self.rnn_methods, [*self.rnn_orders, "random"], "pipeline.rnn_orders or 'random'"),
            ("imagenet_methods", self.imagenet_methods, self.cnn_methods, "pipeline.cnn_methods"),
            ("wikitext2_methods", self.wikitext2_methods, self.rnn_methods, "pipeline.rnn_methods"),
            ("snapshot_seeds", self.snapshot_seeds, self.seeds, "pipeline.seeds"),
        ]
        for name, values, allowed, where in checks:
            extra = [v for v in values if v not in allowed]
            if extra:
                raise ValueError(f"pipeline.{name}: {extra} not in {where} {allowed}")
        return self


class ArchOptim(Section):
    arch_lr: float = Field(gt=0)
    arch_betas: tuple[float, float]
    arch_weight_decay: float = Field(ge=0)
    alpha_init: Literal["randn", "zeros"] = "randn"
    alpha_init_scale: float = Field(1e-3, ge=0)
    order: Literal["first", "second"] = "second"
    hessian: Literal["finite_difference", "exact"] = "finite_difference"
    fd_epsilon: float = Field(0.01, gt=0)
    eigenvalue_every: int = Field(0, ge=0, description="epochs between Hessian-eigenvalue diagnostics; 0 = off")
    eigenvalue_iterations: int = Field(5, gt=0)

    @field_validator("arch_betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class SearchCNN(ArchOptim):
    layers: int = Field(8, gt=0)
    init_channels: int = Field(16, gt=0)
    epochs: int = Field(50, gt=0)
    batch_size: int = Field(64, gt=0)
    train_portion: float = Field(0.5, gt=0, lt=1)
    lr: float = Field(0.025, gt=0)
    lr_min: float = Field(0.001, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    cutout: int = Field(0, ge=0)
    train_images: Optional[int] = Field(None, gt=0, description="cap on the training images used (smoke)")
    track_running_stats: bool = Field(
        True, description="BatchNorm running averages for the validation pass (code); False: batch statistics always (paper)")
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        "auto", description="tensor layout; auto: channels_last on the CPU (faster there), contiguous on CUDA")
    arch_lr: float = Field(3e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)


class SearchRNN(ArchOptim):
    emsize: int = Field(300, gt=0)
    nhid: int = Field(300, gt=0)
    epochs: int = Field(50, gt=0)
    batch_size: int = Field(256, gt=0)
    eval_batch_size: int = Field(10, gt=0)
    bptt: int = Field(35, gt=0)
    max_seq_len_delta: int = Field(20, ge=0)
    lr: float = Field(20.0, gt=0)
    weight_decay: float = Field(5e-7, ge=0)
    dropout: float = Field(0.75, ge=0, lt=1)
    dropouth: float = Field(0.25, ge=0, lt=1)
    dropoutx: float = Field(0.75, ge=0, lt=1)
    dropouti: float = Field(0.2, ge=0, lt=1)
    dropoute: float = Field(0.0, ge=0, lt=1)
    grad_clip: float = Field(0.25, gt=0)
    ar_alpha: float = Field(0.0, ge=0)
    tar_beta: float = Field(1e-3, ge=0)
    arch_data: Literal["valid", "train_holdout"] = "valid"
    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    virtual_step_clip: Literal["match", "none"] = "match"
    train_tokens: Optional[int] = Field(None, gt=0)
    eval_tokens: Optional[int] = Field(None, gt=0)
    track_running_stats: bool = Field(
        True, description="BatchNorm running averages for the validation pass (code); False: batch statistics always")
    arch_lr: float = Field(3e-3, gt=0)
    arch_betas: tuple[float, float] = (0.9, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)


class TrainCNN(Section):
    """Retraining a CNN genotype: CIFAR-10 evaluation, selection, ImageNet transfer."""

    layers: int = Field(20, gt=0)
    init_channels: int = Field(36, gt=0)
    epochs: int = Field(600, gt=0)
    batch_size: int = Field(96, gt=0)
    eval_batch_size: int = Field(256, gt=0)
    lr: float = Field(0.025, gt=0)
    lr_schedule: Literal["cosine", "step"] = "cosine"
    lr_min: float = Field(0.0, ge=0)
    lr_gamma: float = Field(0.97, gt=0, le=1)
    lr_decay_period: int = Field(1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    cutout: int = Field(16, ge=0)
    drop_path_prob: float = Field(0.2, ge=0, lt=1)
    auxiliary_weight: float = Field(0.4, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    bf16: bool = False
    channels_last: bool = False
    train_images: Optional[int] = Field(None, gt=0)
    eval_images: Optional[int] = Field(None, gt=0)


class TrainRNN(Section):
    """Retraining a recurrent genotype (AWD-LSTM-style recipe): PTB, WikiText-2, selection."""

    emsize: int = Field(850, gt=0)
    nhid: int = Field(850, gt=0)
    epochs: int = Field(8000, gt=0)
    batch_size: int = Field(64, gt=0)
    eval_batch_size: int = Field(10, gt=0)
    test_batch_size: int = Field(1, gt=0)
    bptt: int = Field(35, gt=0)
    max_seq_len_delta: int = Field(20, ge=0)
    lr: float = Field(20.0, gt=0)
    weight_decay: float = Field(8e-7, ge=0)
    dropout: float = Field(0.75, ge=0, lt=1)
    dropouth: float = Field(0.25, ge=0, lt=1)
    dropoutx: float = Field(0.75, ge=0, lt=1)
    dropouti: float = Field(0.2, ge=0, lt=1)
    dropoute: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(0.25, gt=0)
    ar_alpha: float = Field(0.0, ge=0)
    tar_beta: float = Field(1e-3, ge=0)
    nonmono: int = Field(5, gt=0)
    asgd: bool = True
    train_tokens: Optional[int] = Field(None, gt=0)
    eval_tokens: Optional[int] = Field(None, gt=0)


class Compare(Section):
    """Tolerances of `darts compare` where the paper gives a single number."""

    sigmas: float = Field(2.0, gt=0)
    ptb_ppl: float = Field(1.0, gt=0)
    wikitext2_ppl: float = Field(1.0, gt=0)
    imagenet_error: float = Field(1.0, gt=0)
    cifar10_error: float = Field(0.2, gt=0, description="used when the paper gives no std")


class Params(Section):
    scale: Literal["paper", "smoke"] = "paper"
    runtime: Runtime = Runtime()
    data: Data = Data()
    pipeline: Pipeline = Pipeline()
    search_cnn: SearchCNN = SearchCNN()
    search_rnn: SearchRNN = SearchRNN()
    select_cnn: TrainCNN = TrainCNN(epochs=100)
    select_rnn: TrainRNN = TrainRNN(epochs=300)
    train_cifar10: TrainCNN = TrainCNN()
    train_imagenet: TrainCNN = TrainCNN(
        layers=14, init_channels=48, epochs=250, batch_size=128, lr=0.1, lr_schedule="step",
        weight_decay=3e-5, cutout=0, drop_path_prob=0.0, label_smoothing=0.1,
    )
    train_ptb: TrainRNN = TrainRNN()
    train_wikitext2: TrainRNN = TrainRNN(emsize=700, nhid=700, weight_decay=5e-7, dropouth=0.15)
    compare: Compare = Compare()


def _deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_overlay_keys(overlay: dict, model: type[BaseModel], prefix: str, source: str) -> None:
    """Every key of the smoke overlay must name a key of the main tree (typos fail at any scale)."""
    for key, value in overlay.items():
        dotted = f"{prefix}.{key}"
        field = model.model_fields.get(key)
        if field is None or key == "smoke":
            raise ConfigError(f"{source}: unknown key '{dotted}' (value {value!r})")
        sub = field.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _check_overlay_keys(value, sub, dotted, source)


def _parse_set(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc}") from None
    return path, value


def _apply_set(tree: dict, path: list[str], value: Any, item: str) -> None:
    model: type[BaseModel] | None = Params
    node = tree
    for i, key in enumerate(path):
        dotted = ".".join(path[: i + 1])
        if model is not None and key not in model.model_fields:
            raise ConfigError(f"--set {item}: unknown key '{dotted}'")
        if i == len(path) - 1:
            node[key] = value
            return
        sub = model.model_fields[key].annotation if model is not None else None
        model = sub if isinstance(sub, type) and issubclass(sub, BaseModel) else None
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item}: '{dotted}' is not a section")


def _flat_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in tree.items():
        dotted = f"{prefix}{k}"
        keys.add(dotted)
        if isinstance(v, dict):
            keys |= _flat_keys(v, dotted + ".")
    return keys


def _format_validation(exc: ValidationError, path: Path, overlay_keys: set[str], set_keys: set[str]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        if err["type"] == "value_error" and isinstance(value, dict):
            # a section's own check (e.g. pipeline lists that must agree): its message names the key
            message = err["msg"].removeprefix("Value error, ")
            key = message.split(":", 1)[0]
            source = "--set" if key in set_keys else f"{path} (smoke overlay):" if key in overlay_keys else f"{path}:"
            lines.append(f"{source} {message}")
            continue
        if key in set_keys:
            source = f"--set {key}"
        elif key in overlay_keys:
            source = f"{path} (smoke overlay)"
        else:
            source = str(path)
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}' (value {value!r})")
        else:
            lines.append(f"{source}: invalid value {value!r} for '{key}': {err['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping, naming the file in every error."""
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_tree(path: Path, raw: dict, scale: str | None) -> tuple[dict, dict]:
    """The file's tree at ``scale`` (the file's own when None) and the overlay that was merged into it.

    A file whose own scale is smoke is a resolved workspace (its overlay already merged, none left):
    dvc.yaml expands the lists of the tree it reads, so a ``scale: smoke`` beside an unmerged
    overlay would run the paper's instances at smoke sizes, and is refused.
    """
    overlay = raw.get("smoke") or {}
    if not isinstance(overlay, dict):
        raise ConfigError(f"{path}: 'smoke' must be a mapping, got {overlay!r}")
    _check_overlay_keys(overlay, Params, "smoke", str(path))
    own = raw.get("scale", "paper")
    chosen = scale or own
    for value, source in ((own, f"{path}: 'scale'"), (chosen, "--scale")):
        if value not in SCALES:
            raise ConfigError(f"{source}: invalid value {value!r}: expected one of {', '.join(SCALES)}")
    if own == "smoke" and overlay:
        raise ConfigError(
            f"{path}: 'scale: smoke' beside an unmerged 'smoke:' overlay. dvc.yaml expands this file's main "
            "tree, so the pipeline would run the paper's instances. Keep 'scale: paper' here and run the smoke "
            "pipeline in its own workspace (`make smoke`, or `darts workspace DIR --scale smoke`); "
            "for one command, pass --scale smoke")
    if own == "smoke" and chosen != "smoke":
        raise ConfigError(f"{path} is resolved at scale smoke (a workspace); --scale {chosen} needs the "
                          "project's params.yaml")
    merged = overlay if chosen == "smoke" and own != "smoke" else {}
    tree = _deep_merge(raw, merged)
    tree["scale"] = chosen
    tree.pop("smoke", None)
    return tree, merged


def load_params(
    path: str | Path = DEFAULT_PARAMS,
    scale: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Params:
    """Merge params.yaml, the smoke overlay and overrides; validate; raise ConfigError on anything bad."""
    path = Path(path)
    raw = read_yaml(path)
    sets = [(_parse_set(item), item) for item in overrides]
    for (key_path, _), item in sets:
        if key_path[:1] in (["scale"], ["smoke"]):
            raise ConfigError(f"--set {item}: the scale is chosen with --scale (or a workspace's params.yaml), "
                              "and the smoke overlay is edited in the file")
    tree, overlay = resolve_tree(path, raw, scale)
    for (key_path, value), item in sets:
        _apply_set(tree, key_path, value, item)
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        set_keys = {".".join(key_path) for (key_path, _), _ in sets}
        raise ConfigError(_format_validation(exc, path, _flat_keys(overlay), set_keys)) from None


def section_dict(params: Params, *names: str) -> dict[str, Any]:
    """The named sections (plus the scale) as plain JSON-able data, for hashing and meta.json."""
    out: dict[str, Any] = {"scale": params.scale}
    for name in names:
        out[name] = getattr(params, name).model_dump(mode="json")
    return out


def config_hash(*parts: Any) -> str:
    """A stable short hash of JSON-able parts: keys resumable state to everything that shapes a run."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def add_config_args(parser: Any) -> None:
    """The options every params-reading subcommand takes."""
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: ./params.yaml)")
    parser.add_argument("--scale", choices=SCALES, help="this command at another scale than the file's (smoke: merge its overlay)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one key, dotted (repeatable), e.g. --set search_cnn.epochs=3",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="shortcut for --set runtime.device=...")


def params_from_args(args: Any) -> Params:
    overrides = list(getattr(args, "overrides", []) or [])
    if getattr(args, "device", None):
        overrides.append(f"runtime.device={args.device}")
    return load_params(args.params, args.scale, overrides)
