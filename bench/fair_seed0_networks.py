"""The networks of issue 28's seed-0 10M rows, which were written before rows carried `arch`.

Rebuilt from the supernet ranking's rows (docs/results/supernet_ranking_networks.jsonl: that run trained
the seed-0 searches' pick candidates, the picks among them) by their choice indices in the manual space
and in the committed seed-0 space; each is checked against its fair row's MAdds, params and test top-1.
Prints one JSON line per network ({arm, seed, budget_madds, test_top1, arch, rebuilt_from}), the format
`bench/longer_training.py --networks` reads.

    python bench/fair_seed0_networks.py > docs/results/space_vs_manual_fair_seed0_networks.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from autospace.arch.codec import arch_to_dict
from autospace.cost import network_cost
from autospace.nn.block_supernet import BlockSupernet
from autospace.search.spaces import resolve_space

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
SPACES = {"manual": "manual", "learned": str(RESULTS / "space_vs_manual_fair_seed0_space.json")}


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (RESULTS / name).read_text().splitlines() if line.strip()]


def main() -> None:
    ranking = read("supernet_ranking_networks.jsonl")
    for row in read("space_vs_manual_fair.jsonl"):
        if row["seed"] != 0 or row["arm"] not in SPACES or "arch" in row:
            continue
        match = [trained for trained in ranking if trained["space"] == row["arm"] and trained["madds"] == row["madds"]
                 and abs(trained["test_top1"] - row["test_top1"]) < 1e-6]
        if len(match) != 1:
            raise SystemExit(f"fair_seed0_networks: {len(match)} ranking rows match the {row['arm']} row; expected 1")
        space = resolve_space(SPACES[row["arm"]], "cifar-small", 10, 3, 32)
        network = BlockSupernet(space, torch.Generator().manual_seed(0)).path_network(match[0]["choice"])
        cost = network_cost(network)
        if (cost.madds, cost.params) != (row["madds"], row["params"]):
            raise SystemExit(f"fair_seed0_networks: the rebuilt {row['arm']} network costs {cost}, its row "
                             f"{row['madds']} MAdds and {row['params']} params")
        print(json.dumps({"arm": row["arm"], "seed": row["seed"], "budget_madds": row["budget_madds"],
                          "test_top1": row["test_top1"], "arch": arch_to_dict(network),
                          "rebuilt_from": {"ranking_key": match[0]["key"], "choice": match[0]["choice"],
                                           "space": Path(SPACES[row["arm"]]).name}}))


if __name__ == "__main__":
    main()
