"""``evolve report``: one self-contained HTML page on a run, for reading or sharing.

The page shows the run's state, its fitness over time, the collapse monitor's history
(pass@k, live clades, genome distance, solved-set entropy; see ``_diversity``), how
each operator fared, and the best candidate's lineage. Every plot is a PNG embedded
as a ``data:`` URI and the page names no other resource, so it opens offline and can
be mailed as one file. It reads the archive only (a running run may be reported on)
and never writes. matplotlib is optional (the ``report`` extra) and imported here
only, with the Agg canvas and no pyplot, so no global backend state is touched.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archive import ArchiveIndex, ArchiveStorage, Candidate, Status

from ._diversity import COLLAPSE_KEY, collapse_signature, snapshot
from ._errors import CladeforgeError
from ._report import children_report, summary

#: the collapse signature's window (snapshots) in the report
SIGNATURE_WINDOW = 5
MISSING_MATPLOTLIB = "evolve report needs matplotlib: pip install 'cladeforge[report]'"
_MAX_CURVES = 12  # pass@k curves drawn at most (evenly chosen, the latest always)

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top}pre{margin:0;white-space:pre-wrap;max-width:48em}
.warn{background:#fff3cd;padding:.5em;border:1px solid #e0c060}img{max-width:100%}"""


def html_report(storage: ArchiveStorage, *, state: str | None = None) -> str:
    """The run in ``storage`` as one HTML document (a string), read-only.

    ``state`` overrides the stored run state, for a caller that knows better (e.g.
    "interrupted" when the meta says "running" but no process holds the run's lock).
    Raises ``CladeforgeError`` when matplotlib is not installed.
    """
    plot = _Plotter()
    index = storage.index
    meta_config = storage.get_meta("config") or {}
    path = getattr(storage, "path", None)
    name = meta_config.get("name") or (Path(path).parent.name if path else "run")
    state = state or storage.get_meta("state", "created")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Cladeforge run {_e(name)}</title><style>{_STYLE}</style></head><body>",
        *_header(name, state, storage.get_meta("stop_reason"), index),
        *_fitness(plot, index),
        *_collapse(plot, index, storage.get_meta(COLLAPSE_KEY)),
        *_operators(plot, index),
        *_lineage(index),
        "</body></html>",
    ]
    return "\n".join(parts)


# -- sections ---------------------------------------------------------------------------------
def _header(name: str, state: str, stop_reason: str | None, index: ArchiveIndex) -> list[str]:
    counts = index.counts_by_status()
    rows = [[s.value, counts[s]] for s in Status]
    best_train, best_validation = index.best("train"), index.best("validation")
    chosen = summary(index)
    lines = [f"<h1>Run {_e(name)}</h1>",
             f"<p>State: <b>{_e(state)}</b>" + (f" ({_e(stop_reason)})" if stop_reason else "")
             + f"; {len(index)} candidates, generation {max(index.max_generation(), 0)}.</p>",
             _table(["status", "candidates"], rows),
             _table(["best on", "score", "candidate"], [
                 ["train", _num(_score(best_train, "train")), _id(best_train)],
                 ["validation", _num(_score(best_validation, "validation")),
                  _id(best_validation)]])]
    if chosen["best"] is not None:
        lines.append(f"<p>Best candidate: #{chosen['best']['id']} (chosen by "
                     f"{_e(chosen['best_by'])} score).</p>")
    return lines


def _fitness(plot: _Plotter, index: ArchiveIndex) -> list[str]:
    def draw(fig: Any) -> None:
        for ax, split in zip(fig.subplots(1, 2), ("train", "validation"), strict=True):
            scored = index.scored(split)
            ax.set_title(split)
            ax.set_xlabel("candidate id")
            plot.whole_numbers(ax.xaxis)
            if not scored:
                ax.text(0.5, 0.5, "no scores", ha="center", transform=ax.transAxes)
                continue
            ids = np.array([c.id for c in scored])
            values = np.array([c.scores[split].mean for c in scored])
            ax.scatter(ids, values, s=8, alpha=0.35, label="candidate")
            ax.step(ids, np.maximum.accumulate(values), where="post", label="best so far")
            ax.plot(ids, np.cumsum(values) / np.arange(1, len(values) + 1), label="mean so far")
            ax.legend(fontsize="small")

    return ["<h2>Fitness</h2>", plot.image(draw, "best-so-far and mean fitness", (10, 3.5))]


