"""Rotating checkpoints and the non-finite loss guard shared by every run kind."""

import pytest
import torch

from autospace.runtime.checkpoints import (
    NEWEST, PREVIOUS, load_rotating_checkpoint, require_finite_loss, save_rotating_checkpoint,
)
from autospace.errors import AutospaceError


def test_rotation_keeps_two_and_falls_back(tmp_path):
    save_rotating_checkpoint(tmp_path, {"step": 1}, "fmt/1")
    save_rotating_checkpoint(tmp_path, {"step": 2}, "fmt/1")
    assert load_rotating_checkpoint(tmp_path, "fmt/1")["step"] == 2
    (tmp_path / NEWEST).write_bytes(b"torn")
    assert load_rotating_checkpoint(tmp_path, "fmt/1")["step"] == 1
    (tmp_path / PREVIOUS).write_bytes(b"torn too")
    with pytest.raises(AutospaceError, match="no readable checkpoint"):
        load_rotating_checkpoint(tmp_path, "fmt/1")


def test_foreign_format_and_missing_keys_are_not_loaded(tmp_path):
    save_rotating_checkpoint(tmp_path, {"step": 1}, "other/1")
    with pytest.raises(AutospaceError, match="expected 'fmt/1'"):
        load_rotating_checkpoint(tmp_path, "fmt/1")
    assert load_rotating_checkpoint(tmp_path / "empty", "fmt/1") is None
    save_rotating_checkpoint(tmp_path, {"weights": torch.zeros(2)}, "fmt/1")
    with pytest.raises(AutospaceError, match="missing step"):
        load_rotating_checkpoint(tmp_path, "fmt/1", required_keys=("step",))


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path):
    require_finite_loss(2.3, "train", "epoch 1", tmp_path, "lower lr")
    with pytest.raises(AutospaceError, match="no checkpoint was written yet"):
        require_finite_loss(float("nan"), "train", "epoch 1", tmp_path, "lower lr")
    save_rotating_checkpoint(tmp_path, {"step": 1}, "fmt/1")
    with pytest.raises(AutospaceError, match=r"evolve: the loss became inf at step 7; the last good checkpoint is .*checkpoint.pt; lower lr"):
        require_finite_loss(float("inf"), "evolve", "step 7", tmp_path, "lower lr")
