"""Build the results page: one self-contained HTML file plus the same figures (PNG, PDF) and tables (Markdown,
CSV, LaTeX) in ``<name>_files/`` beside it.

The page opens offline: figures are embedded as base64 PNG, the style sheet is inline, nothing is fetched. Sections
appear in a fixed order (retrieval, temporal profile, spatial profile, layer profile, reconstructions, provenance)
and each one that lacks its inputs is replaced by a note saying what is missing and how to make it. This module does
not import torch; artefacts are read through :mod:`eegdecode.formats` (via :mod:`eegdecode.report.collect`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode import __version__
from eegdecode.errors import OutputExistsError
from eegdecode.io import atomic_path
from eegdecode.report import figures
from eegdecode.report.collect import Collection, Run, collect
from eegdecode.report.tables import Table, aggregate_kway, pct

SECTIONS = (
    ("retrieval", "Retrieval"),
    ("temporal", "Temporal profile"),
    ("spatial", "Spatial profile"),
    ("layers", "Layer profile"),
    ("reconstruction", "Reconstructions"),
    ("provenance", "Provenance"),
)
SOURCE_LABELS = {
    "image": "image embedding",
    "eeg": "EEG embedding",
    "prior": "prior",
    "lowlevel": "low-level path",
}
# Classic visual ERP latencies, marked on real data only (simulated data mark their own components); see Luck,
# "An Introduction to the Event-Related Potential Technique", 2nd ed., MIT Press 2014.
TYPICAL_ERP = ({"name": "P1", "latency": 0.1}, {"name": "N1/N170", "latency": 0.17},
               {"name": "P2", "latency": 0.25}, {"name": "N400", "latency": 0.4})  # fmt: skip
PACKAGES = ("numpy", "scipy", "torch", "mne", "matplotlib", "braindecode", "open_clip_torch", "diffusers",
            "transformers", "Pillow")  # fmt: skip
RUN_FACTS = ("fold", "n_chans", "n_times", "n_outputs", "ch_names", "data_root", "release", "n_train_images",
             "n_val_images", "n_parameters", "world_size", "eegdecode_version", "torch_version")  # fmt: skip

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:1400px;margin:0 auto;padding:18px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:.3em 0}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}
nav{font-size:.92em;margin:.6em 0 1em}nav a{margin-right:1.1em}
.banner{padding:.6em 1em;border-radius:4px;margin:.6em 0;font-weight:600}
.sim{background:#fff4d6;border:1px solid #e5b94e}.random{background:#fde2e2;border:1px solid #d44;color:#900}
.note{color:#555;background:#f3f3f3;padding:.5em .8em;border-left:4px solid #bbb}
.tablewrap{overflow-x:auto;margin:.4em 0}
table{border-collapse:collapse;font-size:.84em}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#f2f4f7;white-space:normal;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
td.proto,th.proto{text-align:left;white-space:normal;min-width:16em;max-width:26em;color:#333;font-size:.9em}
tr.floor td{background:#f4f8ff}tr.ceiling td{background:#f1fbf1}tr.chance td{color:#666;font-style:italic}
.tnote{font-size:.82em;color:#555;margin:.2em 0 .8em}
figure{margin:.8em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444;margin-top:.3em}
details{margin:.3em 0}summary{cursor:pointer;color:#225}
pre,code{font-family:Menlo,Consolas,monospace;font-size:.82em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.files{font-size:.82em;color:#555}
"""


@dataclass
class Assets:
    """Writes figures and tables into ``<name>_files/`` and keeps their HTML."""

    folder: Path
    written: list[Path] = field(default_factory=list)

    def figure(self, name: str, fig, caption: str) -> str:
        png, pdf = self.folder / "figures" / f"{name}.png", self.folder / "figures" / f"{name}.pdf"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=130)
        with atomic_path(png, suffix=".png") as tmp:
            tmp.write_bytes(buffer.getvalue())
        with atomic_path(pdf, suffix=".pdf") as tmp:
            fig.savefig(tmp, format="pdf")
        self.written += [png, pdf]
        data = base64.b64encode(buffer.getvalue()).decode()
        rel = f"{self.folder.name}/figures/{name}"
        return (
            f'<figure id="fig-{name}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)} "
            f'<span class="files">[{rel}.png, {rel}.pdf]</span></figcaption></figure>'
        )

    def table(self, table: Table) -> str:
        base = self.folder / "tables" / table.name
        for suffix, text in (
            (".md", table.to_markdown()),
            (".csv", table.to_csv()),
            (".tex", table.to_latex()),
        ):
            path = base.with_suffix(suffix)
            with atomic_path(path) as tmp:
                tmp.write_text(text)
            self.written.append(path)
        rel = f"{self.folder.name}/tables/{table.name}"
        return table.to_html() + f'<p class="files">[{rel}.md, {rel}.csv, {rel}.tex]</p>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _omitted(text: str) -> str:
    return f'<p class="note omitted">Omitted: {html.escape(text)}</p>'


