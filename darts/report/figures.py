"""The figures of the report, drawn from the stage outputs with seaborn (PNG and PDF).

Each ``*_figure`` function returns a matplotlib Figure (the cells too: no system binary) built
only from the files under ``runs/`` or the results tables, so tests can inspect what was drawn;
``render_all`` saves them under ``results/figures/`` (PNG) and ``results/figures_pdf/``. Every title carries the scale when any of its
data is not at paper scale, so a smoke plot is never mistaken for a reproduction.
"""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from darts.config import Compare  # noqa: E402
from darts.errors import DartsError  # noqa: E402
from darts.genotypes import CNN_PRIMITIVES, RNN_PRIMITIVES, CNNGenotype, Genotype, load_genotype  # noqa: E402
from darts.io import atomic_path  # noqa: E402
from darts.report.runs import Run, final_runs, search_runs, snapshot_runs  # noqa: E402
from darts.report.tables import METHOD_LABELS, SPECS, TableSpec  # noqa: E402
from darts.rundir import CANDIDATES, GENOTYPE, HISTORY, META, read_history, run_dirs, select_root  # noqa: E402

log = logging.getLogger(__name__)

SPACE_NAMES = {"cnn": "CNN (CIFAR-10)", "rnn": "RNN (PTB)"}
CELLS = {"cnn": ("normal", "reduce"), "rnn": ("recurrent",)}
PRIMITIVES = {"cnn": CNN_PRIMITIVES, "rnn": RNN_PRIMITIVES}
FIRST_NODE = {"cnn": 2, "rnn": 1}          # index of the first node an edge can lead to
NODES = {"cnn": 4, "rnn": 8}               # intermediate nodes with searched inputs
SKIP_OP = {"cnn": "skip_connect", "rnn": "identity"}
CURVE_KEYS = {
    "train_loss": "training loss", "train_acc": "training accuracy (%)", "train_ppl": "training perplexity",
    "valid_loss": "validation loss", "valid_acc": "validation accuracy (%)", "valid_ppl": "validation perplexity",
}
DPI = 110


def scale_note(scales: Iterable[str | None]) -> str:
    """'' when everything is at paper scale, else 'SMOKE SCALE: not a reproduction' (or the scales found)."""
    distinct = sorted({s or "unknown" for s in scales})
    if distinct == ["paper"]:
        return ""
    return f"{'+'.join(distinct).upper()} SCALE: not a reproduction"


def scaled_title(text: str, scales: Iterable[str | None], width: int = 90) -> str:
    """The title wrapped to ``width`` characters, the scale note on its own line when not at paper scale."""
    note = scale_note(scales)
    return "\n".join([*textwrap.wrap(text, width), *([note] if note else [])])


def set_title(fig: plt.Figure, text: str, scales: Iterable[str | None]) -> None:
    """A figure title that fits the figure's width (about 9 characters per inch)."""
    fig.suptitle(scaled_title(text, scales, width=max(30, int(fig.get_figwidth() * 9))))


def seed_colours(seeds: Iterable[int]) -> dict[str, tuple]:
    palette = sns.color_palette("colorblind", 10)
    return {f"seed {s}": palette[s % 10] for s in sorted(set(seeds))}


def method_colours(methods: Iterable[str]) -> dict[str, tuple]:
    """One fixed colour per method, the same in every figure."""
    known = list(METHOD_LABELS.values())
    palette = sns.color_palette("tab10", 10)
    extra = iter(sns.color_palette("Set2", 8))
    return {m: palette[known.index(m)] if m in known else next(extra) for m in dict.fromkeys(methods)}


