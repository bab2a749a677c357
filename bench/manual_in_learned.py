"""Does the learned space hold a network as good as the manual arm's? (issue 28: space content or search?)

Translates a manual network block for block into cells of the open space: an inverted residual block
with a k x k depthwise conv becomes the cell that expands, runs depthwise 3x3 convs stacked to the same
receptive field and projects (k3: one; k5: two; k7: three), with the same expansion; zero stays zero
(`--translation k3`: one 3x3 whatever the kernel, the network both spaces hold).
It says which translated blocks a learned space holds (canonical forms), then trains the translated
network with the comparison's final training (same recipe, data subset and seed) and appends one row to
ROWS. If the translation sits inside the learned space and trains as well as the manual network, the
space holds what the manual arm found, and what the learned arm lost is its search and pick's.

    OMP_NUM_THREADS=1 python bench/manual_in_learned.py docs/results/space_vs_manual_fair_seed0_networks.jsonl \\
        --space docs/results/space_vs_manual_fair_seed0_space.json --seed 0 --budget-madds 10M --out runs/translated
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from autospace.arch.blocks import CellBlock, InvertedResidual, canonical_block
from autospace.arch.cell import Cell
from autospace.arch.codec import arch_from_dict, arch_to_dict, load_space
from autospace.arch.ops import EDGES
from autospace.cost.units import parse_madds
from autospace.pipeline import load_run_config, stage_configs
from autospace.runtime.atomic import append_jsonl

# Edges (in `EDGES` order) of the stacked depthwise 3x3 chain per kernel size: 0->1, then 1->2 and 2->3.
CHAINS = {3: {(0, 1): "dwconv3x3", (1, 3): "identity"},
          5: {(0, 1): "dwconv3x3", (1, 2): "dwconv3x3", (2, 3): "identity"},
          7: {(0, 1): "dwconv3x3", (1, 2): "dwconv3x3", (2, 3): "dwconv3x3"}}


def as_cell(block, translation: str = "chain"):
    """An inverted residual block's counterpart in the open space; any other block unchanged.
    `chain`: stacked 3x3 depthwise convs of the block's receptive field; `k3`: one 3x3 depthwise conv
    whatever the block's kernel (isolates what the larger kernels bring)."""
    if not isinstance(block, InvertedResidual):
        return block
    if block.squeeze_excite or block.dilation != 1 or block.activation != "relu6" or block.kernel not in CHAINS:
        raise SystemExit(f"manual_in_learned: no cell counterpart of {block}")
    chain = CHAINS[block.kernel if translation == "chain" else 3]
    return CellBlock(Cell(ops=tuple(chain.get(edge, "zero") for edge in EDGES), expansion=block.expansion))


def translate(network, translation: str = "chain"):
    """The network with every searchable layer's block as its cell counterpart (fixed layers stay)."""
    layers = tuple(replace(layer, block=as_cell(layer.block, translation)) if layer.searchable else layer
                   for layer in network.layers)
    return replace(network, layers=layers)


def held_by_space(network, space) -> list[bool | None]:
    """Per searchable layer: whether the space offers its block (None for zero, which the search adds
    wherever the layer has a residual)."""
    searchable = [layer for layer in network.layers if layer.searchable]
    held = []
    for layer, candidates in zip(searchable, space.layers):
        block = canonical_block(layer.block)
        held.append(None if block.is_empty() else block in {canonical_block(c.block) for c in candidates})
    return held


def main() -> None:
    from autospace.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("networks", type=Path, help="JSONL rows with arm, seed, budget_madds and arch")
    parser.add_argument("--space", type=Path, required=True, help="the learned space.json to look the cells up in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-madds", default="10M")
    parser.add_argument("--translation", choices=("chain", "k3"), default="chain",
                        help="chain: stacked 3x3 depthwise convs of the same receptive field; k3: one 3x3")
    parser.add_argument("--config", default="cpu", help="run preset whose final training the comparison used")
    parser.add_argument("--out", type=Path, default=Path("runs/translated"))
    parser.add_argument("--rows", type=Path, default=None, help="JSONL to append to (default: OUT/rows.jsonl)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    budget = parse_madds(args.budget_madds)
    rows = [json.loads(line) for line in args.networks.read_text().splitlines() if line.strip()]
    source = [row for row in rows if (row.get("arm"), row["seed"], row["budget_madds"]) == ("manual", args.seed, budget)]
    if len(source) != 1:
        raise SystemExit(f"manual_in_learned: {len(source)} manual rows of seed {args.seed} at {budget / 1e6:g}M in "
                         f"{args.networks}; expected 1")
    manual = arch_from_dict(source[0]["arch"])
    network = translate(manual, args.translation)
    held = held_by_space(network, load_space(args.space))

    run = load_run_config(args.config, [f"seed={args.seed}", "progress=false", *args.overrides])
    config = stage_configs(run, args.out)[2]  # the final training as the comparison ran it
    folder = args.out / f"translated-{args.translation}-{budget // 1_000_000}M-seed{args.seed}"
    started = time.perf_counter()
    metrics = train(network, config, folder, resume=(folder / "config.yaml").exists())
    row = {"bench": "manual_in_learned", "config": args.config, "translation": args.translation, "seed": args.seed,
           "budget_madds": budget,
           "space": str(args.space), "held_by_space": held, "all_held": all(h is not False for h in held),
           "manual_test_top1": source[0].get("test_top1"), "manual_arch": source[0]["arch"],
           "arch": arch_to_dict(network), "test_top1": metrics["test_top1"], "madds": metrics["madds"],
           "params": metrics["params"], "epochs": metrics["epochs"], "train_images": metrics["train_images"],
           "train_seconds": metrics.get("wall_time_s"), "device": metrics.get("device"),
           "torch_version": torch.__version__, "run_dir": str(folder),
           "wall_seconds_this_process": round(time.perf_counter() - started, 1)}
    append_jsonl(args.rows or args.out / "rows.jsonl", row)
    print(json.dumps({key: value for key, value in row.items() if key not in ("arch", "manual_arch")}))


if __name__ == "__main__":
    main()