# ----------------------------------------------------------------------------------------------------------
# Setups: the protocol beside every number
# ----------------------------------------------------------------------------------------------------------


def _channels(cfg: dict[str, Any]) -> str:
    ch = cfg["data"].get("channels", "all")
    n = cfg.get("n_chans")
    if isinstance(ch, list | tuple):
        ch = f"{len(ch)} named"
    return f"{ch} ({n} ch)" if n is not None else str(ch)


def _window(cfg: dict[str, Any]) -> str:
    tw = cfg["data"].get("time_window")
    if tw is None:
        return f"full epoch ({cfg.get('n_times', '?')} samples)"
    return f"{1000 * tw[0]:.0f}–{1000 * tw[1]:.0f} ms"


def _averaging(run: Run) -> str:
    reps = run.config["data"].get("test_reps")
    return f"train {run.config['data'].get('train_unit', 'trial')}s; test {'all' if reps is None else reps} reps averaged"


def _selection(run: Run) -> str:
    by = run.results.selected_by or "not recorded"
    return by.replace("validation top-1", "val top-1").replace(
        " on held-out training concepts", " (held-out train concepts)"
    )


def _target_name(config: dict) -> str:
    """``features`` store name, or the target spec: backbone, layers (and how combined), pooling, blur."""
    t = config.get("target")
    if not t:
        return str(config.get("features", ""))
    layers = t.get("layers", ["embedding"])
    name = f"{t['backbone']} {'+'.join(layers)}"
    if len(layers) > 1:
        name += f" ({t.get('combine', 'concat')})"
    if t.get("pooling") and layers != ["embedding"]:
        name += f" {t['pooling']}"
    blur = t.get("blur", ["none"])
    if blur not in (["none"], "none"):
        name += f" blur {','.join(blur) if isinstance(blur, list) else blur} ({t.get('blur_rule', 'fixed')})"
    return name


def setup_of(run: Run, with_data: bool = False) -> tuple[str, ...]:
    """(protocol, channels, window, averaging, target, selection rule): the keys a number depends on.

    ``with_data`` names the data set in the target (when the report mixes several data sets).
    """
    target = _target_name(run.config)
    if with_data and run.data_root is not None:
        target += f" on {run.data_root.parent.name}/{run.data_root.name}"
    return (run.results.protocol or run.config["fold"].get("protocol", ""), _channels(run.config),
            _window(run.config), _averaging(run), target, _selection(run))  # fmt: skip


def setup_text(setup: tuple[str, ...]) -> str:
    protocol, channels, window, averaging, target, selection = setup
    return f"{protocol} · {channels} · {window} · {averaging} · target {target} · selected by {selection}"


# ----------------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------------


def _headline_k(runs: Sequence[Run]) -> int:
    common = set.intersection(*({int(k) for k in r.results.kway["k"]} for r in runs))
    return max(common) if common else max(int(k) for r in runs for k in r.results.kway["k"])