def _collapse(plot: _Plotter, index: ArchiveIndex, history: Any) -> list[str]:
    lines = ["<h2>Collapse monitor</h2>"]
    if isinstance(history, list) and history:
        warning = collapse_signature(history, min(SIGNATURE_WINDOW, max(len(history), 2)))
        if warning:
            lines.append(f'<p class="warn">{_e(warning)}</p>')
        lines.append(f"<p>{len(history)} snapshots recorded.</p>")
        lines.append(_pass_at_k_image(plot, history))
        lines.append(plot.image(lambda fig: _draw_over_time(plot, fig, history),
                                "live clades, genome distance and solved-set entropy",
                                (10, 3)))
        lines.append(_snapshot_table(history[-1], "latest snapshot"))
        return lines
    split = _fresh_split(index)
    now = snapshot(index, generation=max(index.max_generation(), 0), candidates=len(index),
                   probe_split=split, rng=np.random.default_rng(0))
    lines.append("<p>This run recorded no collapse monitor; the values below are computed "
                 f"now from the current archive, on the {_e(split)} split.</p>")
    if split != "probe":
        lines.append("<p>No living candidate has probe scores: pass@k and entropy use "
                     f"the {_e(split)} split, whose examples may differ between candidates."
                     "</p>")
    if any(v is not None for v in now["pass_at_k"].values()):
        lines.append(_pass_at_k_image(plot, [now]))
    lines.append(_snapshot_table(now, "now"))
    return lines


def _operators(plot: _Plotter, index: ArchiveIndex) -> list[str]:
    report = children_report(index)
    lines = ["<h2>Operators</h2>"]
    if not report["made"]:
        return [*lines, "<p>No child finished yet.</p>"]
    ops = report["by_operator"]
    rows = [[op, p["made"], p["valid"], _pct(p["valid_rate"]), p["repaired"],
             ", ".join(f"{k} {v}" for k, v in p["by_reason"].items()) or "-"]
            for op, p in ops.items()]
    rows.append(["all", report["made"], report["valid"], _pct(report["valid_rate"]),
                 report["repaired"], ", ".join(f"{k} {v}" for k, v in
                                               report["by_reason"].items()) or "-"])

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        names = list(ops)
        ax.bar(names, [ops[op]["valid_rate"] for op in names])
        for i, op in enumerate(names):
            ax.text(i, ops[op]["valid_rate"], f"{ops[op]['valid']}/{ops[op]['made']}",
                    ha="center", va="bottom", fontsize="small")
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("valid / made")
        ax.tick_params(axis="x", labelrotation=30)

    return [*lines, _table(["operator", "made", "valid", "valid rate", "repaired",
                            "not valid"], rows),
            plot.image(draw, "valid children per operator", (8, 3.5))]


def _lineage(index: ArchiveIndex) -> list[str]:
    best = summary(index)["best"]
    lines = ["<h2>Lineage of the best candidate</h2>"]
    if best is None:
        return [*lines, "<p>No candidate has been evaluated yet.</p>"]
    chain = [index.get(i) for i in reversed(index.descent(best["id"]))]
    rows = [[step, c.id, c.generation, c.operator,
             ", ".join(f"#{p}" for p in c.parent_ids) or "-", _num(c.score("train")),
             _num(c.score("validation")), _Raw(f"<pre>{_e(_genome_text(c))}</pre>")]
            for step, c in enumerate(chain)]
    return [*lines, "<p>From its founder along first parents (a merge's other parents "
                    "are listed, not followed).</p>",
            _table(["step", "id", "generation", "operator", "parents", "train",
                    "validation", "genome"], rows, cls="lineage")]


