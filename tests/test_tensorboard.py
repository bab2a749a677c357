"""Optional TensorBoard scalars beside the JSONL logs."""

import builtins

import pytest

from autospace.errors import AutospaceError
from autospace.runtime.tensorboard import ScalarMirror


def test_disabled_mirror_writes_nothing(tmp_path):
    mirror = ScalarMirror(tmp_path, enabled=False)
    mirror.log("train", {"loss": 1.0}, 1)
    mirror.close()
    assert not (tmp_path / "tensorboard").exists()


def test_enabled_mirror_writes_numeric_fields(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    mirror = ScalarMirror(tmp_path, enabled=True)
    mirror.log("train", {"loss": 2.0, "accuracy": 0.5, "name": "x", "flag": True, "nan": float("nan")}, 1)
    mirror.log("train", {"loss": 1.0}, 2)
    mirror.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/loss", "train/accuracy"}
    assert [event.value for event in events.Scalars("train/loss")] == [2.0, 1.0]


def test_missing_package_gives_a_clear_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(AutospaceError, match="pip install tensorboard"):
        ScalarMirror(tmp_path, enabled=True)