def retrieval_tables(found: Collection) -> tuple[Table, Table, list[str]]:
    """The aggregated table (model x setup x k) and the per-run table; plus notes (missing floors)."""
    groups: dict[tuple[str, tuple[str, ...]], list[Run]] = {}
    multi = len({str(r.data_root) for r in found.runs}) > 1
    for run in found.runs:
        groups.setdefault((run.model, setup_of(run, multi)), []).append(run)
    ks = sorted({int(k) for r in found.runs for k in r.results.kway["k"]})
    top5_ks = [k for k in ks if k >= 10]
    columns = [
        "model",
        "runs",
        *(f"{k}-way top-1" for k in ks),
        *(f"{k}-way top-5" for k in top5_ks),
        "protocol",
    ]
    rows, classes, records = [], [], []
    order = sorted(groups, key=lambda g: (g[1][0], g[1][4], g[0] != "ridge", g[0], g[1]))
    for model, setup in order:
        agg = aggregate_kway([r.results.kway for r in groups[(model, setup)]])
        n_row = len(groups[(model, setup)])
        label = f"{model} (floor)" if model == "ridge" else model
        cells = [label, str(n_row)]
        cells += [pct(*agg[k]["top1"], agg[k]["n"], n_row) if k in agg else "–" for k in ks]
        cells += [pct(*agg[k]["top5"], agg[k]["n"], n_row) if k in agg else "–" for k in top5_ks]
        rows.append([*cells, setup_text(setup)])
        classes.append("floor" if model == "ridge" else "")
        for k, a in agg.items():
            records.append({"model": model, "protocol": setup[0], "channels": setup[1], "window": setup[2],
                            "averaging": setup[3], "target": setup[4], "selection": setup[5], "k": k,
                            "n_runs": a["n"], "top1_mean": a["top1"][0], "top1_sd": a["top1"][1],
                            "top5_mean": a["top5"][0], "top5_sd": a["top5"][1],
                            "chance_top1": a["chance_top1"], "chance_top5": a["chance_top5"]})  # fmt: skip
    notes = []
    # The ceiling (simulated data) depends on the data and the test averaging, not on the model: once per subject.
    ceilings: dict[tuple[str, str], dict[str | None, dict[str, Any]]] = {}
    for run in found.runs:
        if run.results.ceiling:
            ceilings.setdefault((run.results.protocol, _averaging(run).split("; ")[1]), {}).setdefault(
                run.results.subject, run.results.ceiling
            )
    for (protocol, test_avg), per_subject in sorted(ceilings.items()):
        agg = aggregate_kway(list(per_subject.values()))
        cells = ["ceiling (ideal decoder)", str(len(per_subject))]
        cells += [pct(*agg[k]["top1"]) if k in agg else "–" for k in ks]
        cells += [pct(*agg[k]["top5"]) if k in agg else "–" for k in top5_ks]
        rows.append([*cells, f"{protocol} · simulated data · all 63 ch, full epoch · {test_avg} (the simulator's "
                     "ideal template-matching decoder; the best any model can reach)"])  # fmt: skip
        classes.append("ceiling")
    agg_all = aggregate_kway([r.results.kway for r in found.runs])
    chance = ["chance", ""] + [pct(agg_all[k]["chance_top1"]) for k in ks]
    chance += [pct(agg_all[k]["chance_top5"]) for k in top5_ks] + ["1/k (top-1), 5/k (top-5)"]
    rows.append(chance)
    classes.append("chance")
    for protocol, target in sorted({(s[0], s[4]) for _, s in groups}):
        if not any(m == "ridge" and s[0] == protocol and s[4] == target for m, s in groups):
            notes.append(f"No ridge run for protocol {protocol!r} and target {target!r}: no floor for those rows "
                         "(eegdecode train --model ridge --model-options '{\"time_bin\": 5}').")  # fmt: skip
    table_notes = [
        "Top-1/top-5 in %, mean ± sd over runs (subjects x seeds; sd empty with one run); each run's value is its "
        "mean over seeded distractor draws. (n=...) marks a cell with fewer runs than its row.",
        "ridge (floor): the closed-form baseline on the same target; ceiling: the simulator's ideal decoder "
        "(simulated data only).",
    ]
    table = Table("retrieval", "Zero-shot k-way retrieval on the test set", columns, rows, table_notes, records,
                  classes)  # fmt: skip
    hk = _headline_k(found.runs)
    per_run_rows, per_run_records = [], []
    for run in sorted(found.runs, key=lambda r: (r.model, r.results.subject or "", r.results.seed or 0)):
        score = run.results.kway["k"].get(str(hk))
        sel = run.results.selected_epoch
        per_run_rows.append([run.model, run.results.subject or "", str(run.results.seed), pct(score and score["top1_mean"]),
                             pct(score and score.get("top5_mean")), "–" if sel is None else str(sel + 1),
                             setup_text(setup_of(run, multi))])  # fmt: skip
        per_run_records.append({"model": run.model, "subject": run.results.subject, "seed": run.results.seed,
                                "k": hk, "top1": score and score["top1_mean"], "top5": score and score.get("top5_mean"),
                                "selected_epoch_1based": None if sel is None else sel + 1,
                                "protocol": setup_text(setup_of(run, multi)), "run": str(run.dir)})  # fmt: skip
    per_run = Table("retrieval_runs", f"Every run: {hk}-way test accuracy", ["model", "subject", "seed",
                    f"{hk}-way top-1", f"{hk}-way top-5", "selected epoch", "protocol"], per_run_rows,
                    ["Selected epoch is 1-based (ridge: one closed-form fit)."], per_run_records)  # fmt: skip
    return table, per_run, notes


def _validation_panels(runs: Sequence[Run]) -> list[dict[str, Any]]:
    panels: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r.model, r.results.subject or "", r.results.seed or 0)):
        label = f"{run.results.subject} s{run.results.seed}"
        fit = (run.checkpoint or {}).get("fit_report") if run.checkpoint else None
        if run.log and any("val_top1" in row for row in run.log):
            rows = [row for row in run.log if "val_top1" in row]
            k = rows[-1].get("val_k")
            panel = panels.setdefault(run.model, {"title": f"{run.model}: validation {k}-way top-1",
                                                  "xlabel": "epoch", "chance": 1 / k if k else None, "lines": []})  # fmt: skip
            sel = run.results.selected_epoch
            panel["lines"].append({"label": label, "x": [row["epoch"] + 1 for row in rows],
                                   "y": [row["val_top1"] for row in rows],
                                   "selected_x": None if sel is None else sel + 1})  # fmt: skip
        elif fit and fit.get("alphas") and fit.get("val_top1"):
            panel = panels.setdefault(run.model, {"title": f"{run.model}: validation top-1 per alpha",
                                                  "xlabel": "ridge alpha", "log_x": True, "chance": None, "lines": []})  # fmt: skip
            panel["lines"].append(
                {"label": label, "x": fit["alphas"], "y": fit["val_top1"], "selected_x": fit.get("alpha")}
            )
    return list(panels.values())


