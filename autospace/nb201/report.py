"""Rankings of the same cells side by side against NB201's ground truth (DESIGN 2.6).

Every score (higher = predicted better) gets Spearman and Kendall against `cifar10_valid` and
the mean validation accuracy of its top-k cells; `rank_average` combines scores by the mean of
their ranks (the combination is reported, never silently used).
"""

from __future__ import annotations

from autospace.nb201.table import average_ranks, kendall, spearman

TOP_K = 10


def rank_average(*scores: list[float]) -> list[float]:
    """The mean of each cell's ranks under `scores` (higher = better, ties averaged)."""
    ranks = [average_ranks(score) for score in scores]
    return [sum(values) / len(values) for values in zip(*ranks)]


def top_mean(score: list[float], valid: list[float], k: int = TOP_K) -> float:
    """Mean ground-truth accuracy of the k cells with the highest score (ties: the earlier cell)."""
    order = sorted(range(len(score)), key=lambda i: (-score[i], i))[:k]
    return sum(valid[i] for i in order) / len(order)


def compare_scores(scores: dict[str, list[float]], valid: list[float], k: int = TOP_K) -> dict:
    """`{name}_spearman`, `{name}_kendall`, `{name}_top{k}_valid` for every score, plus
    `oracle_top{k}_valid` (the best k cells by the truth itself) and `mean_valid`."""
    report = {}
    for name, score in scores.items():
        report[f"{name}_spearman"] = round(spearman(score, valid), 4)
        report[f"{name}_kendall"] = round(kendall(score, valid), 4)
        report[f"{name}_top{k}_valid"] = round(top_mean(score, valid, k), 3)
    report[f"oracle_top{k}_valid"] = round(top_mean(valid, valid, k), 3)
    report["mean_valid"] = round(sum(valid) / len(valid), 3)
    return report


def with_combinations(scores: dict[str, list[float]]) -> dict[str, list[float]]:
    """`scores` plus the rank averages of the learned scores with the free baselines (params, naswot)."""
    combined = dict(scores)
    free = [name for name in ("params", "naswot") if name in scores]
    for learned in [name for name in ("fitness", "rescored") if name in scores]:
        for baseline in free:
            combined[f"{learned}+{baseline}"] = rank_average(scores[learned], scores[baseline])
        if len(free) == 2:
            combined[f"{learned}+params+naswot"] = rank_average(scores[learned], *(scores[b] for b in free))
    if len(free) == 2:
        combined["params+naswot"] = rank_average(scores["params"], scores["naswot"])
    return combined
