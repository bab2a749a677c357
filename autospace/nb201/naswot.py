"""NASWOT, a training-free score of a network (Mellor et al., "Neural Architecture Search without
Training", ICML 2021), written from the paper's definition; a baseline beside #params.

For one mini-batch of N images, each image i gets a binary code c_i: for every ReLU unit of the
network (every rectified activation, over all channels and positions), 1 where the unit is active
(its input > 0), else 0. With N_A units, the kernel is K_H[i, j] = N_A - d_H(c_i, c_j), the number
of units on which images i and j agree, i.e. c_i . c_j + (1 - c_i) . (1 - c_j). The score is
log |det K_H|: networks whose activation patterns tell the images apart score higher.

The network is at initialisation, in train mode (BN uses the batch's statistics), no gradients.
`nb201_naswot_scores` scores NB201 cells in NB201's own network (C=16, N=5 by default).
"""

from __future__ import annotations

import torch
from torch import nn

from autospace.arch.nb201 import Nb201Cell, Nb201Skeleton


@torch.no_grad()
def naswot_score(model: nn.Module, inputs: torch.Tensor, forward=None) -> float:
    """log |det K_H| of `model` on the batch `inputs` (codes from every `nn.ReLU` module's input)."""
    count = inputs.shape[0]
    kernel = torch.zeros(count, count, dtype=torch.float64)

    def accumulate(module, module_inputs, output):
        # agreements = c_i.c_j + (1 - c_i).(1 - c_j) = units - |c_i| - |c_j| + 2 c_i.c_j: one matmul, in
        # float32 (exact: every count is an integer below 2^24 for any layer of fewer than 2^23 units)
        codes = (module_inputs[0].detach().reshape(count, -1) > 0).to(torch.float32)
        active = codes.sum(1, dtype=torch.float64)
        agree = 2.0 * (codes @ codes.T).to(torch.float64) + codes.shape[1] - active[:, None] - active[None, :]
        kernel.add_(agree)

    hooks = [module.register_forward_hook(accumulate) for module in model.modules() if isinstance(module, nn.ReLU)]
    was_training = model.training
    try:
        model.train(True)
        (forward or model)(inputs)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    sign, log_determinant = torch.linalg.slogdet(kernel)
    return float(log_determinant) if sign > 0 else float("-inf")


def nb201_naswot_scores(cells: list[Nb201Cell], images: torch.Tensor, num_classes: int,
                        channels: int = 16, cells_per_stage: int = 5, seed: int = 0) -> list[float]:
    """NASWOT of each cell's stand-alone NB201 network (fresh weights from `seed`) on the one batch
    `images` (normalised, N x 3 x H x W); every cell sees the same batch and the same seed."""
    from autospace.nn.nb201 import Nb201Network

    skeleton = Nb201Skeleton(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes,
                             in_channels=images.shape[1], resolution=max(4, images.shape[-1] // 4 * 4))
    scores = []
    for cell in cells:
        network = Nb201Network(cell, skeleton, torch.Generator().manual_seed(seed)).to(images.device)
        scores.append(naswot_score(network, images))
    return scores