def section_retrieval(found: Collection, assets: Assets) -> str:
    if not found.runs:
        return _omitted(
            "no retrieval run (results.json) under the given folders; train one with `eegdecode train`."
        )
    table, per_run, notes = retrieval_tables(found)
    parts = [assets.table(table)]
    parts += [_note(n) for n in notes]
    hk = _headline_k(found.runs)
    values: dict[str, dict[str, list[float]]] = {}
    ceilings: dict[str, float] = {}
    for run in found.runs:
        score = run.results.kway["k"].get(str(hk))
        if score is not None:
            values.setdefault(run.model, {}).setdefault(run.results.subject or "?", []).append(
                score["top1_mean"]
            )
        if run.results.ceiling and str(hk) in run.results.ceiling["k"]:
            ceilings[run.results.subject or "?"] = run.results.ceiling["k"][str(hk)]["top1_mean"]
    chance = 1.0 / hk
    parts.append("<h3>Per subject</h3>")
    parts.append(assets.figure("retrieval_subjects", figures.subject_bars(values, hk, chance, ceilings or None,
                                                                    figures.model_colours(values)),
                               f"{hk}-way top-1 per subject and model (bars: mean over seeds; dots: seeds); dashed: "
                               "chance; black bar: the simulator's ceiling."))  # fmt: skip
    parts.append(assets.table(per_run))
    panels = _validation_panels(found.runs)
    parts.append("<h3>Model selection</h3>")
    if panels:
        parts.append(assets.figure("validation_curves", figures.validation_curves(panels),
                                   "Validation top-1 on held-out training concepts; the star marks the selected "
                                   "epoch (or ridge alpha). The test set chose nothing."))  # fmt: skip
    else:
        parts.append(_omitted("no validation curve (metrics.jsonl or a ridge fit report) in the runs."))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# Profiles
# ----------------------------------------------------------------------------------------------------------


def _profile_groups(found: Collection) -> dict[str, list[dict[str, Any]]]:
    """Profiled runs by label: the model name, plus its setup when one model was run in several setups."""
    return {label: [r.profiles for r in runs] for label, runs in _profiled_runs(found).items()}


def _profiled_runs(found: Collection) -> dict[str, list[Run]]:
    by_setup: dict[tuple[str, tuple[str, ...]], list[Run]] = {}
    for run in found.runs:
        if run.profiles:
            by_setup.setdefault((run.model, setup_of(run)), []).append(run)
    n_setups: dict[str, int] = {}
    for model, _ in by_setup:
        n_setups[model] = n_setups.get(model, 0) + 1
    return {
        (model if n_setups[model] == 1 else f"{model} [{setup[1]}, {setup[2]}, {setup[3]}]"): runs
        for (model, setup), runs in by_setup.items()
    }


def _profile_protocols(found: Collection) -> dict[str, str]:
    return {label: setup_text(setup_of(runs[0])) for label, runs in _profiled_runs(found).items()}


def above_chance(profiles: Sequence[dict[str, Any]]) -> bool:
    """Whether the unmasked 2-way score is more than two standard errors above 50% (mean over subjects)."""
    subs = [s["baseline"] for p in profiles for s in p["subjects"].values()]
    base = float(np.mean([b["pairwise"] for b in subs]))
    se = float(np.sqrt(np.sum([b.get("pairwise_se", 0.0) ** 2 for b in subs])) / len(subs))
    return base > 0.5 + 2 * se


