"""``pspike report``: what the deployed network did, next to the float model, as HTML, Markdown and JSON.

Figures (PNG, matplotlib's Agg backend): a spike raster of one test sample, the active-neuron ratio
over time per layer, the histogram of per-neuron mean spike probability, the energy breakdown under
each cost model next to the non-spiking counterpart, and float vs deployed spike rates per neuron.

Publishing: everything is rendered into a staging folder inside ``DIR`` first; files then replace
their old versions one rename at a time (figures, JSON, Markdown, the HTML last). Every file carries
the same ``run_id``, so a report interrupted between two renames is recognisable, and the HTML page
embeds its figures, so the page people open is always whole and self-consistent.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .export.checkpoint import Checkpoint
from .fileio import remove_stale
from .graph import Netlist
from .verify import Activity

#: a neuron whose mean spike probability is below this counts as "near zero" (the paper's Figure 4)
NEAR_ZERO = 0.05
RASTER_MAX_NEURONS = 128
FIGURES = ("raster", "active_ratio", "probability_histogram", "energy", "rates")
#: drawn when sparsity-sweep results are given (benchmarks/sparsity_pareto.py)
PARETO_FIGURE = "pareto"
#: the cost model the Pareto figure prices energy with
PARETO_COST_MODEL = "45nm"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int):
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def figure_raster(activity: Activity, path: Path, sample: int = 0) -> dict:
    """Output spikes of every layer for one test sample (deployed network)."""
    plt = _plt()
    dep = activity.deployed
    n_layers = len(dep.spikes_out)
    length = int(activity.valid[sample].sum())
    fig, axes = plt.subplots(n_layers, 1, figsize=(9, 1.2 + 1.6 * n_layers), sharex=True, squeeze=False)
    counts = []
    for l, ax in enumerate(axes[:, 0]):
        spikes = dep.spikes_out[l][sample, :length, :RASTER_MAX_NEURONS]
        t, h = np.nonzero(spikes)
        ax.scatter(t, h, s=2, marker="|", color=_colors(n_layers)[l], linewidths=0.8)
        ax.set_ylim(-1, spikes.shape[1])
        ax.set_ylabel(f"layer {l}\nneuron")
        counts.append(int(spikes.sum()))
    axes[-1, 0].set_xlabel("time step")
    label = "" if activity.labels is None else f" (label {int(activity.labels[sample])})"  # --inputs without labels
    axes[0, 0].set_title(f"Output spikes of the deployed network, test sample {sample}{label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"sample": sample, "steps": length, "spikes_per_layer": counts}


def figure_active_ratio(activity: Activity, path: Path) -> dict:
    """Fraction of a layer's neurons that spike at each step, averaged over samples."""
    plt = _plt()
    dep = activity.deployed
    valid = activity.valid
    n_valid = np.maximum(valid.sum(0), 1)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    curves = {}
    colors = _colors(len(dep.spikes_out))
    for l, (d, f) in enumerate(zip(dep.spikes_out, activity.float_out)):
        d_curve = (d.mean(-1) * valid).sum(0) / n_valid
        f_curve = (f.mean(-1) * valid).sum(0) / n_valid
        ax.plot(d_curve, color=colors[l], label=f"layer {l} deployed")
        ax.plot(f_curve, color=colors[l], linestyle=":", alpha=0.8, label=f"layer {l} float")
        curves[str(l)] = {"deployed_mean": float(d_curve[valid.any(0)].mean()),
                          "deployed_max": float(d_curve.max()), "float_mean": float(f_curve[valid.any(0)].mean())}
    ax.set_xlabel("time step")
    ax.set_ylabel("active-neuron ratio")
    ax.set_ylim(0, 1)
    ax.set_title("Active-neuron ratio over time (output samplers; solid: deployed, dotted: float)")
    ax.legend(ncol=2, fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return curves


def probability_stats(activity: Activity) -> dict:
    """Per-neuron mean spike probability (float model, both samplers), pooled over layers."""
    out = {}
    for key, probs in (("output", activity.float_prob_out), ("input", activity.float_prob_in)):
        means = np.concatenate([p[activity.valid].mean(0) for p in probs if p is not None] or [np.zeros(0)])
        out[key] = {"neurons": int(means.size), "near_zero_threshold": NEAR_ZERO,
                    "fraction_near_zero": float((means < NEAR_ZERO).mean()),
                    "median": float(np.median(means)), "values": means.tolist()}
    return out


def figure_probability_histogram(stats: dict, path: Path, deterministic: bool = False) -> None:
    """Stochastic samplers: the mean of each neuron's spike probability; deterministic neurons
    (SiLIF): the probability is the spike itself, so the histogram is of firing rates."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    names = {"output": "neuron outputs", "input": "layer inputs"} if deterministic else \
        {"output": "output sampler", "input": "input sampler"}
    for ax, key in zip(axes, ("output", "input")):
        s = stats[key]
        ax.hist(s["values"], bins=np.linspace(0, 1, 41), color="#4477aa", edgecolor="white")
        ax.axvline(NEAR_ZERO, color="#cc6677", linestyle="--", linewidth=1)
        ax.set_xlabel("firing rate of a neuron" if deterministic else "mean spike probability of a neuron")
        ax.set_title(f"{names[key]}: {100 * s['fraction_near_zero']:.0f}% of {s['neurons']} < {NEAR_ZERO}",
                     fontsize=9)
    axes[0].set_ylabel("neurons")
    fig.suptitle("Per-neuron firing rate (float model, deterministic neurons)" if deterministic else
                 "Per-neuron mean spike probability (float model, test inputs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_energy(energy: dict, path: Path) -> None:
    """Stacked energy per inference by operation kind: deployed network vs non-spiking counterpart."""
    plt = _plt()
    models = energy["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.6), squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        kinds = sorted(set(m["parts_pj"]) | set(m["non_spiking_parts_pj"]))
        colors = _colors(len(kinds))
        bottoms = np.zeros(2)
        for kind, color in zip(kinds, colors):
            vals = np.array([m["parts_pj"].get(kind, 0.0), m["non_spiking_parts_pj"].get(kind, 0.0)]) / 1e6
            ax.bar(["spiking\n(deployed)", "non-spiking\ncounterpart"], vals, bottom=bottoms, color=color,
                   label=kind)
            bottoms += vals
        ax.set_ylabel("µJ per inference")
        ax.set_title(f"{name}: {m['ratio_non_spiking_to_spiking']:.2f}× less than non-spiking", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Energy estimate by operation kind", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_rates(result: dict, path: Path) -> None:
    """Per-neuron output spike rate: float model (x) vs deployed network (y)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    colors = _colors(len(result["layers"]))
    top = 0.0
    for r, color in zip(result["layers"], colors):
        f, d = np.array(r["output"]["float_per_neuron"]), np.array(r["output"]["deployed_per_neuron"])
        top = max(top, f.max(initial=0), d.max(initial=0))
        ax.scatter(f, d, s=10, color=color, alpha=0.7,
                   label=f"layer {r['layer']} (r = {r['output']['per_neuron_correlation']:.3f})")
    top = max(top * 1.05, 0.05)
    ax.plot([0, top], [0, top], color="gray", linewidth=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("float model: spike rate")
    ax.set_ylabel("deployed network: spike rate")
    ax.set_title("Per-neuron output spike rates", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_pareto(pareto: dict, result: dict, path: Path) -> dict:
    """Accuracy against energy per inference of every point of a sparsity sweep (benchmarks/
    sparsity_pareto.py) of this task, full and synaptic accounting side by side, and where this model sits."""
    plt = _plt()
    points = [q for q in pareto.get("points", []) if q.get("task") == result["task"] and q.get("deployed_accuracy")]
    here = {"full": result["deployed"]["energy_pj_per_inference"].get(PARETO_COST_MODEL),
            "synaptic": result["deployed"]["synaptic_energy_pj_per_inference"].get(PARETO_COST_MODEL)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    families = sorted({q.get("family", "") for q in points})
    colors = dict(zip(families, _colors(len(families))))
    for ax, accounting in zip(axes[0], ("full", "synaptic")):
        for fam in families:
            mine = [q for q in points if q.get("family", "") == fam]
            ax.scatter([q["energy_uj"][PARETO_COST_MODEL][accounting] for q in mine],
                       [100 * q["deployed_accuracy"] for q in mine], s=18, color=colors[fam], label=fam or "sweep")
        if here[accounting] is not None and result["deployed"]["accuracy"] is not None:
            ax.scatter([here[accounting] / 1e6], [100 * result["deployed"]["accuracy"]], marker="*", s=160,
                       color="#cc3311", zorder=5, label="this model")
        ax.set_xscale("log")
        ax.set_xlabel(f"µJ per inference ({PARETO_COST_MODEL}, {accounting} accounting)")
        ax.set_ylabel("deployed accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Sparsity sweep on {result['task']}: accuracy vs energy per inference", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"points": len(points), "here_uj": {k: (v / 1e6 if v is not None else None) for k, v in here.items()}}


def pareto_placement(pareto: dict, result: dict) -> dict | None:
    """Where this model sits among a sparsity sweep's points of its task (45nm cost model, both
    accountings): its energy and accuracy, how many points reach its accuracy for less energy, and the
    cheapest of those. None when the sweep has no point of this task."""
    points = [q for q in pareto.get("points", []) if q.get("task") == result["task"] and q.get("deployed_accuracy")]
    acc = result["deployed"]["accuracy"]
    if not points or acc is None:
        return None
    out = {"task": result["task"], "cost_model": PARETO_COST_MODEL, "points": len(points), "accuracy": acc}
    for accounting, key in (("full", "energy_pj_per_inference"), ("synaptic", "synaptic_energy_pj_per_inference")):
        here = result["deployed"][key].get(PARETO_COST_MODEL)
        if here is None:
            return None
        better = [q for q in points if q["deployed_accuracy"] >= acc and
                  q["energy_uj"][PARETO_COST_MODEL][accounting] < here / 1e6]
        best = min(better, key=lambda q: q["energy_uj"][PARETO_COST_MODEL][accounting], default=None)
        out[accounting] = {"energy_uj": here / 1e6, "cheaper_at_least_as_accurate": len(better),
                           "cheapest": None if best is None else {
                               "name": best["name"], "threshold": best.get("threshold"),
                               "accuracy": best["deployed_accuracy"],
                               "energy_uj": best["energy_uj"][PARETO_COST_MODEL][accounting]}}
    return out


def _pareto_text(placement: dict | None) -> str:
    if not placement:
        return ""
    parts = []
    for accounting in ("full", "synaptic"):
        p = placement[accounting]
        cheap = p["cheapest"]
        tail = (f"{p['cheaper_at_least_as_accurate']} reach its accuracy for less, the cheapest {cheap['name']}"
                f"{'' if cheap['threshold'] is None else ' pruned at ' + format(cheap['threshold'], 'g')} at "
                f"{cheap['energy_uj']:.3f} µJ" if cheap else "none reaches its accuracy for less: it is on the front")
        parts.append(f"{accounting} accounting {p['energy_uj']:.3f} µJ ({tail})")
    return (f"On the sparsity sweep of {placement['task']} ({placement['points']} points, {placement['cost_model']}), this "
            f"model's {100 * placement['accuracy']:.2f} % costs " + "; ".join(parts) + ".")


def _summary_rows(result: dict) -> list[tuple[str, str, str]]:
    f, d = result["float"], result["deployed"]
    pct = lambda a: "n/a (no labels)" if a is None else f"{100 * a:.2f} %"  # noqa: E731 - --inputs without labels
    rows = [("accuracy", pct(f["accuracy"]), pct(d["accuracy"]))]
    for name in d["energy"]["models"]:
        for label, key in (("full", "energy_pj_per_inference"), ("synaptic", "synaptic_energy_pj_per_inference")):
            rows.append((f"energy per inference ({name}, {label})", f"{f[key][name] / 1e6:.3f} µJ",
                         f"{d[key][name] / 1e6:.3f} µJ"))
    rows.append(("saturation events", "—", str(d["saturation_events"])))
    return rows


def _layer_rows(result: dict) -> list[list[str]]:
    rows = []
    for r in result["layers"]:
        for key in ("input", "output"):
            if key not in r:
                continue
            x = r[key]
            rows.append([str(r["layer"]), key, f"{100 * x['float_rate']:.2f} %", f"{100 * x['deployed_rate']:.2f} %",
                         f"{100 * x['relative_difference']:.2f} %", f"{x['per_neuron_correlation']:.4f}",
                         f"{100 * x['agreement']:.2f} %"])
    return rows


def _energy_rows(energy: dict) -> list[list[str]]:
    rows = []
    for name, m in energy["models"].items():
        static = m.get("static") or {}
        for accounting, a in m["accountings"].items():
            rows.append([name, accounting, f"{a['total_pj'] / 1e6:.3f}", f"{a['non_spiking_total_pj'] / 1e6:.3f}",
                         f"{a['ratio_non_spiking_to_spiking']:.2f}×",
                         f"{static['pj'] / 1e6:.3f}" if static and accounting == "full" else "—", m["source"]])
    return rows


def _pruning_text(result: dict) -> str:
    pr = result.get("pruning")
    if not pr:
        return ""
    spikes = sum(r["float_spikes"] for r in pr["populations"])
    return (f"Pruned netlist: {pr['removed']} of {pr['neurons']} neurons were removed at export (mean output probability "
            f"below {pr['threshold']:g} on the calibration data); on these inputs the unpruned float model's removed "
            f"neurons spiked {spikes} times. Spike rates above compare the kept neurons; accuracy compares the pruned "
            "deployed network with the unpruned float model.")


def _neurobench_rows(cross: dict) -> list[list[str]]:
    return [[r["metric"], r["neurobench"], r["ours"], r["why"]] for r in cross["rows"]]


LAYER_HEAD = ["layer", "sampler", "float rate", "deployed rate", "relative difference", "per-neuron correlation",
              "spike agreement"]
ENERGY_HEAD = ["cost model", "accounting", "deployed (µJ)", "non-spiking (µJ)", "ratio", "of which static (µJ)", "source"]
NEUROBENCH_HEAD = ["metric", "NeuroBench (float model)", "pspike-neuro", "why they differ"]
CAPTIONS = {
    "raster": "Spike raster: output spikes of each layer for one test sample (deployed network).",
    "active_ratio": "Active-neuron ratio over time per layer (solid: deployed; dotted: float model).",
    "probability_histogram": "Histogram of per-neuron mean spike probability (float model).",
    "energy": "Energy breakdown per inference by operation kind, deployed vs non-spiking counterpart.",
    "rates": "Float vs deployed spike rate of every neuron (output samplers).",
    PARETO_FIGURE: "Where this model sits on the sparsity sweep's accuracy-energy plot (45nm cost model; full and "
                   "synaptic accounting).",
}


def _md_table(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head, rows) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _checks_rows(result: dict) -> list[list[str]]:
    return [[name, f"{c['value']:.4g}", f"{c['must_be']} {c['limit']}",
             "fail" if name in result["failed_checks"] else "pass"] for name, c in result["checks"].items()]


def render_markdown(report: dict, result: dict) -> str:
    verdict = "PASSED" if result["passed"] else "FAILED (" + ", ".join(result["failed_checks"]) + ")"
    p = report["probability"]["output"]
    parts = [
        f"# pspike-neuro report: {report['task']}",
        "",
        f"Checkpoint `{report['checkpoint']}`, netlist `{report['netlist']}` (sha256 {report['netlist_sha256'][:16]}…), "
        f"backend {result['backend']}, {result['samples']} test samples, seeds {', '.join(map(str, result['seeds']))}. "
        f"Run {report['run_id']}, pspike-neuro {__version__}.",
        "",
        f"**Verification: {verdict}**",
        "",
        _md_table(["", "float model", "deployed"], _summary_rows(result)),
        "",
        "## Tolerances",
        "",
        _md_table(["check", "value", "must be", ""], _checks_rows(result)),
        "",
        "## Spike rates per layer",
        "",
        _md_table(LAYER_HEAD, _layer_rows(result)),
        "",
        f"{100 * p['fraction_near_zero']:.1f} % of the {p['neurons']} neurons have a mean output spike probability "
        f"below {NEAR_ZERO} (median {p['median']:.3f}).",
        "",
        "## Energy per inference",
        "",
        _md_table(ENERGY_HEAD, _energy_rows(result["deployed"]["energy"])),
        "",
        "What is and is not counted (full: every operation; synaptic: operations on connections only): "
        "docs/energy-model.md.",
        "",
        _pruning_text(result),
        "",
        _pareto_text(report.get("pareto")),
        "",
    ]
    if report.get("neurobench"):
        parts += ["## NeuroBench cross-check", "", report["neurobench"]["note"], "",
                  _md_table(NEUROBENCH_HEAD, _neurobench_rows(report["neurobench"])), ""]
    parts += ["## Figures", ""]
    for name in report["figures"]:
        parts += [f"![{CAPTIONS[name]}](figures/{name}.png)", "", CAPTIONS[name], ""]
    return "\n".join(parts)


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}.verdict{padding:.6em 1em;font-weight:bold;border-radius:4px;
display:inline-block}.pass{background:#d9f2d9;color:#1a5e1a}.fail{background:#f8d7da;color:#842029}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.meta{color:#555;font-size:.9em}"""


def render_html(report: dict, result: dict, figure_dir: Path) -> str:
    ok = result["passed"]
    verdict = "PASSED" if ok else "FAILED: " + ", ".join(result["failed_checks"])
    p = report["probability"]["output"]
    figs = []
    for name in report["figures"]:
        data = base64.b64encode((figure_dir / f"{name}.png").read_bytes()).decode()
        figs.append(f'<figure id="fig-{name}"><img alt="{html.escape(CAPTIONS[name])}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{html.escape(CAPTIONS[name])}</figcaption></figure>')
    meta = (f"Checkpoint <code>{html.escape(report['checkpoint'])}</code>, netlist "
            f"<code>{html.escape(report['netlist'])}</code> (sha256 {report['netlist_sha256'][:16]}…), backend "
            f"{html.escape(result['backend'])}, {result['samples']} test samples, seeds "
            f"{', '.join(map(str, result['seeds']))}. Run {html.escape(report['run_id'])}, pspike-neuro {__version__}.")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="pspike-run-id" content="{html.escape(report['run_id'])}">
<title>pspike-neuro report: {html.escape(report['task'])}</title><style>{CSS}</style></head>
<body>
<h1>pspike-neuro report: {html.escape(report['task'])}</h1>
<p class="meta">{meta}</p>
<p class="verdict {'pass' if ok else 'fail'}">Verification {html.escape(verdict)}</p>
{_html_table(["", "float model", "deployed"], _summary_rows(result))}
<h2>Tolerances</h2>
{_html_table(["check", "value", "must be", ""], _checks_rows(result))}
<h2>Spike rates per layer</h2>
{_html_table(LAYER_HEAD, _layer_rows(result))}
<p>{100 * p['fraction_near_zero']:.1f} % of the {p['neurons']} neurons have a mean output spike probability below
{NEAR_ZERO} (median {p['median']:.3f}).</p>
<h2>Energy per inference</h2>
{_html_table(ENERGY_HEAD, _energy_rows(result['deployed']['energy']))}
<p>What is and is not counted (full: every operation; synaptic: operations on connections only):
docs/energy-model.md in pspike-neuro.</p>
<p>{html.escape(_pruning_text(result))}</p>
<p>{html.escape(_pareto_text(report.get("pareto")))}</p>
{_neurobench_html(report)}
<h2>Figures</h2>
{''.join(figs)}
</body></html>
"""


def _neurobench_html(report: dict) -> str:
    cross = report.get("neurobench")
    if not cross:
        return ""
    return (f"<h2>NeuroBench cross-check</h2><p>{html.escape(cross['note'])}</p>"
            + _html_table(NEUROBENCH_HEAD, _neurobench_rows(cross)))


def write_report(out_dir, ckpt: Checkpoint, netlist: Netlist, result: dict, activity: Activity,
                 netlist_path: str = "", pareto: dict | None = None, pareto_figure: bool = False,
                 neurobench: dict | None = None) -> dict:
    """Render the figures and the three documents, then publish them into ``out_dir``. ``pareto``: a
    sparsity sweep's results: the documents say where this model sits among them, and with
    ``pareto_figure`` a sixth figure draws it; ``neurobench``: the cross-check of ``energy/crosscheck.py``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from .errors import UserError

        raise UserError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    remove_stale(out, ".report-staging-")  # left by a report that was killed
    staging = Path(tempfile.mkdtemp(prefix=f".report-staging-{os.getpid()}-", dir=out))
    try:
        fig_dir = staging / "figures"
        fig_dir.mkdir()
        raster = figure_raster(activity, fig_dir / "raster.png")
        active = figure_active_ratio(activity, fig_dir / "active_ratio.png")
        probs = probability_stats(activity)
        figure_probability_histogram(probs, fig_dir / "probability_histogram.png", deterministic=activity.deterministic)
        figure_energy(result["deployed"]["energy"], fig_dir / "energy.png")
        figure_rates(result, fig_dir / "rates.png")
        figures = list(FIGURES)
        pareto_info = pareto_placement(pareto, result) if pareto else None
        if pareto_info and pareto_figure:
            figure_pareto(pareto, result, fig_dir / f"{PARETO_FIGURE}.png")
            figures.append(PARETO_FIGURE)
        report = {
            "run_id": run_id, "package_version": __version__, "task": result["task"],
            "checkpoint": str(ckpt.path), "netlist": str(netlist_path), "netlist_sha256": netlist.content_sha256(),
            "verification": result, "raster": raster, "active_ratio": active,
            "probability": {k: {kk: vv for kk, vv in v.items() if kk != "values"} for k, v in probs.items()},
            "figures": {name: f"figures/{name}.png" for name in figures}, "pareto": pareto_info,
            "neurobench": neurobench,
            "files": {name: str(out / f"report.{name}") for name in ("html", "md", "json")},
        }
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (staging / "report.md").write_text(render_markdown(report, result))
        (staging / "report.html").write_text(render_html(report, result, fig_dir))
        (out / "figures").mkdir(exist_ok=True)
        for name in figures:
            os.replace(fig_dir / f"{name}.png", out / "figures" / f"{name}.png")
        for name in ("json", "md", "html"):
            os.replace(staging / f"report.{name}", out / f"report.{name}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
