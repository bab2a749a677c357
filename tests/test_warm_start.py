"""The search supernet of a learned space started from the DEA supernet's weights (`warm_start`)."""

from __future__ import annotations

import re

import pytest
import torch

from autospace.arch import Candidate, Cell, CellBlock, SearchSpace, Skeleton, Stage, reference_cell
from autospace.errors import AutospaceError
from autospace.evolve import evolve
from autospace.evolve.checkpoint import dea_warm_start
from autospace.evolve.config import EvolveConfig
from autospace.nn.block_supernet import BlockSupernet
from autospace.nn.supernet import CellSupernet
from autospace.nn.warm_start import copy_dea_weights
from autospace.pipeline import search_initialiser
from autospace.search import search
from autospace.search.config import SearchConfig

SKELETON = Skeleton(stages=(Stage(8, 2, 1), Stage(12, 2, 2)), stem_channels=8, first_channels=8,
                    head_channels=16, num_classes=5, resolution=12)
SUM_E1 = Cell(("conv1x1", "conv3x3", "dwconv3x3", "identity", "conv1x1", "conv3x3"), 1, "sum")
CONCAT_E3 = Cell(("conv3x3", "identity", "conv1x1", "dwconv3x3", "zero", "identity"), 3, "concat")


def trained_dea() -> CellSupernet:
    generator = torch.Generator().manual_seed(0)
    supernet = CellSupernet(SKELETON, generator)
    supernet.set_candidates([[reference_cell(), SUM_E1]] * 4, [[0.0, 0.0]] * 4, generator)
    with torch.no_grad():  # weights unlike any fresh initialisation
        for parameter in supernet.weight_parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return supernet


def test_every_path_of_banked_cells_computes_what_the_dea_supernet_computes():
    source = trained_dea().eval()
    space = SearchSpace(skeleton=SKELETON, layers=tuple(
        tuple(Candidate(CellBlock(cell)) for cell in (reference_cell(), SUM_E1, CONCAT_E3)) for _ in range(4)))
    target = BlockSupernet(space, torch.Generator().manual_seed(5))
    fresh = {name: tensor.clone() for name, tensor in target.state_dict().items()}
    assert copy_dea_weights(target, source) == 8  # two banked cells in each of 4 layers; CONCAT_E3 is not banked
    target.eval()
    x = torch.randn(2, 3, 12, 12)
    for chosen in (0, 1):
        paths = [((chosen,), chosen)] * 4
        assert torch.allclose(target(x, paths), source(x, paths), atol=1e-6)
    unbanked = [name for name in fresh if re.match(r"layers\.\d+\.2\.", name)]
    assert unbanked and all(torch.equal(fresh[name], target.state_dict()[name]) for name in unbanked)


def test_warm_start_needs_the_evolve_checkpoint_beside_the_space(tmp_path):
    assert search_initialiser(SearchConfig(space="manual", warm_start=True)) is None  # nothing to start from
    assert search_initialiser(SearchConfig(space=str(tmp_path / "space.json"))) is None
    (tmp_path / "space.json").write_text("{}")
    initialise = search_initialiser(SearchConfig(space=str(tmp_path / "space.json"), warm_start=True))
    with pytest.raises(AutospaceError, match="holds no evolve checkpoint"):
        initialise(None)


def test_a_search_in_an_evolved_space_starts_from_the_dea_supernet(tmp_path):
    evolve("autospace", EvolveConfig(data="synthetic:256,64", preset="cifar-small", budget_madds=14_000_000,
                                     epochs=1, batch_size=32, population_size=4, candidates_per_layer=2, top_k=2,
                                     regenerate_every=3, device="cpu", progress=False), tmp_path / "evolve")
    copied = []
    warm = dea_warm_start(tmp_path / "evolve")
    config = SearchConfig(data="synthetic:256,64", space=str(tmp_path / "evolve" / "space.json"),
                          preset="cifar-small", target_madds=14_000_000, epochs=2, warmup_epochs=1, batch_size=32,
                          device="cpu", progress=False, warm_start=True)
    network = search(config, tmp_path / "search", initialise_supernet=lambda supernet: copied.append(warm(supernet)))
    assert network is not None and copied and copied[0] > 0
