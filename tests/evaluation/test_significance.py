"""Paired significance tests checked against scipy, exact enumeration and hand-worked corrections."""
from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.errors import MetricError
from core.evaluation.metrics import Evaluation, evaluate
from core.evaluation.significance import (
    benjamini_hochberg,
    bonferroni,
    compare_all,
    holm,
    marked_leaderboard,
    markers_frame,
    paired_t_test,
    randomization_test,
    run_letters,
    significance_markers,
    superscript,
)


def exact_randomization_p(a, b) -> float:
    """The two-sided sign-flip p-value by brute force over every sign pattern (the definition)."""
    differences = [y - x for x, y in zip(a, b)]
    observed = abs(sum(differences) / len(differences))
    extreme = 0
    for signs in product((1, -1), repeat=len(differences)):
        permuted = abs(sum(s * d for s, d in zip(signs, differences)) / len(differences))
        extreme += permuted >= observed - 1e-12
    return extreme / 2 ** len(differences)


def evaluation(name: str, values: dict[str, float], metric: str = "ndcg@10") -> Evaluation:
    frame = pd.DataFrame({metric: values, "positive_rank": {q: 1.0 for q in values}}, dtype=float)
    frame.index.name = "query_id"
    return Evaluation(name, (metric,), frame)


@pytest.mark.parametrize("seed", range(5))
def test_t_test_matches_scipy_ttest_rel(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(30)
    b = a + rng.normal(0.05, 0.2, 30)
    assert paired_t_test(a, b) == pytest.approx(stats.ttest_rel(b, a).pvalue, abs=1e-9)


def test_t_test_of_identical_runs_is_one_not_nan():
    assert paired_t_test([0.1, 0.5, 1.0], [0.1, 0.5, 1.0]) == 1.0


def test_t_test_of_a_constant_shift_is_zero():
    assert paired_t_test([0.1, 0.2, 0.3], [0.2, 0.3, 0.4]) == 0.0


@pytest.mark.parametrize("a,b", [
    ([0.0, 0.5, 1.0, 0.2, 0.3], [1.0, 0.5, 1.0, 0.7, 0.1]),
    ([0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.25], [1.0, 1.0, 0.5, 1.0, 0.0, 0.5, 1.0]),
    ([0.3, 0.6, 0.9, 0.1], [0.4, 0.6, 0.2, 0.5]),
    ([1.0] * 8, [0.0] * 8),
])
def test_randomization_enumerates_every_sign_pattern_on_small_inputs(a, b):
    assert randomization_test(a, b) == pytest.approx(exact_randomization_p(a, b), abs=1e-12)


def test_randomization_sampling_approaches_the_exact_p_value():
    rng = np.random.default_rng(3)
    a = rng.random(14)
    b = a + rng.normal(0.1, 0.25, 14)
    exact = randomization_test(a, b, n_permutations=2 ** 14)  # enumerated
    sampled = randomization_test(a, b, n_permutations=10_000, seed=1)  # 10,000 < 2**14: sampled
    assert sampled == pytest.approx(exact, abs=0.02)
    assert 0.0 < exact < 1.0


def test_randomization_is_reproducible_with_a_seed_and_never_zero():
    a = np.zeros(40)
    b = np.ones(40)
    assert randomization_test(a, b, 1000, seed=5) == randomization_test(a, b, 1000, seed=5) == pytest.approx(1 / 1001)


def test_randomization_of_identical_runs_is_one():
    values = np.linspace(0, 1, 30)
    assert randomization_test(values, values) == 1.0


def test_paired_tests_refuse_unequal_lengths():
    with pytest.raises(MetricError, match="equally long"):
        randomization_test([0.1, 0.2], [0.1, 0.2, 0.3])


def test_holm_on_a_hand_worked_example():
    # sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06 monotone)
    corrected = holm([0.03, 0.01, 0.04, 0.02])
    assert corrected == pytest.approx([0.06, 0.04, 0.06, 0.06])


def test_holm_caps_at_one():
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_bonferroni_multiplies_by_the_family_size():
    assert bonferroni([0.01, 0.2, 0.5]) == pytest.approx([0.03, 0.6, 1.0])


def test_benjamini_hochberg_on_a_hand_worked_example():
    # p*m/rank: 0.01*4/1=0.04, 0.02*4/2=0.04, 0.03*4/3=0.04, 0.2*4/4=0.2
    assert benjamini_hochberg([0.2, 0.01, 0.03, 0.02]) == pytest.approx([0.2, 0.04, 0.04, 0.04])


def three_runs():
    queries = [f"q{i}" for i in range(12)]
    weak = {q: 0.0 for q in queries}
    strong = {q: 1.0 for q in queries}
    middle = {q: (1.0 if i % 3 else 0.0) for i, q in enumerate(queries)}  # 1 on 8 of 12
    return [evaluation("weak", weak), evaluation("middle", middle), evaluation("strong", strong)]


def test_compare_all_tests_every_pair_without_a_baseline():
    table = compare_all(three_runs(), "ndcg@10", test="t-test", correction="none")
    assert [(r.a, r.b) for r in table.rows] == [("weak", "middle"), ("weak", "strong"), ("middle", "strong")]
    weak_strong = table.rows[1]
    assert (weak_strong.mean_a, weak_strong.mean_b, weak_strong.delta) == (0.0, 1.0, 1.0)
    assert (weak_strong.wins, weak_strong.ties, weak_strong.losses) == (12, 0, 0)
    middle_strong = table.rows[2]
    assert (middle_strong.wins, middle_strong.ties, middle_strong.losses) == (4, 8, 0)


def test_compare_all_against_a_baseline_tests_only_pairs_with_it():
    table = compare_all(three_runs(), "ndcg@10", baseline="middle", correction="holm")
    assert [(r.a, r.b) for r in table.rows] == [("middle", "weak"), ("middle", "strong")]
    expected = holm([r.p_value for r in table.rows])
    assert [r.corrected_p for r in table.rows] == pytest.approx(list(expected))


def test_corrected_p_decides_significance():
    table = compare_all(three_runs(), "ndcg@10", test="randomization", correction="bonferroni", alpha=0.05)
    for row in table.rows:
        assert row.corrected_p == pytest.approx(min(1.0, row.p_value * 3))
        assert row.significant == (row.corrected_p <= 0.05)


def test_markers_name_the_runs_each_run_significantly_beats():
    table = compare_all(three_runs(), "ndcg@10", test="randomization", correction="holm")
    markers = significance_markers(table)
    # exact p: strong-weak 2/4096, middle-weak 2/256, strong-middle 2/16 = 0.125 (not significant)
    assert [r.p_value for r in table.rows] == pytest.approx([2 / 256, 2 / 4096, 2 / 16])
    assert markers == {"weak": (), "middle": ("weak",), "strong": ("weak",)}


def test_marked_leaderboard_shows_means_and_superscript_letters():
    table = compare_all(three_runs(), "ndcg@10")
    board = marked_leaderboard(table)
    assert list(board["letter"]) == ["a", "b", "c"]
    assert board.loc["strong", "beats"] == "a"
    assert board.loc["strong", "shown"] == "1.0000ᵃ"
    assert board.loc["middle", "ndcg@10"] == pytest.approx(8 / 12)


def test_run_letters_continue_past_z():
    letters = run_letters([f"r{i}" for i in range(28)])
    assert (letters["r0"], letters["r25"], letters["r26"], letters["r27"]) == ("a", "z", "a1", "b1")
    assert superscript("ab1") == "ᵃᵇ¹"


def test_compare_all_refuses_runs_scored_on_different_queries():
    runs = three_runs()
    other = evaluation("other", {"x1": 1.0, "x2": 0.0})
    with pytest.raises(MetricError, match="other queries"):
        compare_all([runs[0], other], "ndcg@10")


def test_compare_all_refuses_an_unknown_baseline_and_a_single_run():
    runs = three_runs()
    with pytest.raises(MetricError, match="Baseline"):
        compare_all(runs, "ndcg@10", baseline="nope")
    with pytest.raises(MetricError, match="at least two"):
        compare_all(runs[:1], "ndcg@10")


def test_compare_all_on_real_runs_uses_their_per_query_values(csn_engine):
    qrels = csn_engine.dataset.qrels
    evaluations = [evaluate(qrels, csn_engine.run(name), ["ndcg@10"]) for name in ("bm25-code", "dense-minilm")]
    table = compare_all(evaluations, "ndcg@10", test="t-test")
    row = table.rows[0]
    a = evaluations[0].per_query["ndcg@10"]
    b = evaluations[1].per_query["ndcg@10"].reindex(a.index)
    assert row.mean_a == pytest.approx(a.mean()) and row.mean_b == pytest.approx(b.mean())
    assert row.p_value == pytest.approx(stats.ttest_rel(b, a).pvalue, abs=1e-9)
    assert row.wins + row.ties + row.losses == table.queries == 40


def test_markers_frame_uses_the_labels_given_even_for_runs_sharing_a_name():
    weak, middle, strong = three_runs()
    twin = Evaluation("weak", strong.metrics, strong.per_query)  # e.g. an older saved run under the same profile name
    frame = markers_frame([weak, middle, twin], ["ndcg@10"], labels=["weak (now)", "middle", "weak (saved)"])
    assert list(frame.index) == ["weak (now)", "middle", "weak (saved)"]
    assert list(frame["ndcg@10"]) == ["", "ᵃ", "ᵃ"]
    assert markers_frame([weak], ["ndcg@10"]) is None


def test_marked_leaderboard_names_the_beaten_runs():
    board = marked_leaderboard(compare_all(three_runs(), "ndcg@10", correction="none", alpha=0.2))
    # uncorrected at alpha 0.2, strong beats middle too (p = 2/16)
    assert board.loc["strong", "beaten"] == "weak, middle" and board.loc["strong", "shown"] == "1.0000ᵃᵇ"
    assert board.loc["weak", "beaten"] == ""
