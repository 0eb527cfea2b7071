"""The one place that reads params.yaml.

Precedence, lowest first: the file's main tree (paper scale), the ``smoke:`` overlay when the
active scale is ``smoke``, then ``--set key.path=value`` overrides. The scale is the file's
``scale:`` (``paper`` in the project's params.yaml; ``smoke`` in a workspace that ``darts workspace``
resolved), or ``--scale`` for one command.
The merged tree is validated by the pydantic models below, and so is the file's main tree on its
own (a bad value there is an error at every scale); any problem raises ``ConfigError``, which the
CLI turns into exit code 2 with a message naming the file (or --set), the key and the value.

Values live in params.yaml only: the models hold types and bounds (strict: ``true`` is no int), no
defaults, so a key missing from the file is an error, and one changed there changes the run. The
bounds include what the code downstream needs (token counts per batch, BatchNorm's two images,
the cells that reduce), so a value that would crash a run minutes in fails before any work.
A key repeated in one mapping of the file is an error naming its line.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Optional

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from darts.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")
SCALES = ("paper", "smoke")


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, assignments are validated, types are
    strict (``true`` is not an int, ``"3"`` not a number; an int is a valid float).

    No field that params.yaml holds has a default here: the schema keeps types and bounds, the file
    keeps the values (one place to change one). A missing key is an error naming it.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, strict=True)


SEED_BOUND = 2**63
"""Seeds lie in [0, 2**63): ``darts.data.loading.derive_seed`` packs them as signed 64-bit ints."""

Seed = Annotated[int, Field(ge=0, lt=SEED_BOUND)]


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Betas = Annotated[tuple[float, float], BeforeValidator(_list_to_tuple)]  # YAML has lists, not tuples


class TokenStream(NamedTuple):
    """A token stream a language-model section cuts into columns (see ``LanguageModel._token_streams``)."""

    key: str             # the params key that caps it
    what: str
    tokens: Optional[int]
    batch_key: str
    batch: int
    rows: int            # the least rows (tokens // batch) the code that reads it works with


def _fail(key: str, message: str) -> None:
    """A section check's error: ``key`` is the field (the formatter prefixes the section)."""
    raise ValueError(f"{key}: {message}")


class Runtime(Section):
    device: Literal["auto", "cpu", "cuda"]
    threads: int = Field(ge=0, description="torch intra-op threads; 0 keeps torch's default")
    deterministic: bool
    num_workers: int = Field(ge=0, description="DataLoader worker processes")
    checkpoint_dir: str = Field(description="resumable state, outside every engine's outputs")
    progress: bool


class Data(Section):
    root: str
    mirror: Optional[str]
    imagenet_root: Optional[str]
    download_timeout: float = Field(gt=0)


Order = Literal["first", "second"]
Method = Literal["first", "second", "random"]
CNNCell = Literal["DARTS_V1", "DARTS_V2", "NASNet", "AmoebaNet"]
RNNCell = Literal["DARTS_V1", "DARTS_V2", "ENAS"]


