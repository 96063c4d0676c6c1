"""Ground truth next to its reconstructions: one row per image set, one column per test image.

The figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state), so they work headless, in scripts
and in notebooks alike; save them with ``fig.savefig(path)``. Random-weight output is labelled in the title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure

from eegdecode.errors import DataFormatError
from eegdecode.metrics.image_sets import BASE_SIZE, EvaluationSet, load_images


def plot_image_rows(
    rows: Mapping[str, torch.Tensor],
    column_titles: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 1.4,
) -> Figure:
    """Draw equally long image batches as labelled rows.

    Parameters
    ----------
    rows : mapping of str to torch.Tensor
        Row label -> (n_columns, 3, H, W) floats in [0, 1]; every row must hold the same number of images.
    column_titles : sequence of str, optional
        One title per column (e.g. the concept names).
    title : str, optional
        Figure title.
    cell_inches : float
        Size of one image cell.

    Returns
    -------
    matplotlib.figure.Figure
    """
    counts = {label: int(images.shape[0]) for label, images in rows.items()}
    if not counts or len(set(counts.values())) != 1 or 0 in counts.values():
        raise DataFormatError(
            None, "every row needs the same, non-zero number of images", "equal counts", counts
        )
    n_rows, n_columns = len(rows), next(iter(counts.values()))
    fig = Figure(figsize=(cell_inches * n_columns + 1.2, cell_inches * n_rows + (0.6 if title else 0.2)))
    axes = fig.subplots(n_rows, n_columns, squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_columns):
            ax = axes[r, c]
            ax.imshow(images[c].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0 and column_titles is not None:
                ax.set_title(str(column_titles[c])[:18], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_reconstructions(
    evaluation_set: EvaluationSet,
    n_columns: int = 8,
    indices: Sequence[int] | None = None,
    sources: Sequence[str] | None = None,
    round_id: int | None = None,
    base_size: int | None = BASE_SIZE,
) -> Figure:
    """Ground truth (top row) and one round of each source below it, for a few test images.

    Parameters
    ----------
    evaluation_set : EvaluationSet
        From :func:`~eegdecode.metrics.read_generation_manifest` or :func:`~eegdecode.metrics.pair_folders`.
    n_columns : int
        How many test images (the first ones) when ``indices`` is not given.
    indices : sequence of int, optional
        Test indices to show.
    sources : sequence of str, optional
        Sources to show (default all).
    round_id : int, optional
        Which round (default: each source's first).
    base_size : int or None
        Images are shown as the metrics see them (resized to this side).
    """
    by_index = {record.index: row for row, record in enumerate(evaluation_set.ground_truth)}
    if indices is None:
        chosen = list(range(min(n_columns, evaluation_set.n_images)))
    else:
        unknown = [i for i in indices if i not in by_index]
        if unknown:
            raise DataFormatError(None, "indices not in the ground truth", sorted(by_index)[:10], unknown)
        chosen = [by_index[i] for i in indices]
    gt_records = [evaluation_set.ground_truth[row] for row in chosen]
    rows = {"ground truth": load_images([r.path for r in gt_records], base_size)}
    for source, rounds in evaluation_set.reconstructions.items():
        if sources is not None and source not in sources:
            continue
        key = min(rounds) if round_id is None else round_id
        if key not in rounds:
            raise DataFormatError(None, f"source {source!r} has no round {key}", sorted(rounds), key)
        rows[f"{source} (round {key})"] = load_images([rounds[key][row].path for row in chosen], base_size)
    title = "Ground truth and reconstructions"
    who = " ".join(
        str(evaluation_set.origin[k]) for k in ("model", "subject") if evaluation_set.origin.get(k)
    )
    if who:
        title += f": {who}"
    if evaluation_set.generator_random_weights:
        title += " (RANDOM-WEIGHT OUTPUT)"
    return plot_image_rows(rows, [r.concept for r in gt_records], title)
