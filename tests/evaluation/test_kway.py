"""k-way retrieval: known answers, chance, exact expectations of the draws, ties, determinism, round trips."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import hypergeom

from eegdecode.evaluation.kway import (
    KWayResult,
    format_kway_table,
    kway_accuracy,
    similarity_matrix,
    standard_ks,
)

# Hand-built 4-item case. The gallery is one-hot, so with metric="dot" the score matrix is the query itself.
#   query 0: [0.9, 0.1, 0.2, 0.3]  true 0.9, nothing beats it         -> rank 1, 0 of 3 others beat it
#   query 1: [0.5, 0.4, 0.1, 0.0]  true 0.4, item 0 (0.5) beats it    -> rank 2, 1 of 3
#   query 2: [0.0, 0.7, 0.7, 0.1]  true 0.7, item 1 ties at 0.7       -> rank 2 (conservative tie), 1 of 3
#   query 3: [0.8, 0.9, 0.6, 0.2]  true 0.2, all three beat it        -> rank 4, 3 of 3
# 4-way (full gallery): only query 0 is top-1 -> 1/4.
# 2-way: P(correct) = (3 - b) / 3 per query -> (1 + 2/3 + 2/3 + 0) / 4 = 7/12. Per draw, query 0 always counts,
#   query 3 never, queries 1 and 2 independently with p = 2/3, so a draw's accuracy is (1 + B1 + B2) / 4 with
#   sd over draws sqrt(2 * (2/3) * (1/3)) / 4 = 1/6 and values only in {1/4, 2/4, 3/4}.
# 3-way: 2 of the 3 others are drawn; queries 1 and 2 are correct only if their single beater is left out,
#   which is 1 of the 3 possible pairs -> (1 + 1/3 + 1/3 + 0) / 4 = 5/12.
HAND_QUERY = np.array(
    [
        [0.9, 0.1, 0.2, 0.3],
        [0.5, 0.4, 0.1, 0.0],
        [0.0, 0.7, 0.7, 0.1],
        [0.8, 0.9, 0.6, 0.2],
    ]
)
HAND_GALLERY = np.eye(4)


def test_hand_built_ranks_and_full_gallery():
    result = kway_accuracy(HAND_QUERY, HAND_GALLERY, ks=(4,), metric="dot")
    assert result.full_rank.tolist() == [1, 2, 2, 4]
    score = result.scores[4]
    assert score.top1_mean == 0.25 and score.top1_std == 0.0 and score.n_draws == 1
    assert score.top5_mean is None and score.top5_std is None  # k < 5
    assert score.chance_top1 == 0.25 and score.chance_top5 == 1.0


def test_hand_built_tie_counts_against_true_item():
    # Query 2 ties with item 1, so it ranks 2 (not 1) and is never top-1 in the full gallery; breaking the tie in
    # favour of the true item makes it rank 1 and lifts 4-way top-1 from 1/4 to 2/4.
    tied = kway_accuracy(HAND_QUERY, HAND_GALLERY, ks=(4,), metric="dot")
    assert tied.full_rank[2] == 2 and tied.scores[4].top1_mean == 0.25
    untied = HAND_QUERY.copy()
    untied[2, 1] = 0.69  # break the tie in favour of the true item
    result = kway_accuracy(untied, HAND_GALLERY, ks=(4,), metric="dot")
    assert result.full_rank.tolist() == [1, 2, 1, 4] and result.scores[4].top1_mean == 0.5


def test_hand_built_drawn_expectations():
    result = kway_accuracy(HAND_QUERY, HAND_GALLERY, ks=(2, 3, 4), n_draws=20000, seed=3, metric="dot")
    two = result.scores[2]
    assert set(np.round(np.array(two.top1_per_draw) * 4).astype(int)) <= {1, 2, 3}
    # Monte Carlo error of the mean: (1/6) / sqrt(20000) = 0.0012; tolerance about 5 standard errors.
    assert two.top1_mean == pytest.approx(7 / 12, abs=0.006)
    assert two.top1_std == pytest.approx(1 / 6, abs=0.005)
    assert result.scores[3].top1_mean == pytest.approx(5 / 12, abs=0.006)
    assert result.scores[4].top1_mean == 0.25


def test_cosine_ranks_match_dot_for_one_hot_gallery():
    # Scaling a query row does not change its ordering, and the one-hot gallery is unit-norm.
    result = kway_accuracy(HAND_QUERY * np.array([[1.0], [3.0], [0.5], [2.0]]), HAND_GALLERY, ks=(4,))
    assert result.full_rank.tolist() == [1, 2, 2, 4]


def test_perfect_embeddings_score_one_at_every_k():
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((200, 64))
    result = kway_accuracy(torch.from_numpy(gallery).float(), gallery, n_draws=20)
    assert result.ks == [2, 4, 10, 50, 100, 200]
    for k, score in result.scores.items():
        assert score.top1_mean == 1.0 and score.top1_std == 0.0, k
        if k >= 5:
            assert score.top5_mean == 1.0
        else:
            assert score.top5_mean is None
    assert (result.full_rank == 1).all()


def test_constant_embeddings_score_zero_because_ties_count_against():
    query = np.ones((20, 8))
    result = kway_accuracy(query, np.ones((20, 8)), ks=(2, 10, 20), n_draws=5)
    assert all(score.top1_mean == 0.0 for score in result.scores.values())
    assert (result.full_rank == 20).all()


def test_random_embeddings_give_chance():
    rng = np.random.default_rng(1)
    n = 500
    query, gallery = rng.standard_normal((n, 32)), rng.standard_normal((n, 32))
    result = kway_accuracy(query, gallery, ks=(2, 4, 10, 50, 100, n), n_draws=100, seed=0)
    for k, score in result.scores.items():
        # Bernoulli standard error over n queries, 4 of them: the per-query draws average only reduces this.
        p1 = 1 / k
        assert abs(score.top1_mean - p1) < 4 * math.sqrt(p1 * (1 - p1) / n) + 1e-3, k
        if score.top5_mean is not None:
            p5 = min(5 / k, 1)
            assert abs(score.top5_mean - p5) < 4 * math.sqrt(p5 * (1 - p5) / n) + 1e-3, k


def test_draw_means_match_exact_hypergeometric_expectation():
    # Given the score matrix, the number of drawn distractors that beat query i's true item is hypergeometric
    # (population n - 1, b_i "beaters", k - 1 draws). Its expectation is the exact answer the draws estimate.
    rng = np.random.default_rng(2)
    n = 120
    gallery = rng.standard_normal((n, 16))
    query = gallery + 1.5 * rng.standard_normal((n, 16))
    ks = (2, 4, 10, 50, 100)
    n_draws = 400
    result = kway_accuracy(query, gallery, ks=ks, n_draws=n_draws, seed=5)
    beaters = result.full_rank - 1
    for k in ks:
        expected_top1 = np.mean(hypergeom.pmf(0, n - 1, beaters, k - 1))
        score = result.scores[k]
        # Standard error of a mean over n_draws draws, from the observed spread; 5 standard errors.
        tol = 5 * score.top1_std / math.sqrt(n_draws) + 1e-9
        assert abs(score.top1_mean - expected_top1) < tol, (k, score.top1_mean, expected_top1)
        if k >= 5:
            expected_top5 = np.mean(hypergeom.cdf(4, n - 1, beaters, k - 1))
            tol5 = 5 * score.top5_std / math.sqrt(n_draws) + 1e-9
            assert abs(score.top5_mean - expected_top5) < tol5, (k, score.top5_mean, expected_top5)
    assert 0.0 < result.scores[100].top1_mean < result.scores[2].top1_mean < 1.0


def test_same_seed_same_numbers_different_seed_different_draws():
    rng = np.random.default_rng(4)
    gallery = rng.standard_normal((60, 8))
    query = gallery + rng.standard_normal((60, 8))
    ks = (2, 4, 10, 50, 60)
    first = kway_accuracy(query, gallery, ks=ks, n_draws=30, seed=7).to_dict()
    again = kway_accuracy(query, gallery, ks=ks, n_draws=30, seed=7).to_dict()
    other = kway_accuracy(query, gallery, ks=ks, n_draws=30, seed=8).to_dict()
    assert first == again
    assert first["k"]["10"]["top1_per_draw"] != other["k"]["10"]["top1_per_draw"]
    assert first["k"]["60"] == other["k"]["60"]  # the full gallery involves no draw
    assert first["full_rank"] == other["full_rank"]


def test_distractor_sets_do_not_depend_on_embeddings():
    # Paired comparison: a model that differs from another only on query 0 changes the per-draw accuracy only by
    # query 0's contribution, which is 0 or 1/n in each draw, because both see the same distractor sets.
    rng = np.random.default_rng(6)
    n = 40
    gallery = rng.standard_normal((n, 8))
    query_a = gallery + rng.standard_normal((n, 8))
    query_b = query_a.copy()
    query_b[0] = gallery[0]  # query 0 becomes perfect
    a = np.array(kway_accuracy(query_a, gallery, ks=(10,), n_draws=50, seed=1).scores[10].top1_per_draw)
    b = np.array(kway_accuracy(query_b, gallery, ks=(10,), n_draws=50, seed=1).scores[10].top1_per_draw)
    assert set(np.round((b - a) * n).astype(int)) <= {0, 1}


def test_torch_and_numpy_inputs_agree_and_json_round_trip():
    rng = np.random.default_rng(8)
    gallery = rng.standard_normal((30, 12))
    query = gallery + rng.standard_normal((30, 12))
    names = [f"concept_{i:02d}" for i in range(30)]
    from_numpy = kway_accuracy(query, gallery, ks=(2, 10, 30), n_draws=10, names=names)
    from_torch = kway_accuracy(
        torch.tensor(query), torch.tensor(gallery), ks=(2, 10, 30), n_draws=10, names=names
    )
    assert from_numpy.to_dict() == from_torch.to_dict()
    restored = KWayResult.from_dict(json.loads(json.dumps(from_numpy.to_dict())))
    assert restored.to_dict() == from_numpy.to_dict()
    breakdown = restored.per_query()
    assert len(breakdown) == 30 and breakdown[0]["rank"] == 1
    assert [row["rank"] for row in breakdown] == sorted(from_numpy.full_rank.tolist())
    assert {row["name"] for row in breakdown} == set(names)


def test_metrics_differ_as_defined():
    query = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery = np.array([[2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(similarity_matrix(query, gallery, "cosine"), [[1, 0], [0, 1]])
    np.testing.assert_allclose(similarity_matrix(query, gallery, "dot"), [[2, 0], [0, 1]])
    # -|q - g|^2: q0-g0 = (-1, 0) -> -1; q0-g1 = (1, -1) -> -2; q1-g0 = (-2, 1) -> -5; q1-g1 = 0.
    np.testing.assert_allclose(similarity_matrix(query, gallery, "euclidean"), [[-1, -2], [-5, 0]])


def test_bad_input_is_named():
    good = np.zeros((10, 4))
    with pytest.raises(ValueError, match="same number of rows"):
        kway_accuracy(np.ones((10, 4)), np.ones((9, 4)), ks=(2,))
    with pytest.raises(ValueError, match="embedding dimension"):
        kway_accuracy(good, np.zeros((10, 5)), ks=(2,))
    with pytest.raises(ValueError, match=r"standard_ks\(10\)"):
        kway_accuracy(good, good)  # default ks go up to 200
    with pytest.raises(ValueError, match="NaN"):
        kway_accuracy(np.full((10, 4), np.nan), good, ks=(2,))
    with pytest.raises(ValueError, match="metric"):
        kway_accuracy(good, good, ks=(2,), metric="manhattan")
    with pytest.raises(ValueError, match="n_draws"):
        kway_accuracy(good, good, ks=(2,), n_draws=0)
    assert standard_ks(50) == (2, 4, 10, 50)
    assert standard_ks(200) == (2, 4, 10, 50, 100, 200)


def test_table_has_one_line_per_k_and_a_ceiling_column():
    rng = np.random.default_rng(9)
    gallery = rng.standard_normal((20, 8))
    result = kway_accuracy(gallery + rng.standard_normal((20, 8)), gallery, ks=(2, 10, 20), n_draws=10)
    ceiling = kway_accuracy(gallery, gallery, ks=(2, 10, 20), n_draws=10)
    table = format_kway_table(result.to_dict(), ceiling=ceiling)
    lines = table.splitlines()
    assert lines[0].count("|") == 8 and "ceiling top-1" in lines[0]
    assert lines[2].startswith("| 2 |") and lines[4].startswith("| 20 (full) |")
    assert lines[4].split("|")[6].strip() == "100.00"
    assert "±" in lines[3] and "±" not in lines[4]  # no spread for the full gallery
    plain = format_kway_table(result)
    assert "ceiling" not in plain and f"{100 * result.scores[2].top1_mean:.2f}" in plain