class Pipeline(Section):
    """The stage instances that exist: dvc.yaml's foreach/matrix expand exactly these lists."""

    seeds: list[Seed] = Field(min_length=1)
    cnn_orders: list[Order]
    rnn_orders: list[Order]
    cnn_methods: list[Method]
    rnn_methods: list[Method]
    imagenet_methods: list[Method]
    wikitext2_methods: list[Method]
    cifar10_runs: list[Seed] = Field(min_length=1, description="run ids (and seeds) of the final CIFAR-10 runs")
    select_seed: Seed = Field(description="the seed every selection candidate trains with")
    random_cnn_samples: int = Field(gt=0)
    random_rnn_samples: int = Field(gt=0)
    published_cifar10: list[CNNCell]
    published_imagenet: list[CNNCell]
    published_ptb: list[RNNCell]
    published_wikitext2: list[RNNCell]
    snapshot_seeds: list[Seed] = Field(description="searches whose Fig. 3 snapshots are retrained; [] = off")
    snapshot_epochs: list[Annotated[int, Field(gt=0)]] = Field(
        min_length=1, description="search epochs whose derived cell snapshot_eval retrains")

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
    """The architecture optimiser of a search (Adam on the alphas) and the bilevel step's options."""

    arch_lr: float = Field(gt=0)
    arch_betas: Betas
    arch_weight_decay: float = Field(ge=0)
    alpha_init: Literal["randn", "zeros"]
    alpha_init_scale: float = Field(ge=0)
    order: Order
    hessian: Literal["finite_difference", "exact"]
    fd_epsilon: float = Field(gt=0)
    eigenvalue_every: int = Field(ge=0, description="epochs between Hessian-eigenvalue diagnostics; 0 = off")
    eigenvalue_iterations: int = Field(gt=0)

    @field_validator("arch_betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class ConvNet(Section):
    """What a CNN search and a CNN retraining share: the network's size and the SGD recipe."""

    layers: int = Field(ge=3, description=(
        "cells; the two reduction cells sit at layers//3 and 2*layers//3, so 3 is the least that keeps them "
        "apart with a normal cell before them (1 puts both in one cell: the auxiliary tower's 8x8 input is "
        "16x16, a shape error; 2 has no normal cell, whose alphas and genotype would then go unused)"))
    init_channels: int = Field(gt=0)
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    lr_min: float = Field(ge=0)
    momentum: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)
    cutout: int = Field(ge=0)
    train_images: Optional[int] = Field(gt=0, description="cap on the training images used (smoke); null = all")


class SearchCNN(ConvNet, ArchOptim):
    train_portion: float = Field(gt=0, lt=1)
    track_running_stats: bool = Field(
        description="BatchNorm running averages for the validation pass (code); False: batch statistics always (paper)")
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        description="tensor layout; auto: channels_last on the CPU (faster there), contiguous on CUDA")
    bf16: bool = Field(description=(
        "bfloat16 autocast over the network's evaluations (alphas, their softmax, the logits and the "
        "finite-difference points stay float32); false: float32 throughout (paper)"))
    checkpoint_cells: bool = Field(description=(
        "recompute each search cell's activations in the backward pass (same gradients, less memory)"))


class TrainCNN(ConvNet):
    """Retraining a CNN genotype: CIFAR-10 evaluation, selection, ImageNet transfer."""

    batch_size: int = Field(ge=2, description=(
        "at least 2: BatchNorm in training mode needs more than one value per channel, and the auxiliary "
        "tower normalises 1x1 features"))
    eval_batch_size: int = Field(gt=0)
    lr_schedule: Literal["cosine", "step"]
    lr_gamma: float = Field(gt=0, le=1)
    lr_decay_period: int = Field(gt=0)
    drop_path_prob: float = Field(ge=0, lt=1)
    auxiliary_weight: float = Field(ge=0)
    label_smoothing: float = Field(ge=0, lt=1)
    bf16: bool
    channels_last: bool
    eval_images: Optional[int] = Field(gt=0)


