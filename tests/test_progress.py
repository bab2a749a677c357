"""Progress output (issue 32): plain lines every few percent when stderr is not a terminal, and a
remaining time that does not jump after a pause between epochs."""

from __future__ import annotations

import io

from autospace.runtime.progress import LineProgress, open_progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_few_percent_and_no_carriage_returns():
    log = io.StringIO()
    bar = open_progress(1000, 0, "train", file=log, unit="step")
    assert isinstance(bar, LineProgress)
    for _ in range(1000):
        bar.update()
        bar.set_postfix_str("epoch 1/2 loss 2.302")
    bar.write("epoch 1/2 done")
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 20 <= len(lines) <= 22 and lines[-2].startswith("train 100% 1000/1000 steps")
    assert "loss 2.302" in lines[0] and lines[-1] == "epoch 1/2 done"


def test_a_terminal_gets_tqdm_with_the_average_rate():
    bar = open_progress(10, 0, "train", file=Terminal())
    assert type(bar).__name__ == "tqdm" and bar.smoothing == 0  # the ETA is the run's average, not the last steps'
    bar.close()
    assert open_progress(10, 0, "quiet", show=False, file=Terminal()).disable


def remaining_seconds(line: str) -> int:
    left = line.split(", ")[1].split(" left")[0]
    minutes, seconds = left.split(":")
    return 60 * int(minutes) + int(seconds)


def test_remaining_time_does_not_jump_after_an_evaluation_pause():
    log, clock = io.StringIO(), Clock()
    bar = LineProgress(200, 0, "train", log, unit="step", clock=clock)
    for step in range(200):
        clock.now += 1.0
        bar.update()
        if step == 99:
            clock.now += 30.0  # the end of epoch 1: evaluation and a checkpoint
    estimates = [remaining_seconds(line) for line in log.getvalue().splitlines() if " left" in line]
    before, after = estimates[9], estimates[10]  # at 50% and at 55%, either side of the pause
    assert abs(after - before) <= 15, estimates  # the steps left shrink; the average absorbs the pause


def test_a_resumed_bar_counts_its_rate_from_where_it_started():
    log, clock = io.StringIO(), Clock()
    bar = LineProgress(100, 50, "train", log, unit="step", clock=clock)
    for _ in range(10):
        clock.now += 2.0
        bar.update()
    first = log.getvalue().splitlines()[0]
    assert first.startswith("train  55% 55/100") and remaining_seconds(first) == 90  # 45 steps x 2 s


def test_a_training_run_logged_to_a_file_writes_lines(tmp_path, capfd):
    from autospace.arch import InvertedResidual, Layer, Network
    from autospace.train.api import train
    from autospace.train.config import TrainConfig

    network = Network(layers=(Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),),
                      stem_channels=8, stem_stride=1, head_channels=0, num_classes=10, resolution=8)
    train(network, TrainConfig(data="synthetic:256,32", image_size=8, epochs=2, batch_size=8, warmup_epochs=0,
                               device="cpu", progress=True), tmp_path / "run")
    err = capfd.readouterr().err
    assert "\r" not in err and "100% 64/64 steps" in err
    assert len(err.splitlines()) < 40  # 64 steps: a line per 5%, not one per update
