"""Notes a run prints when it ends and its report repeats, from the run's own figures (plain data):
why a found network is not the search's own choice, and why no network of an evolved space fits its
budget. The loops that print them import them from here; the report never imports a loop."""

from __future__ import annotations


def fitted_network_note(argmax_madds: int, target: int) -> str:
    """Why a found network is not the search's own choice: fit_to_budget replaced the argmax network,
    which was over the target or under the band below it."""
    return (f"the search's own choice (the argmax network) has {argmax_madds / 1e6:.2f}M MAdds, "
            f"{argmax_madds / target:.0%} of the {target / 1e6:.1f}M target, so fit_to_budget returned the most "
            f"probable network within the budget instead: the budget, not the search, set its size")


def unreachable_budget_warning(summary: dict) -> str | None:
    """Why a search in this space will refuse the budget, and what evolve setting helps; None when
    some network of the space (skipping every skippable layer) fits it, or when the summary predates
    `smallest_searchable_madds`."""
    smallest, budget = summary.get("smallest_searchable_madds"), summary["budget_madds"]
    if smallest is None or smallest <= budget:
        return None
    return (f"no network of this space fits the budget: the smallest one (every skippable layer skipped, "
            f"the cheapest block elsewhere) costs {smallest / 1e6:.2f}M MAdds against {budget / 1e6:.2f}M, "
            f"so a search at this budget will refuse it. What helps: export_reference_family=true (every "
            f"layer also lists the reference at e1/e3/e6), or a lower skipped_share")
