"""The run object restores a loop's whole state in one call: states registered as rebuilds (a supernet
re-created from a weight generator) load first, then the others (the generators among them) in tracking
order, so the generator a rebuild draws from ends at its checkpointed state."""

import random

import torch

from autospace.runtime.run import open_run
from autospace.train.config import TrainConfig

FORMAT = "autospace.test-run-restore/1"


def tracked_run(out, resume: bool, loads: list):
    run = open_run(TrainConfig(device="cpu", progress=False), out, resume, "test", FORMAT, "test")
    generator = torch.Generator().manual_seed(7)
    rng = random.Random(3)
    state = {"weights": None}

    def rebuild(saved):  # draws from the generator, as a supernet's lazily created banks do
        loads.append(("weights", generator.get_state().clone()))
        state["weights"] = torch.randn(3, generator=generator) * 0 + torch.tensor(saved)

    run.track("generator", generator)
    run.track("weights", save=lambda: state["weights"].tolist(), load=rebuild, rebuild=True)
    run.track("rng", save=rng.getstate, load=lambda saved: (loads.append(("rng", None)), rng.setstate(saved)))
    run.track("added_later", save=lambda: 1, load=lambda saved: loads.append(("added_later", saved)), optional=True)
    return run, generator, rng, state


def test_rebuilds_load_before_the_generators_and_the_generators_end_where_they_were_saved(tmp_path):
    out = tmp_path / "run"
    run, generator, rng, state = tracked_run(out, False, [])
    assert run.restore() is None
    torch.randn(5, generator=generator)  # the loop moves its generators on
    rng.random()
    state["weights"] = torch.tensor([1.0, 2.0, 3.0])
    run.checkpoint(step=4)
    saved_generator, saved_rng = generator.get_state().clone(), rng.getstate()
    run.close()

    loads = []
    resumed, generator, rng, state = tracked_run(out, True, loads)
    fresh = generator.get_state().clone()
    checkpoint = resumed.restore()
    assert checkpoint["step"] == 4
    assert [name for name, _ in loads] == ["weights", "rng", "added_later"]
    assert torch.equal(loads[0][1], fresh)  # the rebuild drew from the generator before it was restored
    assert torch.equal(generator.get_state(), saved_generator) and rng.getstate() == saved_rng
    assert state["weights"].tolist() == [1.0, 2.0, 3.0]
    resumed.close()


def test_an_optional_state_an_older_checkpoint_lacks_is_left_as_it_is(tmp_path):
    out, loads = tmp_path / "run", []
    run = open_run(TrainConfig(device="cpu", progress=False), out, False, "test", FORMAT, "test")
    run.track("rng", random.Random(1))
    run.checkpoint(step=1)  # written before "added_later" existed
    run.close()
    resumed = open_run(TrainConfig(device="cpu", progress=False), out, True, "test", FORMAT, "test")
    resumed.track("rng", random.Random(1))
    resumed.track("added_later", save=lambda: 1, load=loads.append, optional=True)
    assert resumed.restore()["step"] == 1 and loads == []
    resumed.close()
