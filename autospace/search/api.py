"""Search a network inside a space: `search(config, out)` writes out/arch.json.

Spaces: `manual`, `open` (spos only) or a space.json (e.g. from `autospace evolve`).
Methods: proxyless-g, proxyless-rl, spos (DESIGN 2.4).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch

from autospace.arch.codec import save_arch
from autospace.runtime.atomic import atomic_write_json
from autospace.runtime.checkpoints import NEWEST, PREVIOUS
from autospace.cost import network_cost
from autospace.runtime.distributed import sync_batch_layers
from autospace.runtime.run import open_run
from autospace.errors import AutospaceError
from autospace.nn.block_supernet import BlockSupernet
from autospace.runtime.run_lock import run_folder_lock
from autospace.report.notes import fitted_network_note
from autospace.search.budget import check_budget
from autospace.search.config import SEARCH_METHODS, SearchConfig
from autospace.search.constraints import (
    constraint_summary, index_sampler_within, search_constraints, within as within_targets,
)
from autospace.search.evolution import index_choice_operators, index_sampler_within_budget
from autospace.report.markdown import pick_note
from autospace.search.proxyless import CHECKPOINT_FORMAT as PROXYLESS_FORMAT, search_proxyless
from autospace.train.session import open_session
from autospace.search.spaces import BUILT_IN_SPACES, resolve_space, space_file
from autospace.search.spos import CHECKPOINT_FORMAT as SPOS_FORMAT, SposEncoding, search_spos

BUDGET_TOLERANCE = 0.10  # with fit_to_budget=false, gradient and RL results may end up to 10% over the target


def search(config: SearchConfig, out: str | Path, resume: bool = False, stop_after_epoch: int | None = None,
           stop_after_generation: int | None = None, initialise_supernet: Callable | None = None):
    """Run the search; returns the found `Network` (None when stopped early for a test).

    `initialise_supernet(supernet)`, when given, sets the listed-space supernet's weights before
    training starts (the pipeline's warm start from the DEA supernet); a checkpoint, on resume,
    overrides them."""
    if config.method not in SEARCH_METHODS:
        raise AutospaceError(f"unknown search method {config.method!r}; valid methods: {', '.join(SEARCH_METHODS)}")
    out = Path(out)
    if config.space not in BUILT_IN_SPACES and not Path(space_file(config.space)).exists():
        raise AutospaceError(f"search space {config.space!r} is neither a built-in space "
                             f"({', '.join(BUILT_IN_SPACES)}) nor an existing space.json file")
    with run_folder_lock(out, create=not resume):
        return _search(config, Path(out), resume, stop_after_epoch, stop_after_generation, initialise_supernet)


def _search(config: SearchConfig, out: Path, resume: bool, stop_after_epoch: int | None,
            stop_after_generation: int | None, initialise_supernet: Callable | None):
    run = open_run(config, out, resume, f"search {config.method}",
                   SPOS_FORMAT if config.method == "spos" else PROXYLESS_FORMAT,
                   f"lower weight_lr (now {config.weight_lr}) or arch_lr, then --resume",
                   stop_after={"epoch": stop_after_epoch, "generation": stop_after_generation})
    session = open_session(run)
    if resume and not any((out / name).exists() for name in (NEWEST, PREVIOUS)):
        run.keep_log("search.jsonl", 0)  # killed before its first checkpoint: the search starts again
    data = session.dataset
    space = resolve_space(config.space, config.preset, data.num_classes, data.channels, data.resolution)
    generator = torch.Generator().manual_seed(config.seed + 3)
    if space == "open":
        if config.target_latency_ms is not None or config.target_params is not None:
            raise AutospaceError("the open space takes a MAdds target only; for a latency or params target "
                                 "search a listed space (manual or a space.json)")
        if config.method != "spos":
            raise AutospaceError(
                f"the open space has {56365:,} distinct cells per layer, one architecture parameter each; "
                f"{config.method} cannot hold that many: use --method spos (the paper's Full + EA) or "
                f"evolve a space first (autospace evolve) and search in its space.json")
        from autospace.search.open_space import open_space_encoding

        encoding = open_space_encoding(config, data, generator, session)
        network_of = encoding.network
    else:
        supernet = BlockSupernet(space, generator, zero_residual=config.zero_residual)
        if initialise_supernet is not None:
            initialise_supernet(supernet)
        supernet = supernet.to(device=session.device, memory_format=session.memory_format)
        sync_batch_layers(session.distributed, supernet)
        check_budget(config.target_madds, supernet.candidate_madds(), supernet.fixed_madds())
        constraints = search_constraints(config, supernet)
        network_of = supernet.path_network
        if config.method == "spos":
            _, mutate, crossover = index_choice_operators([len(c) for c in supernet.choices])
            tables, fixed = supernet.candidate_madds(), supernet.fixed_madds()
            sample = index_sampler_within_budget(tables, fixed, config.target_madds)
            madds = lambda choice: fixed + sum(t[i] for t, i in zip(tables, choice))  # noqa: E731
            if len(constraints) > 1:  # over any other target counts as over the MAdds budget
                sample = index_sampler_within(constraints)
                madds = lambda choice, m=madds: (m(choice) if within_targets(constraints, choice)  # noqa: E731
                                                 else config.target_madds + 1)
            encoding = SposEncoding(
                supernet=supernet, sample=sample, mutate=mutate, crossover=crossover,
                madds=madds, paths=lambda choice: [((i,), i) for i in choice])

    pick = None
    if config.method == "spos":
        best, score, records = search_spos(session, encoding)
    else:
        best, _, records, pick = search_proxyless(session, supernet, config.method == "proxyless-g",
                                                  constraints=constraints)
        score = records[-1]["validation_accuracy"] if records else None
        if pick is not None:
            score = pick["candidates"][pick["picked"]]["heldout_top1"] / 100.0
    if best is None:
        return None

    network = network_of(best)
    cost = network_cost(network)
    hard_budget = config.method == "spos" or config.fit_to_budget
    within = cost.madds <= config.target_madds * (1 + (0 if hard_budget else BUDGET_TOLERANCE))
    result = {"method": config.method, "space": config.space, "target_madds": config.target_madds,
              "madds": cost.madds, "params": cost.params, "madds_over_target": cost.madds / config.target_madds,
              "within_budget": within, "validation_accuracy": score,
              "wall_time_s": round(records[-1]["elapsed_seconds"], 1) if records else None}
    if space != "open" and len(constraints) > 1:
        result.update(constraint_summary(constraints, best))
        within = result["within_budget"] = within and within_targets(
            constraints, best, 0 if hard_budget else BUDGET_TOLERANCE)
    if config.method != "spos" and records:
        # What the architecture distributions chose on their own, and whether the budget changed it.
        result["argmax_madds"] = records[-1]["argmax_madds"]
        # Whether the log-probability fitting rule, not the search or a measurement, chose the network.
        result["fitted_to_budget"] = pick is None and records[-1]["argmax"] != records[-1]["choice"]
        result["pick"] = pick or {"method": "fitted" if config.fit_to_budget else "argmax"}
    if run.is_main and pick is not None:
        print(f"autospace: note: {pick_note(pick, config.target_madds)}", file=sys.stderr)
    if run.is_main and result.get("fitted_to_budget") and "within_all_targets" not in result:  # MAdds alone
        hint = fitting_hint(config, records[-1]["expected_madds"], result["argmax_madds"])
        print(f"autospace: note: {fitted_network_note(result['argmax_madds'], config.target_madds)}; "
              f"for a search that holds the budget itself, {hint}", file=sys.stderr)
    if run.is_main and not within:
        print(f"autospace: warning: the found network has {cost.madds / 1e6:.1f}M MAdds, more than "
              f"{100 * BUDGET_TOLERANCE:.0f}% over the {config.target_madds / 1e6:.1f}M target; "
              f"{_stronger_penalty_hint(config)}, or keep fit_to_budget=true", file=sys.stderr)
    # arch.json last: `autospace run` takes it as the sign that the search stage is done.
    # Every measured candidate as an arch.json of its own (`autospace train search/pick/candidate_3.json`).
    candidate_writes = [lambda i=i, c=c: save_arch(out / "pick" / f"candidate_{i}.json", network_of(tuple(c["choice"])),
                                                   info={"heldout_top1": c["heldout_top1"], "madds": c["madds"]})
                        for i, c in enumerate(pick["candidates"] if pick else [], start=1)]
    run.finish(None, "", [*candidate_writes, lambda: atomic_write_json(out / "result.json", result),
                          lambda: save_arch(out / "arch.json", network, info=result)])
    return network


def fitting_hint(config: SearchConfig, expected_madds: float, argmax_madds: int) -> str:
    """What would let the search's own choice meet the budget, when fit_to_budget had to replace it."""
    over = argmax_madds > config.target_madds
    if (abs(expected_madds / config.target_madds - 1) <= BUDGET_TOLERANCE
            or (expected_madds > config.target_madds) != over):
        # The mean is on the target or on its other side: the argmax of spread distributions is not the mean,
        # and a stronger MAdds term would move the mean, not the argmax.
        return (f"a stronger MAdds term will not help: the distributions average {expected_madds / 1e6:.1f}M MAdds "
                f"({expected_madds / config.target_madds:.0%} of the target) but are spread over cheap and costly "
                f"blocks, so their argmax is not their mean; more epochs (now {config.epochs}) or a higher arch_lr "
                f"(now {config.arch_lr}) sharpen them, slowly")
    if over or config.penalty == "absolute":
        return _stronger_penalty_hint(config)
    return "use penalty=absolute (two-sided: a lighter penalty only pulls down less, never up)"


def _stronger_penalty_hint(config: SearchConfig) -> str:
    """The setting that strengthens the MAdds term. (Not penalty_alpha: it scales the whole mul-log loss,
    and Adam's step does not change with the scale of the loss.)"""
    if config.method == "proxyless-rl":
        return f"raise rl_exponent (now {config.rl_exponent})"
    if config.penalty == "mul-log":
        return f"raise penalty_beta (now {config.penalty_beta}) or use penalty=add-linear"
    return f"raise penalty_weight (now {config.penalty_weight})"