# -- pieces ---------------------------------------------------------------------------------
class _Plotter:
    """Draws figures with matplotlib's Agg canvas into ``<img>`` tags with ``data:`` URIs."""

    def __init__(self) -> None:
        try:
            from matplotlib import colormaps
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError as exc:
            raise CladeforgeError(MISSING_MATPLOTLIB) from exc
        self._figure, self._canvas, self.colormaps = Figure, FigureCanvasAgg, colormaps
        self._locator = MaxNLocator

    def whole_numbers(self, *axes: Any) -> None:
        """Ticks only at whole numbers on these axes (candidate ids, counts)."""
        for axis in axes:
            axis.set_major_locator(self._locator(integer=True))

    def image(self, draw: Callable[[Any], None], alt: str,
              size: tuple[float, float]) -> str:
        fig = self._figure(figsize=size, layout="constrained")
        self._canvas(fig)
        draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def _pass_at_k_image(plot: _Plotter, history: Sequence[Mapping[str, Any]]) -> str:
    chosen = sorted({round(i) for i in np.linspace(0, len(history) - 1,
                                                    min(len(history), _MAX_CURVES))})
    cmap = plot.colormaps["viridis"]

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        drawn: set[int] = set()
        for n, i in enumerate(chosen):
            snap = history[i]
            points = sorted((int(k), v) for k, v in snap.get("pass_at_k", {}).items()
                            if v is not None)
            if points:
                ks, values = zip(*points, strict=True)
                drawn.update(ks)
                ax.plot(ks, values, marker="o", color=cmap(n / max(len(chosen) - 1, 1)),
                        label=f"generation {snap.get('generation')}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(drawn), [str(k) for k in sorted(drawn)])
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize="small")

    return plot.image(draw, "pass@k per generation", (7, 3.5))


def _draw_over_time(plot: _Plotter, fig: Any, history: Sequence[Mapping[str, Any]]) -> None:
    x = [s.get("candidates", i) for i, s in enumerate(history)]
    for ax, key, title in zip(fig.subplots(1, 3), ("live_clades", "mean_distance",
                                                   "solved_entropy"),
                              ("live clades", "mean genome distance",
                               "solved-set entropy (bits)"), strict=True):
        ax.plot(x, [np.nan if s.get(key) is None else s[key] for s in history], marker=".")
        ax.set_title(title)
        ax.set_xlabel("candidates")
        plot.whole_numbers(ax.xaxis)
        if key == "live_clades":  # a count: from 0, in whole numbers
            ax.set_ylim(bottom=0)
            plot.whole_numbers(ax.yaxis)


def _snapshot_table(snap: Mapping[str, Any], label: str) -> str:
    passes = ", ".join(f"pass@{k} {_num(v)}" for k, v in snap.get("pass_at_k", {}).items())
    mrca = snap.get("mrca")
    rows = [["generation", snap.get("generation")], ["population", snap.get("population")],
            ["pass@k", passes or "-"], ["live clades", snap.get("live_clades")],
            [f"most recent common ancestor of the top {snap.get('top')}",
             "none (no shared ancestor)" if mrca is None
             else f"#{mrca} at depth {snap.get('mrca_depth')}"],
            ["mean genome distance", _num(snap.get("mean_distance"))],
            ["solved-set entropy (bits)", _num(snap.get("solved_entropy"))]]
    return f"<h3>{_e(label)}</h3>" + _table(["measure", "value"], rows)


def _fresh_split(index: ArchiveIndex) -> str:
    """The split a fresh snapshot reads: probe when a living candidate has it, else
    validation, else train."""
    living = [index.get(int(i)) for i in index.population_ids()]
    for split in ("probe", "validation"):
        if any(split in c.scores for c in living):
            return split
    return "train"


def _genome_text(c: Candidate) -> str:
    genome = c.genome
    lines = [f"task prompt: {p}" for p in genome.get("task_prompts", ())]
    lines += [f"context: {x}" for x in genome.get("context", ())]
    if genome.get("commit"):
        lines.append(f"commit: {genome['commit']}")
    if genome.get("mutation_prompt"):
        lines.append(f"mutation prompt: {genome['mutation_prompt']}")
    return "\n".join(lines)


class _Raw(str):
    """Table cell content that is already HTML."""


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    def cell(value: Any) -> str:
        return value if isinstance(value, _Raw) else _e("-" if value is None else value)

    attr = f' class="{cls}"' if cls else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return (f"<table{attr}><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
            + body + "</table>")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _score(c: Candidate | None, split: str) -> float | None:
    return None if c is None else c.score(split)


def _id(c: Candidate | None) -> str:
    return "-" if c is None else f"#{c.id}"