class LanguageModel(Section):
    """What an RNN search and a language-model retraining share: sizes, the AWD-LSTM recipe (its
    dropouts and AR/TAR regularisers), the token caps."""

    emsize: int = Field(gt=0)
    nhid: int = Field(gt=0)
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    eval_batch_size: int = Field(gt=0)
    bptt: int = Field(gt=0)
    max_seq_len_delta: int = Field(ge=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    dropout: float = Field(ge=0, lt=1, description="output")
    dropouth: float = Field(ge=0, lt=1, description="hidden nodes")
    dropoutx: float = Field(ge=0, lt=1, description="cell input")
    dropouti: float = Field(ge=0, lt=1, description="word embeddings")
    dropoute: float = Field(ge=0, lt=1, description="embedding rows (words)")
    grad_clip: float = Field(gt=0)
    ar_alpha: float = Field(ge=0, description="activation regularisation")
    tar_beta: float = Field(ge=0, description="temporal activation regularisation")
    train_tokens: Optional[int] = Field(gt=0, description="cap on the training tokens (smoke); null = all")
    eval_tokens: Optional[int] = Field(gt=0, description="cap on the validation (and test) tokens; null = all")

    def _token_streams(self) -> list[TokenStream]:
        """The streams a capped token count feeds, each with the rows it needs.

        ``darts.data.text.batchify`` cuts a stream into ``batch`` columns of ``tokens // batch`` rows
        (the remainder dropped). Training windows (``text.variable_bptt``) start while a row index is
        below rows - 2: 3 rows give one window, fewer none (an epoch without a step divides by zero
        tokens). Evaluation and the architecture stream read inputs and next-word targets from
        consecutive rows (``text.get_batch``): 2 rows are the least.
        """
        return [TokenStream("train_tokens", "the training stream", self.train_tokens, "batch_size", self.batch_size, 3),
                TokenStream("eval_tokens", "the validation stream", self.eval_tokens, "eval_batch_size",
                            self.eval_batch_size, 2)]

    @model_validator(mode="after")
    def _enough_tokens(self) -> "LanguageModel":
        if self.emsize != self.nhid:
            _fail("nhid", f"{self.nhid} differs from emsize {self.emsize}; the decoder is tied to the embedding, "
                  "so they must be equal")
        for s in self._token_streams():
            if s.tokens is not None and s.tokens // s.batch < s.rows:
                rows = s.tokens // s.batch
                _fail(s.key, f"{getattr(self, s.key)} leaves {s.what} {s.tokens} tokens: {rows} row{'s' * (rows != 1)} "
                      f"of {s.batch_key} {s.batch}, and it needs {s.rows} ({s.rows * s.batch} tokens)")
        return self


class SearchRNN(LanguageModel, ArchOptim):
    arch_data: Literal["valid", "train_holdout"]
    holdout_fraction: float = Field(gt=0, lt=1)
    virtual_step_clip: Literal["match", "none"]
    track_running_stats: bool = Field(
        description="BatchNorm running averages for the validation pass (code); False: batch statistics always")

    def _token_streams(self) -> list[TokenStream]:
        """Also the architecture stream, in ``batch_size`` columns: the validation tokens, or the
        held-out tail of the training tokens (``text.holdout_split``: round(fraction * tokens))."""
        train, valid = super()._token_streams()
        if self.arch_data == "valid":
            return [train, valid, TokenStream("eval_tokens", "the architecture stream (validation)", self.eval_tokens,
                                              "batch_size", self.batch_size, 2)]
        if self.train_tokens is None:
            return [train, valid]
        tail = int(round(self.holdout_fraction * self.train_tokens))
        return [valid,
                TokenStream("train_tokens", f"the weight-training head (1 - holdout_fraction {self.holdout_fraction})",
                            self.train_tokens - tail, "batch_size", self.batch_size, 3),
                TokenStream("train_tokens", f"the architecture tail (holdout_fraction {self.holdout_fraction})", tail,
                            "batch_size", self.batch_size, 2)]


class TrainRNN(LanguageModel):
    """Retraining a recurrent genotype (AWD-LSTM-style recipe): PTB, WikiText-2, selection."""

    test_batch_size: int = Field(gt=0)
    nonmono: int = Field(gt=0)
    asgd: bool

    def _token_streams(self) -> list[TokenStream]:
        """Also the test split (capped by ``eval_tokens`` too), in ``test_batch_size`` columns."""
        return [*super()._token_streams(), TokenStream("eval_tokens", "the test stream", self.eval_tokens,
                                                       "test_batch_size", self.test_batch_size, 2)]


class Compare(Section):
    """Tolerances of `darts compare` where the paper gives a single number."""

    sigmas: float = Field(gt=0)
    ptb_ppl: float = Field(gt=0)
    wikitext2_ppl: float = Field(gt=0)
    imagenet_error: float = Field(gt=0)
    cifar10_error: float = Field(gt=0, description="used when the paper gives no std")


class Params(Section):
    scale: Literal["paper", "smoke"]
    runtime: Runtime
    data: Data
    pipeline: Pipeline
    search_cnn: SearchCNN
    search_rnn: SearchRNN
    select_cnn: TrainCNN
    select_rnn: TrainRNN
    train_cifar10: TrainCNN
    train_imagenet: TrainCNN
    train_ptb: TrainRNN
    train_wikitext2: TrainRNN
    compare: Compare


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter where params.yaml needs it: a key repeated in one mapping is an
    error naming both lines (YAML forbids it; PyYAML would keep the last value in silence), and
    floats are read as YAML 1.2 does (``1e-3`` is a number, as DVC reads it; YAML 1.1 wants ``1.0e-3``)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:   # an unhashable key: the base class says so
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(None, None, f"duplicate key {key!r} (first at line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep)


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=ParamsLoader)  # noqa: S506 (a SafeLoader subclass)


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
        value = _yaml(raw) if raw.strip() else None
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
    def source(key: str) -> str:
        """Who set ``key`` (or the part of it that holds the bad item): --set, the smoke overlay, the file."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in set_keys:
                return f"--set {prefix}"
            if prefix in overlay_keys:
                return f"{path} (smoke overlay)"
        return str(path)

    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        if err["type"] == "value_error" and isinstance(value, dict):
            # a section's own check (e.g. pipeline lists that must agree): its message starts with the key
            message = err["msg"].removeprefix("Value error, ")
            key = message.split(":", 1)[0]
            if loc and not key.startswith(f"{loc}."):
                key, message = f"{loc}.{key}", f"{loc}.{message}"
            where = source(key)
            lines.append(f"{where}: {message.removeprefix(key + ': ')}" if where == f"--set {key}"
                         else f"{where}: {message}")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{source(loc)}: unknown key '{loc}' (value {value!r})")
        elif err["type"] == "missing" and source(loc) == str(path):
            lines.append(f"{path}: missing key '{loc}' (params.yaml holds every value; the schema has no defaults)")
        elif err["type"] == "missing":   # e.g. a --set tuple one item short
            lines.append(f"{source(loc)}: invalid value {value!r}: '{loc}' is missing")
        else:
            lines.append(f"{source(loc)}: invalid value {value!r} for '{loc}': {err['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping, naming the file in every error (and the line of a repeated key)."""
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = _yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: line {exc.problem_mark.line + 1}: {exc.problem}") from None
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
    if "scale" not in raw:
        raise ConfigError(f"{path}: missing key 'scale' (paper, or smoke in a resolved workspace)")
    own = raw["scale"]
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


def _validate(tree: dict, path: Path, overlay_keys: set[str] = frozenset(), set_keys: set[str] = frozenset()) -> Params:
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, path, overlay_keys, set_keys)) from None


