"""Genotypes: the discrete cells DARTS derives from the architecture weights (Sect. 2.4).

A CNN genotype lists two ``(op, input)`` pairs per intermediate node: pair j (entries 2j, 2j+1)
builds node j+2 from states 0 and 1 (the two cell inputs) and the earlier nodes. An RNN genotype
lists one pair per learned node: entry i builds state i+1. Genotypes convert to and from JSON
(``{"normal": [[op, input], ...], ...}``, or the ``{"op": .., "input": ..}`` pairs of the paper data)
and the official code's string ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``,
which is parsed as a literal, never evaluated.

Torch-free on purpose: `darts genotype` and the pipeline read genotypes without loading torch.
"""

from __future__ import annotations

import ast
import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, Union

from darts.errors import DartsError
from darts.io import write_text

CNN_PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
# Ops outside the search space that the NASNet and AmoebaNet baseline cells use.
CNN_EXTRA_OPS: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")
RNN_PRIMITIVES: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
CNN_STEPS = 4
RNN_STEPS = 8
SPACES = ("cnn", "rnn")

Edge = tuple[str, int]
Matrix = Sequence[Sequence[float]]


def _edges(raw: Any, field: str) -> tuple[Edge, ...]:
    """``[[op, input], ...]``, ``[(op, input), ...]`` or ``[{"op": .., "input": ..}, ...]`` as a tuple."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise DartsError(f"genotype field '{field}': expected a non-empty list of (op, input) pairs, got {raw!r}")
    out = []
    for item in raw:
        if isinstance(item, Mapping):
            op, index = item.get("op"), item.get("input")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            op, index = item
        else:
            raise DartsError(f"genotype field '{field}': bad entry {item!r}, expected [op, input]")
        if not isinstance(op, str) or not isinstance(index, int) or isinstance(index, bool):
            raise DartsError(f"genotype field '{field}': bad entry {item!r}, expected [op name, input index]")
        out.append((op, index))
    return tuple(out)


def _concat(raw: Any, field: str) -> tuple[int, ...]:
    if isinstance(raw, range):
        raw = list(raw)
    if not isinstance(raw, (list, tuple)) or not raw or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in raw
    ):
        raise DartsError(f"genotype field '{field}': expected a non-empty list of node indices, got {raw!r}")
    return tuple(raw)


def _check(
    edges: tuple[Edge, ...], concat: tuple[int, ...], field: str, ops: Sequence[str], edges_per_node: int, first: int
) -> None:
    """Every op known, every input an earlier state, every concatenated index an existing state."""
    if len(edges) % edges_per_node:
        raise DartsError(f"genotype field '{field}': {len(edges)} entries, expected a multiple of {edges_per_node}")
    for position, (op, index) in enumerate(edges):
        node = first + position // edges_per_node
        if op not in ops:
            raise DartsError(f"genotype field '{field}': unknown op {op!r} (known: {', '.join(ops)})")
        if not 0 <= index < node:
            raise DartsError(f"genotype field '{field}': entry {position} ({op!r}, {index}) builds state {node}, "
                             f"so its input must be in 0..{node - 1}")
    states = first + len(edges) // edges_per_node
    bad = [i for i in concat if not 0 <= i < states]
    if bad:
        raise DartsError(f"genotype field '{field}_concat' or 'concat': indices {bad} outside 0..{states - 1}")


def _format_edges(edges: tuple[Edge, ...]) -> str:
    return "[" + ", ".join(f"({op!r}, {index})" for op, index in edges) + "]"


def _format_concat(concat: tuple[int, ...]) -> str:
    if list(concat) == list(range(concat[0], concat[-1] + 1)):
        return f"range({concat[0]}, {concat[-1] + 1})"
    return repr(list(concat))


@dataclass(frozen=True)
class CNNGenotype:
    """A normal and a reduction cell: two (op, input) pairs per intermediate node, and the concatenated states."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    FIELDS: ClassVar[tuple[str, ...]] = ("normal", "normal_concat", "reduce", "reduce_concat")

    def __post_init__(self) -> None:
        for cell in ("normal", "reduce"):
            edges = _edges(getattr(self, cell), cell)
            concat = _concat(getattr(self, f"{cell}_concat"), f"{cell}_concat")
            _check(edges, concat, cell, CNN_PRIMITIVES + CNN_EXTRA_OPS, edges_per_node=2, first=2)
            object.__setattr__(self, cell, edges)
            object.__setattr__(self, f"{cell}_concat", concat)

    @property
    def space(self) -> str:
        return "cnn"

    def to_json(self) -> dict[str, Any]:
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CNNGenotype:
        missing = [f for f in cls.FIELDS if f not in data]
        if missing:
            raise DartsError(f"CNN genotype: missing field(s) {', '.join(missing)}")
        return cls(*(data[f] for f in cls.FIELDS))

    def to_official_string(self) -> str:
        return (f"Genotype(normal={_format_edges(self.normal)}, normal_concat={_format_concat(self.normal_concat)}, "
                f"reduce={_format_edges(self.reduce)}, reduce_concat={_format_concat(self.reduce_concat)})")

    @classmethod
    def parse_official(cls, text: str) -> CNNGenotype:
        return _expect(parse_official(text), cls)

    def describe(self) -> str:
        lines = []
        for cell in ("normal", "reduce"):
            edges, concat = getattr(self, cell), getattr(self, f"{cell}_concat")
            lines.append(f"{cell} cell (output = concat of nodes {', '.join(map(str, concat))}):")
            for node in range(len(edges) // 2):
                terms = " + ".join(f"{op}({_cnn_state(i)})" for op, i in edges[2 * node: 2 * node + 2])
                lines.append(f"  node {node + 2} = {terms}")
        return "\n".join(lines)

    def save(self, path: str | Path, **extra: Any) -> None:
        _save(self, path, extra)


def _cnn_state(index: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, f"node {index}")


@dataclass(frozen=True)
class RNNGenotype:
    """A recurrent cell: one (op, input) pair per learned node (entry i builds state i+1), and the averaged states."""

    recurrent: tuple[Edge, ...]
    concat: tuple[int, ...]

    FIELDS: ClassVar[tuple[str, ...]] = ("recurrent", "concat")

    def __post_init__(self) -> None:
        edges = _edges(self.recurrent, "recurrent")
        concat = _concat(self.concat, "concat")
        _check(edges, concat, "recurrent", RNN_PRIMITIVES, edges_per_node=1, first=1)
        object.__setattr__(self, "recurrent", edges)
        object.__setattr__(self, "concat", concat)

    @property
    def space(self) -> str:
        return "rnn"

    def to_json(self) -> dict[str, Any]:
        return {"recurrent": [list(e) for e in self.recurrent], "concat": list(self.concat)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RNNGenotype:
        missing = [f for f in cls.FIELDS if f not in data]
        if missing:
            raise DartsError(f"RNN genotype: missing field(s) {', '.join(missing)}")
        return cls(data["recurrent"], data["concat"])

    def to_official_string(self) -> str:
        return f"Genotype(recurrent={_format_edges(self.recurrent)}, concat={_format_concat(self.concat)})"

    @classmethod
    def parse_official(cls, text: str) -> RNNGenotype:
        return _expect(parse_official(text), cls)

    def describe(self) -> str:
        lines = [f"recurrent cell (output = mean of nodes {', '.join(map(str, self.concat))}; "
                 "node 0 = highway(x_t, h_{t-1})):"]
        for node, (op, index) in enumerate(self.recurrent, start=1):
            lines.append(f"  node {node} = highway {op}(node {index})")
        return "\n".join(lines)

    def save(self, path: str | Path, **extra: Any) -> None:
        _save(self, path, extra)


Genotype = Union[CNNGenotype, RNNGenotype]
_TYPES: dict[str, type] = {"cnn": CNNGenotype, "rnn": RNNGenotype}


def _save(genotype: Genotype, path: str | Path, extra: Mapping[str, Any]) -> None:
    clash = set(extra) & set(genotype.FIELDS)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would overwrite genotype fields")
    data = {**extra, **genotype.to_json()}
    # One line per field keeps a cell's (op, input) pairs readable in diffs and reviews.
    write_text(path, "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()) + "\n}\n")


def _expect(genotype: Genotype, cls: type) -> Any:
    if not isinstance(genotype, cls):
        raise DartsError(f"expected a {cls.__name__}, got a {type(genotype).__name__}")
    return genotype


def genotype_from_json(data: Mapping[str, Any]) -> Genotype:
    """A CNN or RNN genotype from its JSON object, told apart by its fields; extra keys are ignored."""
    if not isinstance(data, Mapping):
        raise DartsError(f"genotype JSON: expected an object, got {type(data).__name__}")
    if "normal" in data or "reduce" in data:
        return CNNGenotype.from_json(data)
    if "recurrent" in data:
        return RNNGenotype.from_json(data)
    raise DartsError(f"genotype JSON: no 'normal'/'reduce' (CNN) or 'recurrent' (RNN) field; keys: {sorted(data)}")


def _literal(node: ast.expr) -> Any:
    """A literal, or ``range(...)`` of integer literals; anything else is rejected."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        if node.keywords or not 1 <= len(node.args) <= 3:
            raise ValueError("range() takes 1 to 3 positional integers")
        args = [ast.literal_eval(a) for a in node.args]
        if not all(isinstance(a, int) for a in args):
            raise ValueError("range() arguments must be integers")
        return list(range(*args))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"only literals and range(...) are allowed, found {ast.unparse(node)[:40]!r}") from None


def parse_official(text: str) -> Genotype:
    """Parse the official ``Genotype(...)`` string (optionally ``name = Genotype(...)``) without eval."""
    source = re.sub(r"^\s*[A-Za-z_]\w*\s*=\s*", "", text.strip(), count=1)
    try:
        call = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        raise DartsError(f"not an official genotype string ({exc.msg}): {text[:80]!r}") from None
    name = call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else (
        call.func.attr if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) else None)
    if name != "Genotype":
        raise DartsError(f"not an official genotype string (expected Genotype(...)): {text[:80]!r}")
    keywords = {kw.arg for kw in call.keywords}
    cls = CNNGenotype if len(call.args) == 4 or "normal" in keywords else RNNGenotype
    if len(call.args) > len(cls.FIELDS) or None in keywords:
        raise DartsError(f"not an official genotype string (unexpected arguments): {text[:80]!r}")
    nodes = dict(zip(cls.FIELDS, call.args)) | {kw.arg: kw.value for kw in call.keywords}
    unknown = set(nodes) - set(cls.FIELDS)
    if unknown:
        raise DartsError(f"official genotype string: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    try:
        values = {field: _literal(node) for field, node in nodes.items()}
    except (ValueError, SyntaxError, TypeError) as exc:
        raise DartsError(f"official genotype string: a field is not a literal ({exc}): {text[:80]!r}") from None
    return cls.from_json(values)


def _load_published() -> dict[str, dict[str, Genotype]]:
    data = json.loads(resources.files("darts").joinpath("resources", "genotypes.json").read_text(encoding="utf-8"))
    published: dict[str, dict[str, Genotype]] = {}
    for space, cls in _TYPES.items():
        cells = {name: cls.from_json(entry) for name, entry in data[space]["genotypes"].items()}
        cells.update({alias: cells[target] for alias, target in data[space]["alias"].items()})
        published[space] = cells
    return published


# The official code's genotypes by name; DARTS is an alias of DARTS_V2 in both spaces.
PUBLISHED: dict[str, dict[str, Genotype]] = _load_published()


def load_genotype(spec: str | Path, space: str | None) -> Genotype:
    """A published NAME, a FILE (JSON, or an official string), or an official ``Genotype(...)`` STRING.

    With ``space=None`` either kind is accepted; a published name is then looked up among the CNN
    cells first (DARTS, DARTS_V1 and DARTS_V2 name cells of both spaces).
    """
    if space is not None and space not in SPACES:
        raise DartsError(f"unknown genotype space {space!r}; expected one of {', '.join(SPACES)}")
    text = str(spec)
    for candidate in SPACES if space is None else (space,):
        if text in PUBLISHED[candidate]:
            return PUBLISHED[candidate][text]
    if "Genotype(" in text:
        genotype = parse_official(text)
    elif Path(text).is_file():
        genotype = _read_file(Path(text))
    elif space is not None and any(text in PUBLISHED[other] for other in SPACES):
        raise DartsError(f"genotype {text!r} is a published {_other(space).upper()} cell; "
                         f"a {space.upper()} one is needed")
    else:
        names = ", ".join(sorted({n for s in (SPACES if space is None else (space,)) for n in PUBLISHED[s]}))
        raise DartsError(f"genotype {text!r}: not a published {space or 'CNN/RNN'} genotype ({names}), "
                         f"an existing file, or a Genotype(...) string")
    if space is not None and genotype.space != space:
        raise DartsError(f"genotype {text!r} is a {genotype.space.upper()} genotype; a {space.upper()} one is needed")
    return genotype


def _other(space: str) -> str:
    return SPACES[1 - SPACES.index(space)]


def _read_file(path: Path) -> Genotype:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DartsError(f"genotype file {path}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                         f"expected genotype JSON or an official Genotype(...) string") from None
    except OSError as exc:
        raise DartsError(f"genotype file {path}: cannot read it ({exc.strerror or exc})") from None
    if "\x00" in text:
        raise DartsError(f"genotype file {path}: binary content (NUL bytes); "
                         f"expected genotype JSON or an official Genotype(...) string")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DartsError(f"{path}: not valid JSON: {exc}") from None
        try:
            return genotype_from_json(data)
        except DartsError as exc:
            raise DartsError(f"{path}: {exc}") from None
    try:
        return parse_official(text)
    except DartsError as exc:
        raise DartsError(f"genotype file {path}: {exc}") from None


def _rows(weights: Any, primitives: Sequence[str], edges: int, what: str) -> list[list[float]]:
    """Softmax weights (tensor, array or nested lists) as a list of rows, shape-checked."""
    rows = weights.tolist() if hasattr(weights, "tolist") else [list(r) for r in weights]
    if len(rows) != edges or any(len(r) != len(primitives) for r in rows):
        raise ValueError(f"{what}: expected {edges} x {len(primitives)} weights")
    if any(abs(sum(r) - 1.0) > 1e-3 for r in rows):
        raise ValueError(f"{what}: rows must be softmax weights summing to 1 (pass softmax(alpha), not alpha)")
    return rows


def _derive(rows: list[list[float]], primitives: Sequence[str], steps: int, first_inputs: int, k: int) -> list[Edge]:
    """Sect. 2.4: per node, the k incoming edges of largest non-`none` weight, each with its best non-`none` op.

    Ties go to the earlier op in ``primitives`` and to the lower input index; each node's edges are
    listed strongest first. Both rules match the official code, so equal alphas give equal genotypes.
    """
    none = primitives.index("none")
    gene: list[Edge] = []
    start = 0
    for node in range(steps):
        inputs = first_inputs + node
        best_op, strength = [], []
        for row in rows[start:start + inputs]:
            op = max((o for o in range(len(primitives)) if o != none), key=lambda o: (row[o], -o))
            best_op.append(op)
            strength.append(row[op])
        for j in sorted(range(inputs), key=lambda j: (-strength[j], j))[:k]:
            gene.append((primitives[best_op[j]], j))
        start += inputs
    return gene


def derive_cnn(weights_normal: Matrix, weights_reduce: Matrix, steps: int = CNN_STEPS) -> CNNGenotype:
    """The CNN genotype of softmax(alpha) of both cell types (k = 2 edges per node)."""
    edges = sum(2 + i for i in range(steps))
    concat = tuple(range(2, 2 + steps))
    normal = _derive(_rows(weights_normal, CNN_PRIMITIVES, edges, "weights_normal"), CNN_PRIMITIVES, steps, 2, 2)
    reduce = _derive(_rows(weights_reduce, CNN_PRIMITIVES, edges, "weights_reduce"), CNN_PRIMITIVES, steps, 2, 2)
    return CNNGenotype(tuple(normal), concat, tuple(reduce), concat)


def derive_rnn(weights: Matrix, steps: int = RNN_STEPS) -> RNNGenotype:
    """The RNN genotype of softmax(alpha) (k = 1 edge per node; node i+1 chooses among states 0..i)."""
    edges = sum(1 + i for i in range(steps))
    recurrent = _derive(_rows(weights, RNN_PRIMITIVES, edges, "weights"), RNN_PRIMITIVES, steps, 1, 1)
    return RNNGenotype(tuple(recurrent), tuple(range(1, steps + 1)))


def random_genotype(space: str, rng: random.Random) -> Genotype:
    """A cell drawn uniformly from the discrete space that derive_cnn/derive_rnn map into.

    Each node takes k distinct inputs uniformly among its predecessors, and each edge an op uniformly
    among the non-`none` primitives. (The official baseline derived a genotype from random normal
    alphas; with i.i.d. alphas that is the same distribution.)
    """
    if space == "cnn":
        ops = [p for p in CNN_PRIMITIVES if p != "none"]
        cells = [
            tuple((rng.choice(ops), j) for node in range(CNN_STEPS) for j in rng.sample(range(2 + node), 2))
            for _ in ("normal", "reduce")
        ]
        concat = tuple(range(2, 2 + CNN_STEPS))
        return CNNGenotype(cells[0], concat, cells[1], concat)
    if space == "rnn":
        ops = [p for p in RNN_PRIMITIVES if p != "none"]
        recurrent = tuple((rng.choice(ops), rng.randrange(node + 1)) for node in range(RNN_STEPS))
        return RNNGenotype(recurrent, tuple(range(1, RNN_STEPS + 1)))
    raise DartsError(f"unknown genotype space {space!r}; expected one of {', '.join(SPACES)}")
