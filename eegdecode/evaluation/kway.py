"""Zero-shot k-way retrieval: how often the true image beats k - 1 randomly drawn distractors.

Query ``i`` (an EEG embedding, usually test EEG averaged over its repetitions) is scored against a gallery (the
test-image embeddings, or text embeddings for zero-shot classification) whose row ``i`` is its correct item. For
each k:

- ``k == n_items``: the whole gallery is used once; there is nothing to draw, so the spread is 0 and
  ``n_draws`` is 1.
- ``k < n_items``: for every query, ``k - 1`` distractors are drawn uniformly without replacement from the other
  ``n_items - 1`` items, ``n_draws`` times, by a seeded ``numpy.random.default_rng(seed)``. A draw's accuracy is
  the mean over queries; the result is the mean and the sample standard deviation (``ddof=1``) over draws.

How the draws are made (fully vectorised): the similarity matrix is computed once, in float64. For each draw and
query, one random permutation of the other items is drawn; the k-way distractor set is the first ``k - 1``
entries of that permutation. The sets for different k are therefore nested within a draw (common random numbers):
each k's set is still a uniform draw without replacement, and differences between k are less noisy. The
permutations depend only on ``seed``, ``n_items`` and ``n_draws``, never on the embeddings, so two models
evaluated with the same seed see exactly the same distractor sets (a paired comparison). This fixes the seed
code's unseeded Python ``random`` draws, re-drawn on every call (the retrieval scripts of
``ChiShengChen/EEG_gen_img_NECOMIMI``).

Ties are scored conservatively: a distractor whose score equals the true item's score counts as beating it. The
rank of the true item is ``1 + #{j != i : s_ij >= s_ii}``; top-1 means rank 1 and top-5 means rank <= 5. A model
that outputs a constant embedding therefore scores 0, not 100 %.

Top-1 is reported for every k, top-5 for k >= 5. Every k carries its chance levels (``1 / k`` and
``min(5 / k, 1)``). The result also keeps each query's rank in the full gallery, so a per-concept breakdown
(which concepts are decoded, which are not) needs no confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eegdecode.errors import check_option

DEFAULT_KS: tuple[int, ...] = (2, 4, 10, 50, 100, 200)
METRICS: tuple[str, ...] = ("cosine", "dot", "euclidean")
TIE_RULE = "conservative: a distractor scoring equal to the true item counts as beating it"

# Upper bound on the (draws x queries x items) block held in memory at once: 2**24 int32 is 64 MiB.
_MAX_BLOCK_ELEMENTS = 1 << 24


@dataclass
class KWayScore:
    """Accuracy of one k-way task.

    Attributes
    ----------
    k : int
        Number of candidates per query (the true item plus ``k - 1`` distractors).
    top1_mean, top1_std : float
        Mean and sample standard deviation over draws of the top-1 accuracy (a fraction in [0, 1]).
    top5_mean, top5_std : float or None
        The same for top-5; None when ``k < 5``.
    chance_top1, chance_top5 : float
        ``1 / k`` and ``min(5 / k, 1)``.
    n_draws : int
        Number of distractor draws (1 when the full gallery is used).
    n_queries : int
        Number of queries.
    top1_per_draw, top5_per_draw : list of float
        Accuracy of each draw (empty list for top-5 when ``k < 5``).
    """

    k: int
    top1_mean: float
    top1_std: float
    top5_mean: float | None
    top5_std: float | None
    chance_top1: float
    chance_top5: float
    n_draws: int
    n_queries: int
    top1_per_draw: list[float] = field(default_factory=list)
    top5_per_draw: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "top1_mean": self.top1_mean,
            "top1_std": self.top1_std,
            "top5_mean": self.top5_mean,
            "top5_std": self.top5_std,
            "chance_top1": self.chance_top1,
            "chance_top5": self.chance_top5,
            "n_draws": self.n_draws,
            "n_queries": self.n_queries,
            "top1_per_draw": list(self.top1_per_draw),
            "top5_per_draw": list(self.top5_per_draw),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KWayScore:
        return cls(
            k=int(data["k"]),
            top1_mean=float(data["top1_mean"]),
            top1_std=float(data["top1_std"]),
            top5_mean=None if data.get("top5_mean") is None else float(data["top5_mean"]),
            top5_std=None if data.get("top5_std") is None else float(data["top5_std"]),
            chance_top1=float(data["chance_top1"]),
            chance_top5=float(data["chance_top5"]),
            n_draws=int(data["n_draws"]),
            n_queries=int(data["n_queries"]),
            top1_per_draw=[float(v) for v in data.get("top1_per_draw", [])],
            top5_per_draw=[float(v) for v in data.get("top5_per_draw", [])],
        )


@dataclass
class KWayResult:
    """All k-way scores of one evaluation plus each query's rank in the full gallery.

    Attributes
    ----------
    scores : dict of int to KWayScore
        One entry per k, in the order requested.
    full_rank : numpy.ndarray of int, shape (n_queries,)
        1-based rank of the true item among all ``n_items`` gallery items (ties counted against the true item).
    metric : str
        Similarity used (``"cosine"``, ``"dot"`` or ``"euclidean"``).
    seed : int
        Seed of the distractor draws.
    names : list of str or None
        Optional name of each query (e.g. its concept), for the per-concept breakdown.
    """

    scores: dict[int, KWayScore]
    full_rank: np.ndarray
    metric: str
    seed: int
    names: list[str] | None = None

    @property
    def n_queries(self) -> int:
        if self.full_rank.size == 0 and self.scores:
            return next(iter(self.scores.values())).n_queries
        return int(self.full_rank.shape[0])

    @property
    def ks(self) -> list[int]:
        return list(self.scores)

    def per_query(self) -> list[dict[str, Any]]:
        """Each query's full-gallery rank and whether it is top-1 / top-5, best ranked first.

        This is the per-concept breakdown: with one test image per concept, each row is one concept.
        """
        names = self.names or [str(i) for i in range(self.n_queries)]
        rows = [
            {"index": i, "name": names[i], "rank": int(r), "top1": bool(r == 1), "top5": bool(r <= 5)}
            for i, r in enumerate(self.full_rank)
        ]
        return sorted(rows, key=lambda row: (row["rank"], row["index"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (k values become string keys under ``"k"``)."""
        return {
            "metric": self.metric,
            "seed": self.seed,
            "n_queries": self.n_queries,
            "tie_rule": TIE_RULE,
            "ks": self.ks,
            "k": {str(k): score.to_dict() for k, score in self.scores.items()},
            "full_rank": [int(r) for r in self.full_rank],
            "names": None if self.names is None else list(self.names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KWayResult:
        """Inverse of :meth:`to_dict`."""
        scores = {int(k): KWayScore.from_dict(v) for k, v in data["k"].items()}
        order = [int(k) for k in data.get("ks", scores)]
        return cls(
            scores={k: scores[k] for k in order},
            full_rank=np.asarray(data.get("full_rank", []), dtype=np.int64),
            metric=str(data.get("metric", "cosine")),
            seed=int(data.get("seed", 0)),
            names=None if data.get("names") is None else [str(n) for n in data["names"]],
        )


def standard_ks(n_items: int, ks: Sequence[int] = DEFAULT_KS) -> tuple[int, ...]:
    """The k values of ``ks`` that fit a gallery of ``n_items``, plus ``n_items`` itself (the full gallery).

    Useful for small (simulated) test sets: ``standard_ks(50)`` gives ``(2, 4, 10, 50)``.
    """
    if n_items < 2:
        raise ValueError(f"n_items must be at least 2 for a retrieval task; found {n_items}")
    kept = [k for k in ks if 2 <= k < n_items]
    return tuple(sorted(set(kept))) + (n_items,)


def _as_float64(name: str, array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor, possibly on GPU or requiring grad
        array = array.detach().float().cpu().numpy()
    out = np.asarray(array, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_items, dim); found shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or Inf values ({int((~np.isfinite(out)).sum())} entries)")
    return out


def similarity_matrix(query: Any, gallery: Any, metric: str = "cosine") -> np.ndarray:
    """Scores ``s[i, j]`` of query ``i`` against gallery item ``j`` (higher is more similar), float64.

    ``"cosine"`` L2-normalises both sides (a zero row scores 0 everywhere), ``"dot"`` uses raw inner products,
    ``"euclidean"`` uses the negative squared distance.
    """
    check_option("metric", metric, METRICS)
    q = _as_float64("query", query)
    g = _as_float64("gallery", gallery)
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"query and gallery must have the same embedding dimension; found {q.shape[1]} and {g.shape[1]}"
        )
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return q @ g.T
    if metric == "dot":
        return q @ g.T
    sq = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)
    return -sq


def _check_ks(ks: Sequence[int], n_items: int) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k")
    bad = [k for k in ks if k < 2 or k > n_items]
    if bad:
        raise ValueError(
            f"ks must lie between 2 and the gallery size {n_items}; found {bad}. "
            f"For a small test set use eegdecode.evaluation.kway.standard_ks({n_items}) = {standard_ks(n_items)}"
        )
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks contains duplicates: {ks}")
    return ks


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def kway_accuracy(
    query: Any,
    gallery: Any,
    ks: Sequence[int] = DEFAULT_KS,
    n_draws: int = 100,
    seed: int = 0,
    topk: Sequence[int] = (1, 5),
    metric: str = "cosine",
    names: Sequence[str] | None = None,
) -> KWayResult:
    """Seeded k-way retrieval accuracy of ``query`` against ``gallery``, where row i of each belong together.

    Parameters
    ----------
    query : array-like or torch.Tensor, shape (n_items, dim)
        Query embeddings (e.g. EEG embeddings of the test images, repetitions averaged).
    gallery : array-like or torch.Tensor, shape (n_items, dim)
        Candidate embeddings; ``gallery[i]`` is the correct item of ``query[i]``.
    ks : sequence of int
        Task sizes, each in ``[2, n_items]``. ``k == n_items`` uses the full gallery once.
    n_draws : int
        Number of distractor draws for each ``k < n_items``.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same distractor sets for any embeddings.
    topk : sequence of int
        Which of top-1 / top-5 to report: ``(1, 5)`` or ``(1,)``. Top-5 is only reported for k >= 5.
    metric : {"cosine", "dot", "euclidean"}
        Similarity used to rank the gallery.
    names : sequence of str, optional
        Name of each query (e.g. its concept), stored for :meth:`KWayResult.per_query`.

    Returns
    -------
    KWayResult
        Scores per k (mean and standard deviation over draws, chance levels) and each query's full-gallery rank.
    """
    scores_matrix = similarity_matrix(query, gallery, metric)
    return kway_from_scores(
        scores_matrix, ks=ks, n_draws=n_draws, seed=seed, topk=topk, names=names, metric=metric
    )


def kway_from_scores(
    scores_matrix: Any,
    ks: Sequence[int] = DEFAULT_KS,
    n_draws: int = 100,
    seed: int = 0,
    topk: Sequence[int] = (1, 5),
    names: Sequence[str] | None = None,
    metric: str = "precomputed",
) -> KWayResult:
    """k-way accuracy from a precomputed (n_queries, n_items) score matrix, higher = better, whose diagonal holds
    the correct pairs (e.g. log-likelihoods of an ideal decoder). Arguments as in :func:`kway_accuracy`."""
    scores_matrix = _as_float64("scores_matrix", scores_matrix)
    n_items = scores_matrix.shape[0]
    if scores_matrix.shape[1] != n_items:
        raise ValueError(
            f"query and gallery must have the same number of rows (row i of each belong together); "
            f"found {scores_matrix.shape[0]} and {scores_matrix.shape[1]}"
        )
    ks = _check_ks(ks, n_items)
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be at least 1; found {n_draws}")
    n_draws = int(n_draws)
    topk = tuple(int(t) for t in topk)
    for t in topk:
        check_option("topk entries", t, (1, 5))
    if 1 not in topk:
        raise ValueError(f"topk must include 1 (top-1 is always reported); found {topk}")
    if names is not None and len(names) != n_items:
        raise ValueError(f"names must have one entry per query ({n_items}); found {len(names)}")

    true_scores = np.diagonal(scores_matrix)
    beats = scores_matrix >= true_scores[:, None]  # conservative ties
    np.fill_diagonal(beats, False)
    full_rank = 1 + beats.sum(axis=1)

    # beats_others[i, m] says whether the m-th *other* item of query i (the diagonal removed) beats the true one.
    off_diagonal = ~np.eye(n_items, dtype=bool)
    beats_others = beats[off_diagonal].reshape(n_items, n_items - 1)

    drawn_ks = [k for k in ks if k < n_items]
    # n_beating[k][d, i]: how many of query i's k - 1 distractors in draw d beat the true item.
    n_beating: dict[int, np.ndarray] = {}
    if drawn_ks:
        n_beating = _count_beating_distractors(beats_others, drawn_ks, n_draws, seed)

    scores: dict[int, KWayScore] = {}
    for k in ks:
        if k == n_items:
            top1_draws = np.array([np.mean(full_rank == 1)])
            top5_draws = np.array([np.mean(full_rank <= 5)])
        else:
            top1_draws = (n_beating[k] == 0).mean(axis=1)
            top5_draws = (n_beating[k] < 5).mean(axis=1)
        report_top5 = 5 in topk and k >= 5
        scores[k] = KWayScore(
            k=k,
            top1_mean=float(top1_draws.mean()),
            top1_std=_std(top1_draws),
            top5_mean=float(top5_draws.mean()) if report_top5 else None,
            top5_std=_std(top5_draws) if report_top5 else None,
            chance_top1=1.0 / k,
            chance_top5=min(5.0 / k, 1.0),
            n_draws=int(top1_draws.size),
            n_queries=n_items,
            top1_per_draw=[float(v) for v in top1_draws],
            top5_per_draw=[float(v) for v in top5_draws] if report_top5 else [],
        )
    return KWayResult(
        scores=scores,
        full_rank=full_rank.astype(np.int64),
        metric=metric,
        seed=int(seed),
        names=None if names is None else [str(n) for n in names],
    )


def _count_beating_distractors(
    beats_others: np.ndarray, ks: Sequence[int], n_draws: int, seed: int
) -> dict[int, np.ndarray]:
    """For each k, an (n_draws, n_queries) count of drawn distractors that beat the true item.

    One random permutation of the ``n_items - 1`` other items per (draw, query); the k-way distractors are its
    first ``k - 1`` entries, so a cumulative sum along the permutation answers every k at once. Draws are made in
    blocks to bound memory; the generator is consumed in the same order whatever the block size.
    """
    n_queries, n_others = beats_others.shape
    rng = np.random.default_rng(seed)
    index_dtype = np.int16 if n_others < np.iinfo(np.int16).max else np.int32
    max_prefix = max(ks) - 1
    positions = [k - 2 for k in ks]
    counts = {k: np.empty((n_draws, n_queries), dtype=np.int32) for k in ks}
    block = max(1, _MAX_BLOCK_ELEMENTS // max(1, n_queries * n_others))
    base = np.arange(n_others, dtype=index_dtype)
    rows = np.arange(n_queries)[None, :, None]
    for start in range(0, n_draws, block):
        stop = min(n_draws, start + block)
        perms = np.broadcast_to(base, (stop - start, n_queries, n_others)).copy()
        rng.permuted(perms, axis=-1, out=perms)
        drawn = beats_others[rows, perms[..., :max_prefix]]  # (block, n_queries, max_prefix) bool
        cumulative = np.cumsum(drawn, axis=-1, dtype=np.int32)
        for k, pos in zip(ks, positions):
            counts[k][start:stop] = cumulative[..., pos]
    return counts


def _as_result(result: KWayResult | Mapping[str, Any]) -> KWayResult:
    return result if isinstance(result, KWayResult) else KWayResult.from_dict(result)


def _percent(mean: float | None, std: float | None = None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def format_kway_table(
    result: KWayResult | Mapping[str, Any],
    ceiling: KWayResult | Mapping[str, Any] | Mapping[int, float] | None = None,
) -> str:
    """A compact Markdown table of a k-way result, in percent, with chance levels.

    Parameters
    ----------
    result : KWayResult or its ``to_dict()``
        The scores to print.
    ceiling : KWayResult, its ``to_dict()``, or a mapping from k to a top-1 fraction, optional
        Best achievable scores (e.g. the simulator's noise-free decoder); adds ceiling columns.

    Returns
    -------
    str
        One line per k: ``k | top-1 | chance | top-5 | chance [| ceiling top-1 | ceiling top-5]``.
    """
    result = _as_result(result)
    ceiling_scores: dict[int, tuple[float | None, float | None]] = {}
    if ceiling is not None:
        if isinstance(ceiling, KWayResult) or (isinstance(ceiling, Mapping) and "k" in ceiling):
            ceiling_result = _as_result(ceiling)
            ceiling_scores = {k: (s.top1_mean, s.top5_mean) for k, s in ceiling_result.scores.items()}
        else:
            ceiling_scores = {int(k): (float(v), None) for k, v in ceiling.items()}
    header = ["k", "top-1 %", "chance", "top-5 %", "chance"]
    if ceiling is not None:
        header += ["ceiling top-1", "ceiling top-5"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k, s in result.scores.items():
        row = [
            f"{k}" + (" (full)" if k == result.n_queries else ""),
            _percent(s.top1_mean, s.top1_std if k < result.n_queries else None),
            f"{100 * s.chance_top1:.2f}",
            _percent(s.top5_mean, s.top5_std if k < result.n_queries else None),
            f"{100 * s.chance_top5:.2f}" if s.top5_mean is not None else "-",
        ]
        if ceiling is not None:
            c1, c5 = ceiling_scores.get(k, (None, None))
            row += [_percent(c1), _percent(c5)]
        lines.append("| " + " | ".join(row) + " |")
    draws = max((s.n_draws for s in result.scores.values()), default=1)
    lines.append("")
    lines.append(
        f"{result.n_queries} queries, metric {result.metric}, {draws} seeded draws (seed {result.seed}), "
        "mean ± sd over draws; ties count against the true item."
    )
    return "\n".join(lines)