def load_params(
    path: str | Path = DEFAULT_PARAMS,
    scale: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Params:
    """Merge params.yaml, the smoke overlay and overrides; validate; raise ConfigError on anything bad.

    The file's main tree is validated on its own too, whatever the scale: a bad value there is an
    error even where the smoke overlay or a --set replaces it.
    """
    path = Path(path)
    raw = read_yaml(path)
    sets = [(_parse_set(item), item) for item in overrides]
    for (key_path, _), item in sets:
        if key_path[:1] in (["scale"], ["smoke"]):
            raise ConfigError(f"--set {item}: the scale is chosen with --scale (or a workspace's params.yaml), "
                              "and the smoke overlay is edited in the file")
    tree, overlay = resolve_tree(path, raw, scale)
    main, _ = resolve_tree(path, raw, None)
    _validate(main, path)
    for (key_path, value), item in sets:
        _apply_set(tree, key_path, value, item)
    return _validate(tree, path, _flat_keys(overlay), {".".join(key_path) for (key_path, _), _ in sets})


def load_section(name: str, path: str | Path = DEFAULT_PARAMS, scale: str | None = None, **values: Any) -> Any:
    """One section of the params file with some ``values`` replaced (validated): for tests and
    benchmarks that need a section without a whole run's configuration, e.g.
    ``load_section("train_cifar10", scale="smoke", epochs=3)``."""
    section = getattr(load_params(path, scale), name)
    try:
        return type(section).model_validate({**section.model_dump(), **values})
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, Path(path), set(), set())) from None


def seed_arg(text: str) -> int:
    """argparse ``type=`` of a ``--seed`` option: an int in [0, 2**63) (argparse exits 2 otherwise)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer") from None
    if not 0 <= seed < SEED_BOUND:
        raise argparse.ArgumentTypeError(f"invalid seed {seed}: seeds lie in [0, 2**63)")
    return seed


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
