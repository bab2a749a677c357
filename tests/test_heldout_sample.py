"""Held-out samples are class-balanced even when the data come sorted by class.

CIFAR-10's copy in ../shared/data and every ImageFolder list the training images class by
class; a prefix of the sorted held-out indices ("the first k batches") then holds one or two
classes, and every estimate taken on it (SPOS fitness, the RL reward, NSE's evaluations, the
DEA's held-out diagnostic) measures those classes only.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from autospace.data import synthetic_dataset
from autospace.data.split import class_balanced_order, stratified_split
from autospace.evolve.config import EvolveConfig
from autospace.evolve.dea import fixed_diagnostic_batches
from autospace.search.config import SearchConfig
from autospace.train.session import SearchSession


def sorted_labels(classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(classes).repeat_interleave(per_class)


def test_order_is_a_permutation_of_the_indices():
    labels = sorted_labels(10, 50)
    indices = torch.arange(3, 500, 3)
    order = class_balanced_order(indices, labels, seed=4)
    assert sorted(order.tolist()) == indices.tolist()
    assert order.dtype == indices.dtype


@pytest.mark.parametrize("prefix", [10, 20, 64, 128])
def test_every_prefix_of_balanced_classes_is_balanced(prefix):
    labels = sorted_labels(10, 100)
    counts = torch.bincount(labels[class_balanced_order(torch.arange(1000), labels, seed=0)[:prefix]], minlength=10)
    assert int(counts.max() - counts.min()) <= 1


def test_unequal_classes_keep_their_share_in_a_prefix():
    labels = torch.cat([torch.zeros(600, dtype=torch.int64), torch.ones(300, dtype=torch.int64),
                        torch.full((100,), 2)])
    counts = torch.bincount(labels[class_balanced_order(torch.arange(1000), labels, seed=1)[:100]], minlength=3)
    assert [abs(int(c) - e) <= 1 for c, e in zip(counts, (60, 30, 10))] == [True, True, True]


def test_order_depends_on_the_seed_only():
    labels = sorted_labels(4, 30)
    indices = torch.arange(120)
    assert torch.equal(class_balanced_order(indices, labels, 7), class_balanced_order(indices, labels, 7))
    assert not torch.equal(class_balanced_order(indices, labels, 7), class_balanced_order(indices, labels, 8))


def test_empty_indices_stay_empty():
    assert class_balanced_order(torch.zeros(0, dtype=torch.int64), sorted_labels(3, 2)).numel() == 0


def test_dea_diagnostic_batches_hold_every_class_on_class_sorted_data():
    labels = sorted_labels(10, 40)
    images = torch.zeros(400, 3, 8, 8, dtype=torch.uint8)
    dataset = SimpleNamespace(train_labels=labels, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    train, held = stratified_split(labels, validation_fraction=0.5, seed=0)
    config = EvolveConfig(data="synthetic", batch_size=20, diagnostic_batches=2)
    _, held_out = fixed_diagnostic_batches(images, dataset, train, held, config, False, torch.device("cpu"))
    seen = torch.cat([batch_labels for _, batch_labels in held_out])
    assert torch.bincount(seen, minlength=10).tolist() == [4] * 10


class PredictsClassZero(nn.Module):
    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 0] = 1.0
        return logits


def test_search_validation_on_a_few_batches_is_not_one_class(tmp_path):
    # A model that always answers class 0 scores 10% on a fair sample; on the first batch of
    # class-sorted held-out indices it would score 100%.
    data = synthetic_dataset(train_count=400, test_count=20, resolution=8, seed=0)
    order = torch.sort(data.train_labels, stable=True).indices
    data = dataclasses.replace(data, train_images=data.train_images[order], train_labels=data.train_labels[order])
    train, held = stratified_split(data.train_labels, validation_fraction=0.5, seed=0)
    config = SearchConfig(data="synthetic", batch_size=20)
    session = SearchSession(config=config, out=tmp_path, device=torch.device("cpu"), autocast_dtype=None,
                            channels_last=False, dataset=data, images=data.train_images, train_indices=train,
                            validation_indices=held, train_stream=None, validation_stream=None)
    _, few = session.validation_accuracy(PredictsClassZero(), batches=1)
    _, whole = session.validation_accuracy(PredictsClassZero())
    assert whole == pytest.approx(0.1)
    assert few == pytest.approx(0.1, abs=0.05)