def temporal_curves(profiles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the subjects of several runs of one model: window centres, keep/mask scores, the baseline."""
    subs = [s for p in profiles for s in p["subjects"].values()]
    t = [row["centre"] for row in subs[0]["temporal"]]
    same = [s for s in subs if len(s["temporal"]) == len(t)]
    keep = [[row["keep"]["pairwise"] for row in s["temporal"]] for s in same]
    mask = [[row["mask"]["pairwise"] for row in s["temporal"]] for s in same]
    return {"t": t, "keep": keep, "mask": mask, "baseline": float(np.mean([s["baseline"]["pairwise"] for s in same])),
            "rows": same[0]["temporal"], "n": len(same)}  # fmt: skip


def _components(
    found: Collection, groups: dict[str, list[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], str]:
    for profiles in groups.values():
        for p in profiles:
            if p.get("simulated") and p.get("components"):
                return p[
                    "components"
                ], "the simulated data set's evoked components (from its simulation.json)"
    return list(TYPICAL_ERP), "typical visual ERP latencies (real data: the literature's, not measured here)"


def section_temporal(found: Collection, assets: Assets) -> str:
    groups = _profile_groups(found)
    if not groups:
        return _omitted("no profiles.json in the runs; `eegdecode report` computes them unless --no-profiles is "
                        "given (it needs the run's data set and checkpoint).")  # fmt: skip
    components, source = _components(found, groups)
    curves = {model: temporal_curves(ps) for model, ps in groups.items()}
    colours = figures.model_colours(curves)
    first = next(iter(curves.values()))["rows"][0]
    window = first["stop"] - first["start"]  # the width in whole samples, not the requested seconds
    parts = [assets.figure("temporal_profile", figures.temporal_profile(curves, components, window, colours),
                           f"Test 2-way accuracy (all pairs) with only a {1000 * window:.0f} ms window kept (solid) "
                           "or that window masked (dashed), the rest replaced by the grand average over test images; "
                           f"dotted: the unmasked score; vertical lines: {source}; band: range over subjects.")]  # fmt: skip
    rows, records = [], []
    protocols = _profile_protocols(found)
    for model, cur in curves.items():
        keep = np.mean(cur["keep"], axis=0)
        best = int(np.argmax(keep))
        win = cur["rows"][best]
        inside = [c["name"] for c in components if win["start"] - 1e-9 <= c["latency"] < win["stop"] + 1e-9]
        reading = "yes" if above_chance(groups[model]) else "no: near chance, the profile is noise"
        rows.append([model, str(cur["n"]), f"{1000 * win['start']:.0f}–{1000 * win['stop']:.0f} ms",
                     pct(float(keep[best])), pct(cur["baseline"]), ", ".join(inside) or "none", reading,
                     protocols[model]])  # fmt: skip
        records.append({"model": model, "n_subject_runs": cur["n"], "peak_start_s": win["start"],
                        "peak_stop_s": win["stop"], "peak_keep_pairwise": float(keep[best]),
                        "baseline_pairwise": cur["baseline"], "components_in_peak": ";".join(inside),
                        "above_chance": reading == "yes", "protocol": protocols[model]})  # fmt: skip
    table = Table("temporal_peaks", "Best single window per model", ["model", "subject runs", "peak window",
                  "2-way (window only)", "2-way (full epoch)", "components in window",
                  "full epoch above chance (2 s.e.)", "protocol"], rows,
                  [f"Measure: {next(iter(groups.values()))[0]['measure']}."], records)  # fmt: skip
    parts.append(assets.table(table))
    return "\n".join(parts)


def spatial_maps(
    profiles: Sequence[dict[str, Any]],
) -> tuple[list[str], np.ndarray, dict[str, dict[str, float]], float]:
    """Mean channel drop, region keep/mask scores and baseline over the subjects of several runs of one model."""
    subs = [s for p in profiles for s in p["subjects"].values()]
    names = subs[0]["spatial"]["channels"]
    same = [s for s in subs if s["spatial"]["channels"] == names]
    drop = np.mean(
        [[s["baseline"]["pairwise"] - m["pairwise"] for m in s["spatial"]["masked"]] for s in same], axis=0
    )
    regions: dict[str, dict[str, float]] = {}
    for r in same[0]["regions"]:
        vals = [s["regions"][r] for s in same if r in s["regions"]]
        regions[r] = {"keep": float(np.mean([v["keep"]["pairwise"] for v in vals])),
                      "mask": float(np.mean([v["mask"]["pairwise"] for v in vals])),
                      "n_channels": vals[0]["n_channels"]}  # fmt: skip
    return names, drop, regions, float(np.mean([s["baseline"]["pairwise"] for s in same]))


def section_spatial(found: Collection, assets: Assets) -> str:
    groups = _profile_groups(found)
    if not groups:
        return _omitted("no profiles.json in the runs (see the temporal profile).")
    maps, regions, baselines, rows, records, notes = {}, {}, {}, [], [], []
    for model, ps in groups.items():
        names, drop, reg, base = spatial_maps(ps)
        maps[model] = (names, drop)
        regions[model], baselines[model] = reg, base
        top = [names[i] for i in np.argsort(-drop)[:5]]
        for r, v in reg.items():
            rows.append([model, r, str(v["n_channels"]), pct(v["keep"]), f"{100 * (base - v['mask']):.1f}"])
            records.append({"model": model, "region": r, "n_channels": v["n_channels"], "keep_pairwise": v["keep"],
                            "mask_pairwise": v["mask"], "baseline_pairwise": base})  # fmt: skip
        caveat = "" if above_chance(ps) else " (this model is near chance on the test set: the map is noise)"
        notes.append(f"{model}: the five channels whose masking costs most: {', '.join(top)}{caveat}.")
    parts = []
    try:
        parts.append(assets.figure("spatial_topomap", figures.topomaps(maps),
                                   "Accuracy drop (percentage points of 2-way accuracy) when each channel alone is "
                                   "replaced by its grand average; the five largest are circled and named."))  # fmt: skip
    except ValueError as err:
        parts.append(_omitted(f"scalp map: {err}"))
    parts += [_note(n) for n in notes]
    parts.append(assets.figure("spatial_regions", figures.region_bars(regions, baselines, figures.model_colours(regions)),
                               "Per region: 2-way accuracy with only that region kept (left) and the drop when it is "
                               "masked (right)."))  # fmt: skip
    parts.append(assets.table(Table("spatial_regions", "Regions", ["model", "region", "channels",
                                    "2-way (region only)", "drop when masked (pp)"], rows, [], records)))  # fmt: skip
    return "\n".join(parts)


def section_layers(found: Collection, assets: Assets) -> str:
    weights: dict[str, dict[str, dict[str, float]]] = {}
    for run in found.runs:
        lw = run.results.raw.get("layer_weights")
        if isinstance(lw, dict):
            for subject, layers in lw.items():
                weights.setdefault(run.model, {})[f"{subject} s{run.results.seed}"] = {
                    k: float(v) for k, v in layers.items()
                }
    blur_rows = [
        [run.model, f"s{run.results.seed}", variant, f"{float(w):.3f}"]
        for run in found.runs
        if isinstance(run.results.raw.get("blur_weights"), dict)
        for variant, w in run.results.raw["blur_weights"].items()
    ]
    blur = (
        assets.table(
            Table(
                "blur_weights",
                "Blur-variant weights (blur_rule learned; mean over feature dimensions)",
                ["model", "seed", "variant", "weight"],
                blur_rows,
            )
        )  # fmt: skip
        if blur_rows
        else ""
    )
    if not weights:
        if blur:
            return blur
        return _omitted("no run has a multi-layer target (results.json key 'layer_weights': {subject: {layer: "
                        "weight}}) or learned blur weights ('blur_weights'); single-layer targets have nothing "
                        "to show here.")  # fmt: skip
    rows = [
        [m, s, layer, f"{w:.3f}"]
        for m, subs in weights.items()
        for s, ls in subs.items()
        for layer, w in ls.items()
    ]
    return (
        assets.figure(
            "layer_weights",
            figures.layer_weights(weights),
            "Learned weight of each vision layer of the target, per subject (and seed).",
        )
        + assets.table(Table("layer_weights", "Layer weights", ["model", "subject", "layer", "weight"], rows))
        + blur
    )


# ----------------------------------------------------------------------------------------------------------
# Reconstructions
# ----------------------------------------------------------------------------------------------------------


def metrics_table(name: str, metrics: dict[str, Any]) -> Table:
    cols = list(metrics["columns"])
    rows, records = [], []
    order = sorted(
        metrics["results"], key=lambda s: list(SOURCE_LABELS).index(s) if s in SOURCE_LABELS else 99
    )
    for source in order:
        res = metrics["results"][source]
        cells = [SOURCE_LABELS.get(source, source), str(res.get("n_rounds", ""))]
        rec: dict[str, Any] = {"source": source, "n_rounds": res.get("n_rounds")}
        for m in cols:
            if m in metrics["skipped"]:
                cells.append("skipped")
                continue
            mean, sd = res["mean"].get(m), res["sd"].get(m)
            cells.append("–" if mean is None else (f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"))
            rec[m], rec[f"{m}_sd"] = mean, sd
        rows.append(cells)
        records.append(rec)
    notes = [f"N = {metrics['n_images']} test images; mean ± sd over rounds."]
    lower = metrics.get("lower_is_better") or []
    if lower:
        notes.append("Higher is better except " + ", ".join(metrics["columns"][m] for m in lower) + ".")
    reasons: dict[str, list[str]] = {}
    for m, why in metrics["skipped"].items():  # "weights not found: put FILE in ..." -> "weights not found"
        reasons.setdefault(why.split(":")[0], []).append(metrics["columns"].get(m, m))
    notes += [
        f"Skipped {', '.join(v)}: {k} (metrics.json names the file each needs)." for k, v in reasons.items()
    ]
    if metrics.get("label"):
        notes.insert(0, metrics["label"])
    return Table(name, "Reconstruction metrics", ["source", "rounds", *(metrics["columns"][m] for m in cols)], rows,
                 notes, records)  # fmt: skip


def section_reconstruction(found: Collection, assets: Assets, n_columns: int = 8) -> str:
    if not found.generations:
        return _omitted("no generation manifest (gen/<model>/<subject>/manifest.json); make one with "
                        "`eegdecode extract RUN` and `eegdecode generate RUN`.")  # fmt: skip
    parts = []
    for i, gen in enumerate(found.generations):
        man = gen.manifest
        tag = f"{man['model']}_{man['subject']}".replace("/", "_")
        random = bool(man.get("random_weights"))
        parts.append(f"<h3>{html.escape(man['model'])} · {html.escape(str(man['subject']))}</h3>")
        if random:
            parts.append(f'<p class="banner random">{html.escape(figures.RANDOM_STAMP)}: the generator has random '
                         "weights; these images are noise.</p>")  # fmt: skip
        gt = sorted(man["ground_truth"], key=lambda r: r["index"])[:n_columns]
        indices = [r["index"] for r in gt]
        rows = {"ground truth": [gen.folder / r["path"] for r in gt]}
        by_key = {(im["source"], im["index"]): im for im in man["images"] if im.get("round", 0) == 0}
        for source in ("image", "eeg", "prior", "lowlevel"):
            if any(s == source for s, _ in by_key):
                rows[SOURCE_LABELS[source]] = [gen.folder / by_key[(source, j)]["path"] if (source, j) in by_key
                                               else None for j in indices]  # fmt: skip
        fig = figures.reconstruction_grid(
            rows, [r["concept"] for r in gt], figures.RANDOM_STAMP if random else None
        )
        made = [label for label in rows if label != "ground truth"]
        absent = [label for label in SOURCE_LABELS.values() if label not in made]
        parts.append(assets.figure(f"reconstructions_{i}_{tag}", fig,
                                   f"First {len(gt)} test images (round 0): ground truth, then the images made from "
                                   f"the {', the '.join(made)} (the image embedding is the upper bound)."
                                   + (f" Not generated: {', '.join(absent)}." if absent else "")
                                   + (" RANDOM WEIGHTS." if random else "")))  # fmt: skip
        if gen.metrics is None:
            parts.append(
                _omitted(f"no metrics.json beside {gen.path}; run `eegdecode metrics --manifest {gen.path}`.")
            )
        else:
            parts.append(assets.table(metrics_table(f"reconstruction_metrics_{i}_{tag}", gen.metrics)))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "eegdecode": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_commit() -> str:
    """``git describe``-like commit of the eegdecode source tree, or a sentence saying why there is none."""
    here = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (here / ".git").exists():
        return "not a git checkout (installed package)"
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (subprocess.SubprocessError, OSError) as err:
        return f"unknown ({err})"
    return sha + (" (with uncommitted changes)" if dirty else "")


def _train_keys() -> set[str] | None:
    try:  # imported lazily: the training module imports torch
        import dataclasses

        from eegdecode.training.trainer import TrainConfig

        return {f.name for f in dataclasses.fields(TrainConfig)}
    except ImportError:
        return None


def train_command(run: Run, config_file: str) -> str:
    """The ``eegdecode train`` line that re-creates the run from the config file written beside the report."""
    fold = run.config["fold"]
    protocol = fold.get("protocol", run.results.protocol)
    subjects = sorted(set(fold.get("train_subjects", [])) | set(fold.get("test_subjects", [])))
    out = run.dir.parents[3] if len(run.dir.parents) > 3 else run.dir.parent
    parts = [
        "eegdecode train",
        f"--config {config_file}",
        f"--data-root {run.config.get('data_root', 'DATA')}",
    ]
    if run.config.get("release", "250hz") != "250hz":
        parts.append(f"--release {run.config['release']}")
    parts += [f"--protocol {protocol}", "--subject " + " ".join(subjects)]
    if protocol != "joint":
        parts.append("--test-subject " + " ".join(fold.get("test_subjects", [])))
    parts += [f"--seed {run.results.seed}", f"--out {out}"]
    return " ".join(parts)


def section_provenance(found: Collection, assets: Assets, command: str | None) -> str:
    versions = _versions()
    parts = ["<h3>This report</h3>", "<ul>",
             f"<li>built {html.escape(time.strftime('%Y-%m-%d %H:%M:%S %z'))} by <code>{html.escape(command or 'build_report()')}</code></li>",
             f"<li>from {', '.join(f'<code>{html.escape(str(r))}</code>' for r in found.roots)}</li>",
             f"<li>eegdecode source commit: <code>{html.escape(source_commit())}</code></li>",
             "<li>package versions: " + ", ".join(f"{k} {html.escape(v)}" for k, v in versions.items()) + "</li>",
             "</ul>"]  # fmt: skip
    if found.problems:
        parts.append("<h3>Problems met (files that could not be read, runs without profiles)</h3><ul>")
        parts += [f"<li><code>{html.escape(p)}</code></li>" for p in found.problems]
        parts.append("</ul>")
    keys = _train_keys()
    if found.runs:
        parts.append("<h3>Retrieval runs</h3>")
        parts.append(_note("Each run is re-created by its command; the config file (the run's TrainConfig, taken "
                           "from its config.json) is written beside the report. Versions are those the run recorded; "
                           "runs do not record a commit, the one above is the source that built this report."))  # fmt: skip
    for i, run in enumerate(sorted(found.runs, key=lambda r: str(r.dir))):
        name = f"run{i:02d}_{run.model}_{run.results.subject}_seed{run.results.seed}"
        train_cfg = {k: v for k, v in run.config.items() if (k in keys if keys else k not in RUN_FACTS)}
        cfg_path = assets.folder / "configs" / f"{name}.json"
        with atomic_path(cfg_path) as tmp:
            tmp.write_text(json.dumps(train_cfg, indent=2) + "\n")
        assets.written.append(cfg_path)
        rel = f"{assets.folder.name}/configs/{name}.json"
        recorded = ", ".join(
            f"{k} {run.config[k]}" for k in ("eegdecode_version", "torch_version") if k in run.config
        )
        parts.append(
            f"<details><summary><code>{html.escape(str(run.dir))}</code> ({html.escape(run.model)}, "
            f"{html.escape(str(run.results.subject))}, seed {run.results.seed})</summary>"
            f"<p>command: <code>{html.escape(train_command(run, rel))}</code></p>"
            f"<p>recorded versions: {html.escape(recorded or 'not recorded')}; parameters: "
            f"{run.config.get('n_parameters', '?')}; world size {run.config.get('world_size', 1)}</p>"
            f"<pre>{html.escape(json.dumps({k: v for k, v in run.config.items() if k != 'ch_names'}, indent=1))}</pre>"
            "</details>"
        )
    if found.generations:
        parts.append("<h3>Generation and metrics</h3>")
    for gen in found.generations:
        cmd = (f"eegdecode extract RUN; eegdecode generate RUN (model {gen.manifest['model']}, subject "
               f"{gen.manifest['subject']}); eegdecode metrics --manifest {gen.path}")  # fmt: skip
        body = json.dumps(gen.manifest["provenance"], indent=1)
        settings = json.dumps((gen.metrics or {}).get("settings", {}), indent=1)
        parts.append(f"<details><summary><code>{html.escape(str(gen.path))}</code></summary>"
                     f"<p>commands: <code>{html.escape(cmd)}</code></p><p>generation provenance:</p>"
                     f"<pre>{html.escape(body)}</pre><p>metrics settings:</p><pre>{html.escape(settings)}</pre>"
                     "</details>")  # fmt: skip
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------


def build_report(
    roots: Sequence[str | Path] | str | Path,
    out: str | Path = "report.html",
    overwrite: bool = False,
    command: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write the report page ``out`` and its ``<stem>_files/`` folder from the artefacts under ``roots``.

    Parameters
    ----------
    roots : path or paths
        Folders searched recursively for run folders, generation manifests and metrics results.
    out : path
        The HTML file; figures and tables go to ``<out stem>_files/`` beside it.
    overwrite : bool
        Replace an existing page and its folder.
    command : str, optional
        The command line that asked for the report (shown under Provenance).
    notes : sequence of str
        Problems met before building (runs that could not be profiled), listed under Provenance.

    Raises
    ------
    OutputExistsError
        If ``out`` or its folder exists and ``overwrite`` is False.
    """
    if isinstance(roots, str | Path):
        roots = [roots]
    out = Path(out)
    folder = out.with_name(out.stem + "_files")
    if not overwrite:
        for path in (out, folder):
            if path.exists():
                raise OutputExistsError(path)
    found = collect(roots)
    found.problems.extend(notes)
    if folder.exists():
        shutil.rmtree(folder)
    assets = Assets(folder)
    bodies = {
        "retrieval": section_retrieval(found, assets),
        "temporal": section_temporal(found, assets),
        "spatial": section_spatial(found, assets),
        "layers": section_layers(found, assets),
        "reconstruction": section_reconstruction(found, assets),
        "provenance": section_provenance(found, assets, command),
    }
    banners = []
    if found.simulated:
        banners.append('<p class="banner sim">Simulated data: these numbers are read against the simulator\'s '
                       "ceiling and the ridge floor, not against published THINGS-EEG2 results.</p>")  # fmt: skip
    if any(g.manifest.get("random_weights") for g in found.generations):
        banners.append(
            f'<p class="banner random">{html.escape(figures.RANDOM_STAMP)} (see Reconstructions).</p>'
        )
    models = sorted({r.model for r in found.runs})
    summary = (f"{len(found.runs)} retrieval run(s) ({', '.join(models) or 'none'}), {len(found.generations)} "
               f"generation output(s), {sum(g.metrics is not None for g in found.generations)} metrics result(s).")  # fmt: skip
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    sections = "".join(
        f'<section id="{key}"><h2>{title}</h2>{bodies[key]}</section>' for key, title in SECTIONS
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>eegdecode report</title><style>{CSS}</style></head><body><main>"
        f"<h1>eegdecode results report</h1><p>{html.escape(summary)}</p>{''.join(banners)}<nav>{nav}</nav>"
        f"{sections}</main></body></html>\n"
    )
    with atomic_path(out, suffix=".html") as tmp:
        tmp.write_text(page)
    return out


def main_command() -> str:
    return "eegdecode " + " ".join(sys.argv[1:]) if sys.argv else "eegdecode report"
