"""Each figure is built from the planted outputs (the matplotlib objects are inspected, not just the
files), carries the smoke marking when the data is smoke-scale, and `darts tabulate` writes them all."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest

from darts import rundir
from darts.cli import main
from darts.config import load_section
from darts.genotypes import load_genotype
from darts.report import figures as F
from darts.report.headline import headline_metrics
from darts.report.runs import search_runs
from darts.report.tables import SPEC_BY_KEY, build_tables
from test_report_planted import (CIFAR_ERRORS, CNN_EDGES, CNN_OPS, PTB_PPL, RNN_EDGES, RNN_OPS, plant_runs,
                                 softmax_rows)

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> Path:
    return plant_runs(tmp_path_factory.mktemp("smoke"), scale="smoke", gpu=False, epochs=4, seeds=SEEDS)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    F.plt.close("all")


def data_lines(ax) -> list:
    """The plotted lines (seaborn adds empty ones for its legend)."""
    return [line for line in ax.lines if len(line.get_ydata())]


def title(fig) -> str:
    return fig._suptitle.get_text()


def test_search_progress_from_the_search_history_has_a_line_per_seed(smoke_runs):
    fig = F.search_progress_figure(smoke_runs, "cnn")
    assert [ax.get_title() for ax in fig.axes] == ["first order", "second order"]
    for ax in fig.axes:
        lines = data_lines(ax)
        assert len(lines) == len(SEEDS)
        # planted: valid_acc = 30 + 10 * epoch + seed
        assert sorted(tuple(line.get_ydata()) for line in lines) == [
            tuple(30.0 + 10 * e + s for e in range(1, 5)) for s in SEEDS]
    assert "search network's own validation score" in title(fig) and "SMOKE SCALE" in title(fig)


def test_search_progress_prefers_retrained_snapshots(tmp_path):
    runs = plant_runs(tmp_path, scale="paper")
    for seed in (0, 1):
        snapshot = rundir.snapshot_dir(runs, "rnn", "second", seed)
        for epoch in (10, 20):
            out = rundir.snapshot_epoch_dir(snapshot, epoch)
            out.mkdir(parents=True)
            (out / rundir.METRICS).write_text(json.dumps({"valid_ppl": 100.0 - epoch - seed}))
            (out / rundir.META).write_text(json.dumps({"seed": seed, "params": {"scale": "paper"}}))
        (snapshot / rundir.SNAPSHOTS).write_text(json.dumps({
            "space": "rnn", "order": "second", "seed": seed, "metric": "valid_ppl",
            "snapshots": [{"epoch": e, "score": 100.0 - e - seed} for e in (10, 20)]}))
    (rundir.snapshot_root(runs, "rnn") / "first-s9").mkdir()   # unfinished: no snapshots.json yet
    fig = F.search_progress_figure(runs, "rnn")
    assert "retrained snapshots" in title(fig) and "SCALE" not in title(fig)
    (ax,) = fig.axes
    lines = data_lines(ax)
    assert len(lines) == 2
    assert sorted(tuple(line.get_ydata()) for line in lines) == [(89.0, 79.0), (90.0, 80.0)]


def test_alpha_figure_has_a_panel_per_edge_and_a_line_per_op(smoke_runs):
    search = search_runs(smoke_runs, "cnn", "second")[1]
    fig = F.alpha_figure(search, "cnn", "reduce")
    assert len(fig.axes) == CNN_EDGES
    assert all(len(data_lines(ax)) == CNN_OPS for ax in fig.axes)
    # edge 0, every op, over the 4 epochs: the planted softmax of the reduce cell (seed + 1)
    planted = np.array([softmax_rows(CNN_EDGES, CNN_OPS, e, 2)[0] for e in range(1, 5)])
    drawn = np.array([line.get_ydata() for line in data_lines(fig.axes[0])]).T
    np.testing.assert_allclose(drawn, planted)
    assert "reduce cell" in title(fig) and "seed 1" in title(fig) and "SMOKE SCALE" in title(fig)

    rnn = F.alpha_figure(search_runs(smoke_runs, "rnn", "first")[0], "rnn", "recurrent")
    assert len(rnn.axes) == RNN_EDGES and all(len(data_lines(ax)) == RNN_OPS for ax in rnn.axes)


def test_alpha_figure_rejects_a_wrong_shape_naming_the_file(smoke_runs, tmp_path):
    search = search_runs(smoke_runs, "cnn", "first")[0]
    bad = tmp_path / "first-s0"
    bad.mkdir()
    rows = [json.loads(line) for line in (search.dir / "history.jsonl").read_text().splitlines()]
    rows[1]["alphas_softmax"]["normal"] = rows[1]["alphas_softmax"]["normal"][:10]
    (bad / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    search.dir = bad
    with pytest.raises(F.DartsError, match=f"{bad}/history.jsonl"):
        F.alpha_figure(search, "cnn", "normal")


def test_collapse_figure_shows_skips_per_seed_and_eigenvalues_only_where_recorded(smoke_runs):
    fig = F.collapse_figure(smoke_runs, "cnn")
    skips_first, skips_second, eig_first, eig_second = fig.axes
    assert len(data_lines(skips_first)) == len(SEEDS) == len(data_lines(eig_second))
    assert [t.get_text() for t in eig_first.texts] == ["not recorded"]  # first order recorded null
    assert sorted(tuple(line.get_ydata()) for line in data_lines(skips_second)) == [
        tuple(min(e + s, 8) for e in range(1, 5)) for s in SEEDS]
    assert "SMOKE SCALE" in title(fig)


def drawn_edges(fig, kind: str) -> list[tuple[int, int, str]]:
    """(src, dst, op) of every edge patch of ``kind`` (its gid is ``kind:src->dst:op``)."""
    found = []
    for patch in fig.axes[0].patches:
        gid = patch.get_gid() or ""
        if gid.startswith(f"{kind}:"):
            ends, op = gid[len(kind) + 1:].rsplit(":", 1)
            src, dst = ends.split("->")
            found.append((int(src), int(dst), op))
    return sorted(found)


def edge_labels(fig) -> list[str]:
    """The texts written on edges (node names are digits or math)."""
    return sorted(t.get_text() for t in fig.axes[0].texts if not t.get_text().isdigit() and "$" not in t.get_text())


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_cnn_cell_drawing_has_one_labelled_edge_per_genotype_edge(cell):
    genotype = load_genotype("DARTS_V2", "cnn")
    fig = F.cell_figure(genotype, cell, f"{cell} cell\nSMOKE SCALE: not a reproduction")
    pairs = getattr(genotype, cell)
    assert drawn_edges(fig, "op") == sorted((src, 2 + i // 2, op) for i, (op, src) in enumerate(pairs))
    assert edge_labels(fig) == sorted(op for op, _ in pairs)
    assert sorted(p.get_gid() for p in fig.axes[0].patches if (p.get_gid() or "").startswith("concat:")) == [
        f"concat:{n}" for n in getattr(genotype, f"{cell}_concat")]
    assert "SMOKE SCALE" in fig.axes[0].get_title()


def test_rnn_cell_drawing_has_one_labelled_edge_per_genotype_edge(smoke_runs):
    planted = smoke_runs / "select_rnn" / "first" / "genotype.json"
    for genotype in (load_genotype("DARTS_V2", "rnn"), load_genotype(planted, "rnn")):
        fig = F.cell_figure(genotype, "recurrent", "recurrent")
        assert drawn_edges(fig, "op") == sorted((src, dst, op) for dst, (op, src) in enumerate(genotype.recurrent, 1))
        assert drawn_edges(fig, "input") == [(-2, 0, "tanh"), (-1, 0, "tanh")]
        assert edge_labels(fig) == sorted([op for op, _ in genotype.recurrent] + ["tanh", "tanh"])
        concat = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("concat:")]
        assert len(concat) == len(genotype.concat)


@pytest.mark.parametrize("space, cell, nodes", [("cnn", "normal", 4), ("cnn", "reduce", 4), ("rnn", "recurrent", 9)])
def test_cell_drawing_keeps_nodes_apart_and_edges_off_other_nodes(space, cell, nodes):
    """Readable: no two nodes overlap, and no op edge runs through a node it does not join (DARTS_V2's
    cells have edges that skip a layer, which a straight line would draw through node 1 or 2)."""
    from matplotlib.patches import Circle

    ax = F.cell_figure(load_genotype("DARTS_V2", space), cell, cell).axes[0]
    offset = 2 if space == "cnn" else 0    # gids use the genotype's state index, circles show the node name
    circles = {int(t.get_text()) + offset: p.center for p in ax.patches if isinstance(p, Circle)
               for t in ax.texts if t.get_position() == p.center}
    assert len(circles) == nodes
    centres = list(circles.values())
    gaps = [np.hypot(a[0] - b[0], a[1] - b[1]) for i, a in enumerate(centres) for b in centres[i + 1:]]
    assert min(gaps) > 2 * F.NODE_RADIUS
    for src, dst, op in drawn_edges(ax.figure, "op"):
        patch = next(p for p in ax.patches if p.get_gid() == f"op:{src}->{dst}:{op}")
        curve = np.concatenate([np.linspace(a, b, 25) for poly in patch.get_path().to_polygons(closed_only=False)
                                for a, b in zip(poly, poly[1:])])
        for node, (x, y) in circles.items():
            if node not in (src, dst):
                assert np.hypot(curve[:, 0] - x, curve[:, 1] - y).min() > F.NODE_RADIUS, (src, dst, node)


def test_training_curves_have_a_line_per_run_coloured_by_method(smoke_runs):
    fig = F.training_figure(smoke_runs, SPEC_BY_KEY["table1_cifar10"])
    runs = sum(len(v) for v in CIFAR_ERRORS.values())
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "training accuracy (%)"]
    for ax in fig.axes:
        lines = data_lines(ax)
        assert len(lines) == runs
        assert len({tuple(line.get_color()) for line in lines}) == len(CIFAR_ERRORS)


def test_language_model_curves_show_train_and_valid_perplexity_per_run(smoke_runs, tmp_path):
    fig = F.training_figure(smoke_runs, SPEC_BY_KEY["table2_ptb"])
    assert [ax.get_title() for ax in fig.axes] == ["training perplexity", "validation perplexity"]
    for ax, top in zip(fig.axes, (200.0, 220.0)):   # planted: train_ppl = 200 / epoch, valid_ppl = 220 / epoch
        lines = data_lines(ax)
        assert len(lines) == len(PTB_PPL)
        assert all(tuple(line.get_ydata()) == tuple(top / e for e in range(1, 5)) for line in lines)
        assert ax.get_yscale() == "linear"       # 4 epochs: within a decade
    long = plant_runs(tmp_path, scale="smoke", gpu=False, epochs=12, seeds=(0,), orders=("second",))
    assert [ax.get_yscale() for ax in F.training_figure(long, SPEC_BY_KEY["table4_wikitext2"]).axes] == ["log", "log"]


def test_ours_vs_paper_bars_and_paper_bands(smoke_runs):
    table = build_tables(smoke_runs, smoke_runs.parent / "data")["table1_cifar10"]
    fig = F.ours_vs_paper_figure(table, SPEC_BY_KEY["table1_cifar10"], load_section("compare", PARAMS))
    (ax,) = fig.axes
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == pytest.approx(sorted(np.mean(v) for v in CIFAR_ERRORS.values()))
    bands = [c for c in ax.collections if type(c).__name__ == "FillBetweenPolyCollection"]
    assert len(bands) == 3  # each paper row (first, second, random) has a std
    band_extents = sorted(tuple(np.round(b.get_paths()[0].get_extents().intervaly, 6)) for b in bands)
    assert (round(2.76 - 0.09, 6), round(2.76 + 0.09, 6)) in band_extents
    assert "SMOKE SCALE" in title(fig)


def test_single_number_paper_rows_get_the_compare_tolerance_band(smoke_runs):
    table = build_tables(smoke_runs, smoke_runs.parent / "data")["table2_ptb"]
    fig = F.ours_vs_paper_figure(table, SPEC_BY_KEY["table2_ptb"], load_section("compare", PARAMS, ptb_ppl=2.5))
    valid, _ = fig.axes
    bands = [c for c in valid.collections if type(c).__name__ == "FillBetweenPolyCollection"]
    extents = sorted(tuple(np.round(b.get_paths()[0].get_extents().intervaly, 6)) for b in bands)
    assert extents == [(55.6, 60.6), (57.7, 62.7)]  # 58.1 and 60.2 ± 2.5
    assert "paper ± compare.ptb_ppl (no std given)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_tabulate_writes_tables_figures_and_a_smoke_marked_report(tmp_path):
    runs = plant_runs(tmp_path, scale="smoke", gpu=False, seeds=(0, 1), orders=("second",))
    out = tmp_path / "results"
    stale = out / "figures" / "alphas_cnn_normal_first-s0.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert main(["tabulate", "--runs", str(runs), "--out", str(out), "--params", str(PARAMS),
                 "--deviations", str(PARAMS.parent / "DEVIATIONS.md")]) == 0
    for key in SPEC_BY_KEY:
        assert "smoke" in (out / f"{key}.csv").read_text()
    pngs = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert pngs == sorted(p.stem for p in (out / "figures_pdf").glob("*.pdf"))
    assert not list((out / "figures").glob("*.pdf"))      # dvc.yaml's image plots: a folder of images
    assert not stale.exists()
    alphas = {f"alphas_{space}_{cell}_second-s{seed}"
              for space, cells in F.CELLS.items() for cell in cells for seed in (0, 1)}
    expected = {"search_progress_cnn", "search_progress_rnn", "collapse_cnn", "collapse_rnn", *alphas,
                "cell_cnn_second_normal", "cell_cnn_second_reduce", "cell_rnn_second_recurrent",
                "cell_cnn_random_normal", "cell_cnn_random_reduce", "cell_rnn_random_recurrent",
                "training_cifar10", "training_ptb", "training_wikitext2",
                "vs_paper_table1_cifar10", "vs_paper_table2_ptb", "vs_paper_table4_wikitext2"}
    assert set(pngs) == expected   # ImageNet did not run at smoke scale: no training or vs_paper figure for it
    # every name is one figure_names() documents (what dvc.yaml declares as image plots), each pattern used
    patterns = F.figure_names()
    assert all(sum(fnmatch.fnmatchcase(stem, p) for p in patterns) == 1 for stem in pngs)
    assert {p for p in patterns if not any(fnmatch.fnmatchcase(stem, p) for stem in pngs)} == {
        "training_imagenet", "vs_paper_table3_imagenet"}
    headline = json.loads((out / "metrics.json").read_text())
    assert headline == headline_metrics(runs) and set(headline) == {"cifar10", "ptb", "wikitext2", "search_cnn",
                                                                   "search_rnn"}
    for stem in pngs:
        png = (out / "figures" / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
        assert (out / "figures_pdf" / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    report = (out / "REPORT.md").read_text()
    assert report.splitlines()[0].startswith("# DARTS reproduction report: SMOKE SCALE, not a reproduction")
    assert "![vs_paper_table1_cifar10](figures/vs_paper_table1_cifar10.png)" in report
    assert "not run: no ImageNet data" in report
    assert "## Deviations from the paper's protocol" in report and "\n### Protocol\n" in report
    assert "\n# Deviations" not in report