def search_progress_figure(runs_root: Path, space: str) -> plt.Figure | None:
    """The paper's Fig. 3: from retrained snapshots when snapshot_eval ran, else the search network's own score."""
    snapshots = snapshot_runs(runs_root, space)
    if snapshots:
        metric = "valid_error" if space == "cnn" else "valid_ppl"
        ylabel = "validation error (%)" if space == "cnn" else "validation perplexity"
        source = "retrained snapshots (as the paper's Fig. 3)"
        rows = [{**r.label, "value": _metric(r, metric)} for r in snapshots]
        scales = [r.scale for r in snapshots]
    else:
        searches = search_runs(runs_root, space)
        if not searches:
            return None
        metric = "valid_acc" if space == "cnn" else "valid_ppl"
        ylabel = "validation accuracy (%)" if space == "cnn" else "validation perplexity"
        source = "search network's own validation score (not retrained)"
        rows = [{**r.label, "epoch": h["epoch"], "value": h[metric]}
                for r in searches for h in read_history(r.dir / HISTORY, ("epoch", metric))]
        scales = [r.scale for r in searches]
    frame = pd.DataFrame(rows)
    frame["seed"] = [f"seed {s}" for s in frame["seed"]]
    orders = sorted(frame["order"].unique())
    fig, axes = plt.subplots(1, len(orders), figsize=(5.5 * len(orders), 4), sharey=True, squeeze=False)
    palette = seed_colours(int(s.split()[1]) for s in frame["seed"])
    for ax, order in zip(axes[0], orders):
        sns.lineplot(data=frame[frame["order"] == order], x="epoch", y="value", hue="seed", palette=palette,
                     marker=_marker(frame), ax=ax)
        ax.set(title=f"{order} order", xlabel="search epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if space == "rnn" and frame["value"].max() > 10 * frame["value"].min():
            ax.set_yscale("log")
    set_title(fig, f"{SPACE_NAMES[space]} search progress: {source}", scales)
    fig.tight_layout()
    return fig


def alpha_figure(search: Run, space: str, cell: str) -> plt.Figure:
    """softmax(alpha) of every edge and op over the epochs of one search, one panel per edge (node x input)."""
    path = search.dir / HISTORY
    history = read_history(path, ("epoch", "alphas_softmax"))
    ops = PRIMITIVES[space]
    first, nodes = FIRST_NODE[space], NODES[space]
    edges = [(src, dst) for dst in range(first, first + nodes) for src in range(dst)]
    try:
        weights = np.array([row["alphas_softmax"][cell] for row in history], dtype=float)
    except (KeyError, ValueError, TypeError):
        raise DartsError(f"{path}: 'alphas_softmax' needs a '{cell}' matrix of {len(edges)} x {len(ops)} "
                         "in every epoch") from None
    if weights.shape[1:] != (len(edges), len(ops)):
        raise DartsError(f"{path}: alphas_softmax['{cell}'] is {weights.shape[1]} x {weights.shape[2]}, "
                         f"expected {len(edges)} edges x {len(ops)} ops")
    epochs = [row["epoch"] for row in history]
    cols = first + nodes - 1
    fig = plt.figure(figsize=(1.9 * cols + 0.6, 1.5 * nodes + 0.9))
    grid = fig.add_gridspec(nodes, cols, left=0.1, right=0.98, bottom=0.09, top=1 - 1.0 / (1.5 * nodes + 0.9),
                            hspace=0.45, wspace=0.12)
    palette = sns.color_palette("tab10", len(ops))
    first_ax = None
    for e, (src, dst) in enumerate(edges):
        ax = fig.add_subplot(grid[dst - first, src], sharex=first_ax, sharey=first_ax)
        first_ax = first_ax or ax
        for o, op in enumerate(ops):
            ax.plot(epochs, weights[:, e, o], color=palette[o], label=op, linewidth=1.2)
        ax.set_title(f"{_state(space, src)} → {dst - first if space == 'cnn' else dst}", fontsize=8, pad=2)
        ax.tick_params(labelsize=7, labelbottom=dst == first + nodes - 1, labelleft=src == 0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    handles, labels = first_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", bbox_to_anchor=(0.98, 0.88), title="op", fontsize=9)
    fig.supxlabel("search epoch")
    fig.supylabel("softmax(α)", x=0.01)
    order, seed = search.label["order"], search.label["seed"]
    set_title(fig, f"{SPACE_NAMES[space]} {cell} cell: α over the epochs, {order} order, seed {seed}", [search.scale])
    return fig


def collapse_figure(runs_root: Path, space: str) -> plt.Figure | None:
    """Skip connections in the derived cell per epoch, and the dominant Hessian eigenvalue when recorded."""
    searches = search_runs(runs_root, space)
    if not searches:
        return None
    rows = []
    for run in searches:
        path = run.dir / HISTORY
        for h in read_history(path, ("epoch",)):
            rows.append({**run.label, "epoch": h["epoch"], "skips": _skip_count(h, space, path),
                         "eigenvalue": h.get("hessian_eigenvalue")})
    frame = pd.DataFrame(rows)
    frame["seed"] = [f"seed {s}" for s in frame["seed"]]
    frame["eigenvalue"] = pd.to_numeric(frame["eigenvalue"], errors="coerce")
    with_eig = frame.dropna(subset=["eigenvalue"])
    orders = sorted(frame["order"].unique())
    panels = [("skips", f"{SKIP_OP[space]} ops in the derived cell")]
    if not with_eig.empty:
        panels.append(("eigenvalue", "dominant eigenvalue of ∇²_α L_val"))
    fig, axes = plt.subplots(len(panels), len(orders), figsize=(5.5 * len(orders), 3.6 * len(panels)),
                             sharex=True, squeeze=False)
    palette = seed_colours(r.label["seed"] for r in searches)
    for row, (key, label) in enumerate(panels):
        data = frame if key == "skips" else with_eig
        for ax, order in zip(axes[row], orders):
            part = data[data["order"] == order]
            if part.empty:
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            else:
                sns.lineplot(data=part, x="epoch", y=key, hue="seed", palette=palette, marker=_marker(part), ax=ax)
            ax.set(title=f"{order} order", xlabel="search epoch", ylabel=label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    missing = "" if len(panels) == 2 else " (Hessian eigenvalue not recorded)"
    set_title(fig, f"{SPACE_NAMES[space]} search: collapse diagnostics{missing}", [r.scale for r in searches])
    fig.tight_layout()
    return fig


CELL_COLOURS = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}  # Figures 4-6's palette
NODE_RADIUS, BOX_HEIGHT = 0.28, 0.5
SLOT = {"node": 1.1, "bend": 0.5}   # vertical room a node / a long edge's bend takes in its layer
LAYER_GAP = 1.9
OP_STYLE = {"mutation_scale": 12, "color": "black", "linestyle": "-", "linewidth": 1.0, "zorder": 2}
CONCAT_STYLE = {"mutation_scale": 10, "color": "0.55", "linestyle": "--", "linewidth": 0.9, "zorder": 1}


def cell_figure(genotype: Genotype, cell: str, title: str) -> plt.Figure:
    """A cell as the paper's Figures 4-6 draw it, with matplotlib only (no system binary to install).

    Layered left to right as Graphviz's ``dot`` would: inputs first, each intermediate node one layer
    after its deepest input, the output last; an edge that skips layers bends through reserved slots
    of the layers it crosses, so it never runs through a node and its label has room. Each edge is a
    patch whose gid says what it is (``op:<src>-><dst>:<op>``; ``input:...`` for the RNN's fixed
    x_t, h_{t-1} -> 0 edges; ``concat:<src>`` into the output), so tests can read the drawing back.
    """
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    if isinstance(genotype, CNNGenotype):
        pairs = getattr(genotype, cell)
        concat = getattr(genotype, f"{cell}_concat")
        names = {0: "$c_{k-2}$", 1: "$c_{k-1}$", **{n: str(n - 2) for n in range(2, 2 + len(pairs) // 2)}}
        edges = [("op", src, 2 + position // 2, op) for position, (op, src) in enumerate(pairs)]
        inputs, output = (0, 1), "$c_{k}$"
    else:
        names = {-2: "$x_t$", -1: "$h_{t-1}$", **{n: str(n) for n in range(len(genotype.recurrent) + 1)}}
        edges = [("input", -2, 0, "tanh"), ("input", -1, 0, "tanh")]
        edges += [("op", src, dst, op) for dst, (op, src) in enumerate(genotype.recurrent, start=1)]
        inputs, output, concat = (-2, -1), "$h_t$ (average)", genotype.concat
    out = max(names) + 1
    names[out] = output
    layer = {n: 0 for n in inputs}
    for _, src, dst, _ in sorted(edges, key=lambda e: e[2]):
        layer[dst] = max(layer.get(dst, 0), layer[src] + 1)
    layer[out] = max(layer.values()) + 1
    edges += [("concat", node, out, None) for node in concat]
    routes = [[src, *((i, k) for k in range(layer[src] + 1, layer[dst])), dst]
              for i, (_, src, dst, _) in enumerate(edges)]
    position = _layered_positions(layer, routes)

    ys = [y for _, y in position.values()]
    fig, ax = plt.subplots(figsize=(LAYER_GAP * layer[out] + 2.2, max(ys) - min(ys) + 2.0))
    outline = {}
    for node, label in names.items():
        x, y = position[node]
        if node in inputs or node == out:
            width = 0.25 + 0.11 * len(label.replace("$", "").replace("{", "").replace("}", ""))
            patch = FancyBboxPatch((x - width / 2, y - BOX_HEIGHT / 2), width, BOX_HEIGHT, boxstyle="round,pad=0.04",
                                   facecolor=CELL_COLOURS["output" if node == out else "input"], edgecolor="black")
            outline[node] = (width / 2 + 0.04, BOX_HEIGHT / 2 + 0.04)
        else:
            patch = Circle((x, y), NODE_RADIUS, facecolor=CELL_COLOURS["node"], edgecolor="black")
            outline[node] = None
        patch.set_zorder(3)
        ax.add_patch(patch)
        ax.text(x, y, label, ha="center", va="center", fontsize=12, zorder=4)
    for (kind, src, dst, op), route in zip(edges, routes):
        points = [position[p] for p in route]
        points[-1] = _on_outline(points[-1], points[-2], outline[dst])
        style = CONCAT_STYLE if kind == "concat" else OP_STYLE
        arrow = FancyArrowPatch(path=_smooth_path(points), arrowstyle="-|>", shrinkA=0, shrinkB=0, **style)
        arrow.set_gid(f"concat:{src}" if kind == "concat" else f"{kind}:{src}->{dst}:{op}")
        ax.add_patch(arrow)
        if op is not None:
            (x1, y1), (x2, y2) = position[route[0]], position[route[1]]
            at = (x2, y2) if len(route) > 2 else ((x1 + x2) / 2, (y1 + y2) / 2)   # a bend's slot is free
            ax.text(*at, op, ha="center", va="center", fontsize=8, zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})
    xs = [x for x, _ in position.values()]
    ax.set(xlim=(min(xs) - 1.0, max(xs) + 1.1), ylim=(min(ys) - 0.6, max(ys) + 0.6), aspect="equal")
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def _layered_positions(layer: dict, routes: list[list]) -> dict:
    """Positions of the nodes and of the bends of long edges (``(edge, layer)`` keys): x by layer, and
    within a layer ordered by the mean height of what leads into each (fewer crossings), stacked around 0."""
    into: dict = {}
    for route in routes:
        for a, b in zip(route, route[1:]):
            into.setdefault(b, []).append(a)
    members: dict[int, list] = {}
    for node in sorted(layer):
        members.setdefault(layer[node], []).append(node)
    for route in routes:
        for bend in route[1:-1]:
            members[bend[1]].append(bend)

    def height_of_inputs(member) -> float:
        return sum(position[a][1] for a in into[member]) / len(into[member])

    position: dict = {}
    for k in sorted(members):
        column = members[k]
        if k > 0:
            column.sort(key=height_of_inputs, reverse=True)
        slots = [SLOT["bend" if isinstance(m, tuple) else "node"] for m in column]
        y = (sum(slots) - slots[0] / 2 - slots[-1] / 2) / 2
        for i, member in enumerate(column):
            position[member] = (LAYER_GAP * k, y)
            if i + 1 < len(column):
                y -= (slots[i] + slots[i + 1]) / 2
    return position


def _on_outline(centre: tuple[float, float], towards: tuple[float, float],
                box: tuple[float, float] | None) -> tuple[float, float]:
    """Where the line from ``towards`` to a node's centre meets its outline (a circle, or a box of half-sizes)."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    length = math.hypot(dx, dy)
    ux, uy = dx / length, dy / length
    reach = NODE_RADIUS if box is None else min(box[0] / max(abs(ux), 1e-9), box[1] / max(abs(uy), 1e-9))
    return centre[0] + ux * reach, centre[1] + uy * reach


def _smooth_path(points: list[tuple[float, float]]):
    """A Catmull-Rom curve through every point (straight when there are two), as cubic Bezier pieces."""
    from matplotlib.path import Path as MplPath

    if len(points) == 2:
        return MplPath(points, [MplPath.MOVETO, MplPath.LINETO])
    padded = [points[0], *points, points[-1]]
    vertices, codes = [points[0]], [MplPath.MOVETO]
    for i in range(1, len(padded) - 2):
        before, a, b, after = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        vertices += [(a[0] + (b[0] - before[0]) / 6, a[1] + (b[1] - before[1]) / 6),
                     (b[0] - (after[0] - a[0]) / 6, b[1] - (after[1] - a[1]) / 6), b]
        codes += [MplPath.CURVE4] * 3
    return MplPath(vertices, codes)


def training_figure(runs_root: Path, spec: TableSpec) -> plt.Figure | None:
    """Per-epoch curves of the final runs of a table: one colour per method, one line per run."""
    rows, scales = [], []
    for method, runs in final_runs(runs_root, spec.stage).items():
        for run in runs:
            if run.not_run or not (run.dir / HISTORY).is_file():
                continue
            scales.append(run.scale)
            for h in read_history(run.dir / HISTORY, ("epoch",)):
                rows.append({"method": METHOD_LABELS.get(method, method), "run": str(run.dir.name), **h})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    keys = [k for k in CURVE_KEYS if k in frame and frame[k].notna().any()]
    keys = [k for k in keys if not (k.endswith("_loss") and k.replace("_loss", "_ppl") in keys)]  # ppl = exp(loss)
    if not keys:
        raise DartsError(f"runs/{spec.stage}: no curve in history.jsonl (expected one of {', '.join(CURVE_KEYS)})")
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    palette = method_colours(frame["method"])
    for ax, key in zip(axes[0], keys):
        sns.lineplot(data=frame, x="epoch", y=key, hue="method", units="run", estimator=None,
                     palette=palette, ax=ax, legend=ax is axes[0][-1])
        ax.set(xlabel="epoch", ylabel=CURVE_KEYS[key], title=CURVE_KEYS[key])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key.endswith("_ppl") and frame[key].max() > 10 * frame[key].min():
            ax.set_yscale("log")   # a language model's first epochs are orders of magnitude above its last
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1.0))
    set_title(fig, f"{spec.title}: training of the final runs", scales)
    fig.tight_layout()
    return fig


def ours_vs_paper_figure(table: pd.DataFrame, spec: TableSpec, tolerances: Compare) -> plt.Figure | None:
    """Our mean ± std per method as bars; the paper row it is diffed against as its mean ± std band
    (or, where the paper gives a single number, the ± tolerance `darts compare` allows, hatched)."""
    ours = table[(table["source"] == "ours") & (table["status"] == "ok")].reset_index(drop=True)
    if ours.empty:
        return None
    paper = table[table["source"] == "paper"].set_index("method")
    metrics = list(spec.metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 1.6 * len(ours) + 2) * len(metrics), 4.5),
                             squeeze=False)
    palette = method_colours(ours["method"])
    for ax, key in zip(axes[0], metrics):
        sns.barplot(data=ours, x="method", y=f"{key}_mean", hue="method", palette=palette, legend=False, ax=ax)
        ax.errorbar(range(len(ours)), ours[f"{key}_mean"], yerr=ours[f"{key}_std"].fillna(0.0), fmt="none",
                    ecolor="black", capsize=4, label="ours: std over runs")
        for i, row in ours.iterrows():
            ref = row["paper_row"]
            if not isinstance(ref, str) or not ref or ref not in paper.index:
                continue
            mean, std = paper.at[ref, f"{key}_mean"], paper.at[ref, f"{key}_std"]
            if not math.isfinite(mean):
                continue
            if math.isfinite(std) and std > 0:
                ax.fill_between([i - 0.45, i + 0.45], mean - std, mean + std, color="0.3", alpha=0.35,
                                label="paper: mean ± std")
            else:
                tol = getattr(tolerances, spec.tolerance)
                ax.fill_between([i - 0.45, i + 0.45], mean - tol, mean + tol, facecolor="none", hatch="///",
                                edgecolor="0.2", label=f"paper ± compare.{spec.tolerance} (no std given)")
            ax.hlines(mean, i - 0.45, i + 0.45, colors="black", linestyles="--", label="paper: mean")
        ax.set(xlabel="", ylabel=f"{key.replace('_', ' ')} ({spec.unit})", title=key.replace("_", " "))
        ax.tick_params(axis="x", labelrotation=15)
    legend = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=9)
    set_title(fig, f"{spec.title}: ours against the paper", ours["scale"])
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def pdf_dir(png_dir: Path) -> Path:
    """PDFs sit in a sibling folder (figures_pdf/): DVC's image plots take a folder of images only."""
    return png_dir.with_name(f"{png_dir.name}_pdf")


def save_figure(fig: plt.Figure, out_dir: Path, name: str) -> Path:
    """``out_dir/<name>.png`` and its ``<name>.pdf`` in ``pdf_dir(out_dir)``; returns the PNG's path."""
    for path in (out_dir / f"{name}.png", pdf_dir(out_dir) / f"{name}.pdf"):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=DPI)
    plt.close(fig)
    return out_dir / f"{name}.png"


# Every figure's file stem, by report section: the one place the names are defined (render_all uses
# them; figure_names lists them for dvc.yaml's image plots). Saved as <stem>.png and <stem>.pdf.
FIGURES = {
    "search": "search_progress_{space}",
    "collapse": "collapse_{space}",
    "alphas": "alphas_{space}_{cell}_{order}-s{seed}",     # one per search run and cell
    "cells": "cell_{space}_{method}_{cell}",               # one per selection (runs/select_<space>/<method>)
    "training": "training_{dataset}",                      # per-epoch curves of the final runs (LM: perplexity)
    "vs_paper": "vs_paper_{table}",
}


def figure_name(group: str, **fields: object) -> str:
    return FIGURES[group].format(**fields)


def figure_names() -> list[str]:
    """Every figure stem ``darts tabulate`` can write, ``*`` standing for a run's order, seed or method
    (which runs exist depends on the scale); a figure is written only when its runs exist."""
    per_space = [{"space": space} for space in CELLS]
    per_cell = [{"space": space, "cell": cell} for space, cells in CELLS.items() for cell in cells]
    per_table = [{"dataset": spec.dataset, "table": spec.key} for spec in SPECS]
    names: dict[str, None] = {}
    for group, template in FIGURES.items():
        combos = per_cell if "{cell}" in template else per_space if "{space}" in template else per_table
        names.update(dict.fromkeys(figure_name(group, order="*", seed="*", method="*", **c) for c in combos))
    return list(names)


def render_all(runs_root: Path, tables: dict[str, pd.DataFrame], out_dir: Path,
               tolerances: Compare) -> dict[str, list[Path]]:
    """Every figure the outputs allow, saved under ``out_dir``; PNG paths grouped by report section."""
    sns.set_theme(context="notebook", style="whitegrid")
    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[Path]] = {group: [] for group in FIGURES}
    for space in ("cnn", "rnn"):
        if (fig := search_progress_figure(runs_root, space)) is not None:
            made["search"].append(save_figure(fig, out_dir, figure_name("search", space=space)))
        if (fig := collapse_figure(runs_root, space)) is not None:
            made["collapse"].append(save_figure(fig, out_dir, figure_name("collapse", space=space)))
        for search in search_runs(runs_root, space):
            for cell in CELLS[space]:
                name = figure_name("alphas", space=space, cell=cell, **search.label)
                made["alphas"].append(save_figure(alpha_figure(search, space, cell), out_dir, name))
        made["cells"].extend(_cell_graphs(runs_root, space, out_dir))
    for spec in SPECS:
        if (fig := training_figure(runs_root, spec)) is not None:
            made["training"].append(save_figure(fig, out_dir, figure_name("training", dataset=spec.dataset)))
        if (fig := ours_vs_paper_figure(tables[spec.key], spec, tolerances)) is not None:
            made["vs_paper"].append(save_figure(fig, out_dir, figure_name("vs_paper", table=spec.key)))
    return made


def _cell_graphs(runs_root: Path, space: str, out_dir: Path) -> list[Path]:
    """The cells chosen by each selection (``runs/select_<space>/<method>/genotype.json``)."""
    made = []
    for method_dir in (p for p in run_dirs(select_root(runs_root, space)) if (p / GENOTYPE).is_file()):
        genotype = load_genotype(method_dir / GENOTYPE, space)
        scales = [_meta_scale(c / META) for c in run_dirs(method_dir / CANDIDATES) if (c / META).is_file()]
        label = METHOD_LABELS.get(method_dir.name, method_dir.name)
        for cell in CELLS[space]:
            title = scaled_title(f"{label}: {cell} cell", scales or [None])
            name = figure_name("cells", space=space, method=method_dir.name, cell=cell)
            made.append(save_figure(cell_figure(genotype, cell, title), out_dir, name))
    return made


def _meta_scale(path: Path) -> str | None:
    from darts.io import read_json

    return (read_json(path).get("params") or {}).get("scale")


def _marker(frame: pd.DataFrame) -> str | None:
    """Dots on the epochs while they can be told apart."""
    return "o" if frame["epoch"].nunique() <= 20 else None


def _metric(run: Run, key: str) -> float:
    if key not in run.metrics:
        raise DartsError(f"{run.dir / 'metrics.json'}: missing key '{key}'")
    return float(run.metrics[key])


def _skip_count(row: dict, space: str, path: Path) -> int:
    """``skip_connects`` as recorded, else counted in the epoch's derived genotype."""
    if row.get("skip_connects") is not None:
        return int(row["skip_connects"])
    genotype = row.get("genotype")
    if not isinstance(genotype, dict):
        raise DartsError(f"{path}: epoch {row['epoch']} has neither 'skip_connects' nor 'genotype'")
    cell = genotype.get("normal" if space == "cnn" else "recurrent") or []
    return sum(1 for pair in cell if (pair["op"] if isinstance(pair, dict) else pair[0]) == SKIP_OP[space])


def _state(space: str, index: int) -> str:
    if space == "cnn":
        return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, str(index - 2))
    return str(index)
