"""The report's figures as plain :class:`matplotlib.figure.Figure` objects (no pyplot state, headless).

Scalp maps go through MNE's :func:`mne.viz.plot_topomap`: EEG channels on the 10-05 montage (MNE's ``colin27_1005``, the one the simulator uses) (the 63
THINGS-EEG2 channels), CTF MEG sensors on MNE's ``CTF-275`` layout (the 271 THINGS-MEG sensors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
RANDOM_STAMP = "RANDOM-WEIGHT OUTPUT: a check of the code path, not reconstructions"


def model_colours(models) -> dict[str, str]:
    """One colour per model, the same in every figure of a report (models sorted by name)."""
    return {m: COLOURS[i % len(COLOURS)] for i, m in enumerate(sorted(set(models)))}


def _style(ax) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=8)


def subject_bars(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    k: int,
    chance: float,
    ceilings: Mapping[str, float] | None = None,
    colours: Mapping[str, str] | None = None,
) -> Figure:
    """Top-1 at ``k`` per subject: one bar per model (mean over seeds, the seeds as dots), chance and ceiling."""
    models = list(values)
    colours = colours or model_colours(models)
    subjects = sorted({s for m in models for s in values[m]})
    fig = Figure(figsize=(min(11.0, 3.2 + 0.45 * len(subjects) * max(1, len(models))), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(models))
    x = np.arange(len(subjects))
    for i, model in enumerate(models):
        pos = x - 0.4 + width * (i + 0.5)
        means = [100 * np.mean(values[model][s]) if s in values[model] else np.nan for s in subjects]
        ax.bar(pos, means, width * 0.9, color=colours[model], label=model)
        for p, s in zip(pos, subjects):
            seeds = values[model].get(s, [])
            if len(seeds) > 1:
                ax.plot([p] * len(seeds), 100 * np.asarray(seeds), "k.", ms=3)
    ax.axhline(100 * chance, color="grey", ls="--", lw=1, label=f"chance ({100 * chance:.1f}%)")
    if ceilings:
        ys = [100 * ceilings.get(s, np.nan) for s in subjects]
        ax.scatter(x, ys, marker="_", s=700, color="black", label="ceiling (ideal decoder)", zorder=3)
    ax.set_xticks(x, subjects, fontsize=8)
    ax.set_ylabel(f"{k}-way top-1 (%)", fontsize=9)
    ax.set_ylim(0, 105)
    _style(ax)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=0.3)
    fig.tight_layout()
    return fig


def validation_curves(panels: Sequence[dict[str, Any]]) -> Figure:
    """One panel per model: validation top-1 per epoch (or per ridge alpha) of every run, selection marked.

    Each panel: ``{"title", "xlabel", "log_x", "chance", "lines": [{"label", "x", "y", "selected_x"}]}``.
    """
    n = len(panels)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(3.6 * cols + 0.4, 2.9 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels):
        for i, line in enumerate(panel["lines"]):
            c = COLOURS[i % len(COLOURS)]
            x, y = np.asarray(line["x"], float), 100 * np.asarray(line["y"], float)
            ax.plot(x, y, "-", marker="o", ms=3, lw=1.2, color=c, label=line["label"])
            sel = line.get("selected_x")
            if sel is not None and np.any(x == sel):
                ax.plot([sel], [y[np.flatnonzero(x == sel)[0]]], marker="*", ms=12, color=c, mec="black",
                        mew=0.6, ls="none")  # fmt: skip
        if panel.get("chance") is not None:
            ax.axhline(100 * panel["chance"], color="grey", ls="--", lw=1)
        if panel.get("log_x"):
            ax.set_xscale("log")
        else:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(panel["xlabel"], fontsize=8)
        ax.set_ylabel("validation top-1 (%)", fontsize=8)
        _style(ax)
        if len(panel["lines"]) <= 6:
            ax.legend(fontsize=6, frameon=False)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.text(0.5, 0.005, "★ = selected (validation top-1 on held-out training concepts); dashed = chance",
             ha="center", va="bottom", fontsize=7, color="#444")  # fmt: skip
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def temporal_profile(
    curves: Mapping[str, dict[str, Any]],
    components: Sequence[dict[str, Any]],
    window_s: float,
    colours: Mapping[str, str] | None = None,
) -> Figure:
    """Accuracy vs time: window kept (solid) and window masked (dashed) per model, known latencies marked.

    ``curves[model] = {"t": centres (s), "keep": (n_subjects, n_windows), "mask": ..., "baseline": float}``.
    """
    colours = colours or model_colours(curves)
    fig = Figure(figsize=(8.0, 3.7))
    ax = fig.subplots()
    for model, cur in curves.items():
        c = colours[model]
        t = 1000 * np.asarray(cur["t"])
        for kind, ls in (("keep", "-"), ("mask", "--")):
            y = 100 * np.asarray(cur[kind], float)
            m = y.mean(axis=0)
            label = f"{model}: only this window kept" if kind == "keep" else f"{model}: this window masked"
            ax.plot(t, m, ls, color=c, lw=1.5, label=label)
            if y.shape[0] > 1 and kind == "keep":
                ax.fill_between(t, y.min(axis=0), y.max(axis=0), color=c, alpha=0.12, lw=0)
        ax.axhline(100 * cur["baseline"], color=c, lw=0.8, ls=":", alpha=0.8)
    ax.axhline(50, color="grey", lw=1, ls="--")
    for comp in components:
        x = 1000 * comp["latency"]
        ax.axvline(x, color="#555", lw=0.8, alpha=0.6)
        ax.text(
            x,
            1.01,
            f"{comp['name']}\n{x:.0f}",
            va="bottom",
            ha="center",
            fontsize=7,
            color="#333",
            transform=ax.get_xaxis_transform(),
        )
    ax.set_xlabel(
        f"window centre (ms after image onset; window {1000 * window_s:.0f} ms; marks: known latencies, ms)",
        fontsize=9,
    )
    ax.set_ylabel("2-way accuracy, all pairs (%)", fontsize=9)
    _style(ax)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _sensor_info(ch_names: Sequence[str]):
    """An ``mne.Info`` with positions for EEG names (standard 10-05) or CTF MEG names (CTF-275 layout)."""
    import mne

    montage = mne.channels.make_standard_montage("colin27_1005")
    known = {n.lower(): n for n in montage.ch_names}
    if all(c.lower() in known for c in ch_names):
        info = mne.create_info(list(ch_names), 250.0, "eeg")
        info.set_montage(montage, match_case=False, verbose=False)
        return info, None
    layout = mne.channels.read_layout("CTF-275")
    pos = {n.split("-")[0]: layout.pos[i, :2] + layout.pos[i, 2:] / 2 for i, n in enumerate(layout.names)}
    xy = [pos.get(c.split("-")[0]) for c in ch_names]
    if any(p is None for p in xy):
        missing = [c for c, p in zip(ch_names, xy) if p is None][:5]
        raise ValueError(
            f"no sensor positions for channels {missing} (neither 10-05 EEG nor CTF-275 MEG names)"
        )
    xy = np.asarray(xy, dtype=float)
    xy = (xy - xy.mean(axis=0)) / np.abs(xy - xy.mean(axis=0)).max() * 0.095
    return None, xy


def topomaps(maps: Mapping[str, tuple[Sequence[str], np.ndarray]], top: int = 5) -> Figure:
    """One scalp map per model of the accuracy drop (percentage points) when each channel is masked.

    The ``top`` channels with the largest drop are named on the map.
    """
    import mne

    n = len(maps)
    fig = Figure(figsize=(3.3 * n + 0.6, 3.4))
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
    for ax, (model, (names, drop)) in zip(axes, maps.items()):
        drop = 100 * np.asarray(drop, float)
        info, xy = _sensor_info(names)
        order = np.argsort(-drop)[:top]
        mask = np.zeros(len(names), bool)
        mask[order] = True
        lim = max(float(np.abs(drop).max()), 1e-6)
        full = len(names) >= 60  # the whole cap: extrapolate to the head outline; a subset: only near sensors
        im, _ = mne.viz.plot_topomap(drop, info if info is not None else xy, axes=ax, show=False, cmap="RdBu_r",
                                     vlim=(-lim, lim), mask=mask, sensors=True, contours=4,
                                     extrapolate="head" if full else "local",
                                     mask_params=dict(marker="o", markerfacecolor="w", markeredgecolor="k",
                                                      markersize=4),
                                     names=[c if m else "" for c, m in zip(names, mask)])  # fmt: skip
        for text in ax.texts:
            text.set_fontsize(6)
        ax.set_title(f"{model}\ntop: {', '.join(names[i] for i in order)}", fontsize=8)
        cb = fig.colorbar(im, ax=ax, shrink=0.7, pad=0.02)
        cb.ax.tick_params(labelsize=7)
        cb.set_label("accuracy drop (pp)", fontsize=7)
    fig.tight_layout()
    return fig


def region_bars(
    regions: Mapping[str, Mapping[str, dict[str, float]]],
    baselines: Mapping[str, float],
    colours: Mapping[str, str] | None = None,
) -> Figure:
    """Per region: 2-way accuracy with only that region kept, and the drop when it is masked, per model."""
    names = ("frontal", "central", "parietal", "temporal", "occipital")
    colours = colours or model_colours(regions)
    present = [r for r in names if any(r in regions[m] for m in regions)]
    fig = Figure(figsize=(8.0, 3.0))
    axes = fig.subplots(1, 2)
    width = 0.8 / max(1, len(regions))
    x = np.arange(len(present))
    for i, (model, reg) in enumerate(regions.items()):
        c = colours[model]
        pos = x - 0.4 + width * (i + 0.5)
        keep = [100 * reg[r]["keep"] if r in reg else np.nan for r in present]
        drop = [100 * (baselines[model] - reg[r]["mask"]) if r in reg else np.nan for r in present]
        axes[0].bar(pos, keep, width * 0.9, color=c, label=model)
        axes[1].bar(pos, drop, width * 0.9, color=c, label=model)
    axes[0].axhline(50, color="grey", ls="--", lw=1)
    axes[0].set_ylabel("2-way acc., only region kept (%)", fontsize=8)
    axes[0].set_ylim(40, 100)
    axes[1].axhline(0, color="black", lw=0.6)
    axes[1].set_ylabel("drop when region masked (pp)", fontsize=8)
    for ax in axes:
        ax.set_xticks(x, present, fontsize=8)
        _style(ax)
    axes[1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def layer_weights(weights: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Figure:
    """Learned weight of each vision layer per subject: ``weights[model][subject][layer]``."""
    n = len(weights)
    fig = Figure(figsize=(4.2 * n + 0.5, 3.0))
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
    for ax, (model, subjects) in zip(axes, weights.items()):
        layers = list(dict.fromkeys(layer for sub in subjects.values() for layer in sub))
        width = 0.8 / max(1, len(subjects))
        x = np.arange(len(layers))
        for i, (sname, sub) in enumerate(subjects.items()):
            ax.bar(x - 0.4 + width * (i + 0.5), [sub.get(layer, np.nan) for layer in layers], width * 0.9,
                   color=COLOURS[i % len(COLOURS)], label=sname)  # fmt: skip
        ax.set_xticks(x, layers, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("learned weight", fontsize=8)
        ax.set_title(model, fontsize=9)
        _style(ax)
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def reconstruction_grid(
    rows: Mapping[str, Sequence[Path]], titles: Sequence[str], stamp: str | None
) -> Figure:
    """Ground truth and each source's images: one row per source, one column per test image."""
    from PIL import Image

    n_rows = len(rows)
    n_cols = max(len(v) for v in rows.values())
    fig = Figure(figsize=(1.25 * n_cols + 1.3, 1.3 * n_rows + (0.7 if stamp else 0.3)))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (label, paths) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(paths) and paths[c] is not None and Path(paths[c]).is_file():
                with Image.open(paths[c]) as img:
                    ax.imshow(np.asarray(img.convert("RGB").resize((128, 128))))
            else:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(str(titles[c])[:16], fontsize=7)
    if stamp:
        fig.suptitle(stamp, fontsize=10, color="#b00000", fontweight="bold")
        fig.text(0.5, 0.5, "RANDOM WEIGHTS", fontsize=40, color="#b00000", alpha=0.25, ha="center",
                 va="center", rotation=20, fontweight="bold")  # fmt: skip
    fig.tight_layout()
    return fig
