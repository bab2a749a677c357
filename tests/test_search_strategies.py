"""Search strategies on toy problems: MAdds terms, per-layer distributions, REINFORCE, SPOS evolution."""

import itertools
import math
import pickle
import random

import pytest
import torch

from autospace.errors import AutospaceError
from autospace.search.budget import (
    check_budget, expected_madds, madds_penalized_loss, maximum_madds, minimum_madds, most_probable_in_band, most_probable_within_budget,
    reward,
)
from autospace.search.distribution import LayerDistributions, MovingAverageBaseline, reinforce_loss
from autospace.search.evolution import EvolutionConfig, evolutionary_search, index_choice_operators

CANDIDATES = [[1_000_000, 3_000_000, 5_000_000], [2_000_000, 4_000_000, 8_000_000, 0], [7_000_000, 9_000_000]]
FIXED = 10_000_000


def network_madds(choice):
    return FIXED + sum(CANDIDATES[layer][index] for layer, index in enumerate(choice))


def random_distributions(seed: int) -> LayerDistributions:
    distributions = LayerDistributions([len(c) for c in CANDIDATES])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for logits in distributions.logits:
            logits.copy_(torch.randn(logits.shape, generator=generator))
    return distributions


# -- budget -------------------------------------------------------------------------------

def test_expected_madds_by_hand_on_two_layers():
    p = [torch.tensor([0.25, 0.75], dtype=torch.float64), torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)]
    madds = [[100, 300], [10, 20, 40]]
    value = expected_madds(p, madds, fixed_madds=1000)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(1000 + 0.25 * 100 + 0.75 * 300 + 0.5 * 10 + 0.3 * 20 + 0.2 * 40)


def test_expected_madds_is_the_mean_of_sampled_networks():
    distributions = random_distributions(0)
    expected = expected_madds(distributions.probabilities(), CANDIDATES, FIXED).item()
    generator = torch.Generator().manual_seed(1)
    draws = [network_madds(distributions.sample(generator)) for _ in range(4000)]
    mean = sum(draws) / len(draws)
    spread = (sum((d - mean) ** 2 for d in draws) / len(draws)) ** 0.5
    assert abs(mean - expected) < 4 * spread / len(draws) ** 0.5


@pytest.mark.parametrize("kind", ["mul-log", "add-linear"])
def test_penalty_gradient_moves_toward_smaller_candidates(kind):
    distributions = LayerDistributions([len(c) for c in CANDIDATES])
    optimizer = torch.optim.Adam(distributions.parameters(), lr=0.05)
    target = minimum_madds(CANDIDATES, FIXED) + 1_000_000
    before = expected_madds(distributions.probabilities(), CANDIDATES, FIXED)
    assert before.item() > target
    smallest_before = distributions.probabilities()[1][3].item()
    loss = madds_penalized_loss(torch.tensor(2.0), before, target, kind=kind)
    optimizer.zero_grad()
    loss.backward()
    assert all(logits.grad is not None and logits.grad.abs().sum() > 0 for logits in distributions.logits)
    optimizer.step()
    after = expected_madds(distributions.probabilities(), CANDIDATES, FIXED)
    assert after.item() < before.item()
    assert distributions.probabilities()[1][3].item() > smallest_before  # the 0-MAdds candidate gains


def test_penalty_formulas_and_unknown_kind():
    ce, expected = torch.tensor(1.5), torch.tensor(200e6, dtype=torch.float64)
    mul = madds_penalized_loss(ce, expected, 100_000_000, "mul-log", alpha=0.2, beta=0.3)
    assert mul.item() == pytest.approx(1.5 * 0.2 * (math.log(200e6) / math.log(100e6)) ** 0.3)
    add = madds_penalized_loss(ce, expected, 100_000_000, "add-linear", weight=0.5)
    assert add.item() == pytest.approx(1.5 + 0.5 * 2.0)
    with pytest.raises(AutospaceError, match="mul-log, add-linear"):
        madds_penalized_loss(ce, expected, 100_000_000, "quadratic")


def test_minimum_maximum_and_check_budget():
    assert minimum_madds(CANDIDATES, FIXED) == 18_000_000
    assert maximum_madds(CANDIDATES, FIXED) == 32_000_000
    check_budget(18_000_000, CANDIDATES, FIXED)
    with pytest.raises(AutospaceError, match=r"below the smallest network.*18\.0M.*at least 18\.0M"):
        check_budget(5_000_000, CANDIDATES, FIXED)
    with pytest.raises(AutospaceError, match="at least 12.4M"):  # rounded up, never below the minimum
        check_budget(5_000_000, [[2_345_678]], 10_000_000)
    with pytest.raises(AutospaceError, match=r"target 17,999,999 MAdds .*\(18,000,000 MAdds.*at least 18000000"):
        check_budget(17_999_999, CANDIDATES, FIXED)  # one decimal would read "18.0M below 18.0M"


def test_absolute_penalty_is_two_sided():
    """TuNAS's |E / target - 1|: a distribution under the target is pulled up as one over it is pulled down."""
    ce = torch.tensor(1.5)
    for expected, direction in ((80e6, -1.0), (120e6, 1.0)):
        value = torch.tensor(expected, dtype=torch.float64, requires_grad=True)
        loss = madds_penalized_loss(ce, value, 100_000_000, "absolute", weight=0.5)
        assert loss.item() == pytest.approx(1.5 + 0.5 * 0.2)
        loss.backward()
        assert math.copysign(1.0, value.grad.item()) == direction  # descent moves E toward the target


def test_reward_by_hand():
    assert reward(0.8, 200, 100, 0.07) == pytest.approx(0.8 * 0.5 ** 0.07)
    assert reward(0.8, 100, 100, 0.5) == pytest.approx(0.8)
    assert reward(0.8, 80, 100, 0.5, "absolute", 0.5) == pytest.approx(0.8 - 0.1)
    assert reward(0.8, 120, 100, 0.5, "absolute", 0.5) == pytest.approx(0.8 - 0.1)
    with pytest.raises(AutospaceError):
        reward(0.8, 0, 100, 0.07)


# -- distributions ------------------------------------------------------------------------

def test_sample_frequencies_follow_probabilities_and_seed_repeats():
    distributions = random_distributions(3)
    draws = [distributions.sample(torch.Generator().manual_seed(5)) for _ in range(2)]
    assert draws[0] == draws[1]
    generator = torch.Generator().manual_seed(7)
    samples = [distributions.sample(generator) for _ in range(3000)]
    for layer, p in enumerate(distributions.probabilities()):
        for index, probability in enumerate(p.tolist()):
            frequency = sum(s[layer] == index for s in samples) / len(samples)
            assert abs(frequency - probability) < 0.04


def test_argmax_and_sample_pairs():
    distributions = LayerDistributions([3, 1, 4])
    assert distributions.argmax() == (0, 0, 0)  # uniform: lowest index
    with torch.no_grad():
        distributions.logits[0][2] = 1.0
        distributions.logits[2][1] = 2.0
    assert distributions.argmax() == (2, 0, 1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        pairs = distributions.sample_pairs(generator)
        assert pairs[1] == ((0,), 0)
        for (active, chosen), count in zip(pairs, (3, 1, 4)):
            if count > 1:
                assert len(active) == 2 and active[0] < active[1] < count and chosen in active


def test_log_probability_entropy_and_state_round_trip():
    distributions = random_distributions(4)
    choice = (2, 1, 0)
    by_hand = sum(math.log(p[i].item()) for p, i in zip(distributions.probabilities(), choice))
    assert distributions.log_probability(choice).item() == pytest.approx(by_hand, abs=1e-5)
    uniform = LayerDistributions([3, 4, 2])
    assert uniform.entropy().item() == pytest.approx(math.log(3) + math.log(4) + math.log(2), abs=1e-5)
    uniform.load_state_dict(pickle.loads(pickle.dumps(distributions.state_dict())))
    assert uniform.argmax() == distributions.argmax()
    with pytest.raises(AutospaceError, match="out of range"):
        distributions.log_probability((3, 0, 0))
    with pytest.raises(AutospaceError, match="same space"):
        LayerDistributions([3, 4]).load_state_dict(distributions.state_dict())


def test_moving_average_baseline():
    baseline = MovingAverageBaseline(decay=0.9)
    assert baseline.update(1.0) == 1.0
    assert baseline.update(2.0) == 1.0
    assert baseline.value == pytest.approx(1.1)
    restored = MovingAverageBaseline()
    restored.load_state_dict(baseline.state_dict())
    assert restored.update(0.0) == pytest.approx(1.1)


def test_reinforce_converges_to_the_best_choice_per_layer():
    table_rng = random.Random(11)
    choices_per_layer = [3, 4, 2, 5]
    table = [[table_rng.random() for _ in range(n)] for n in choices_per_layer]
    best = tuple(max(range(len(row)), key=row.__getitem__) for row in table)
    distributions = LayerDistributions(choices_per_layer)
    optimizer = torch.optim.Adam(distributions.parameters(), lr=0.05)
    baseline = MovingAverageBaseline(0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        choices = [distributions.sample(generator) for _ in range(8)]
        rewards = [sum(row[i] for row, i in zip(table, choice)) for choice in choices]
        b = baseline.update(sum(rewards) / len(rewards))
        loss = reinforce_loss(distributions, choices, rewards, b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert distributions.argmax() == best
    assert all(p.max().item() > 0.8 for p in distributions.probabilities())


# -- evolution ----------------------------------------------------------------------------

TOY_CHOICES = [4, 4, 4, 4, 4, 4]
_toy_rng = random.Random(2)
TOY_MADDS = [[(i + 1) * 1_000_000 + _toy_rng.randrange(100_000) for i in range(n)] for n in TOY_CHOICES]
TOY_BUDGET = 14_000_000


def toy_madds(arch):
    return sum(row[i] for row, i in zip(TOY_MADDS, arch))


def toy_score(arch):  # grows with MAdds, so the best under the budget sits on its edge
    return toy_madds(arch) / 1e6 + 0.01 * sum(i * (layer % 3) for layer, i in enumerate(arch))


def toy_best():
    feasible = [a for a in itertools.product(*(range(n) for n in TOY_CHOICES)) if toy_madds(a) <= TOY_BUDGET]
    ranked = sorted(feasible, key=toy_score, reverse=True)
    assert toy_score(ranked[0]) > toy_score(ranked[1])  # unique
    return ranked[0]


def run_toy(seed, config=EvolutionConfig(), **kwargs):
    sample, mutate, crossover = index_choice_operators(TOY_CHOICES)
    calls = []

    def evaluate(arch):
        calls.append(arch)
        return toy_score(arch)

    result = evolutionary_search(sample, mutate, crossover, evaluate, toy_madds, TOY_BUDGET, config,
                                 random.Random(seed), **kwargs)
    return result, calls


def test_evolution_finds_the_best_network_within_budget():
    best = toy_best()
    for seed in (0, 1):
        (arch, score, history), calls = run_toy(seed)
        assert arch == best and score == toy_score(best)
        assert len(calls) == len(set(calls))  # every architecture evaluated once
        assert all(toy_madds(a) <= TOY_BUDGET for a in calls)
        assert [entry["generation"] for entry in history] == list(range(21))
        assert all(later["best_score"] >= earlier["best_score"] for earlier, later in zip(history, history[1:]))
        assert all(toy_madds(entry["best_arch"]) <= TOY_BUDGET for entry in history)


def test_evolution_same_seed_same_result_and_resume_matches():
    config = EvolutionConfig(generations=6)
    full, _ = run_toy(3, config)
    assert run_toy(3, config)[0] == full
    saved = {}
    run_toy(3, EvolutionConfig(generations=2), on_generation=lambda g, s: saved.__setitem__(g, pickle.dumps(s)))
    assert sorted(saved) == [0, 1, 2]
    resumed, calls = run_toy(99, config, state=pickle.loads(saved[2]))  # the rng state comes from `state`
    assert resumed == full
    assert not set(calls) & {arch for arch, _ in pickle.loads(saved[2])["cache"]}  # nothing re-evaluated


def test_evolution_refuses_a_budget_too_tight():
    sample, mutate, crossover = index_choice_operators(TOY_CHOICES)
    with pytest.raises(AutospaceError, match="found only 0 .*budget may be too tight"):
        evolutionary_search(sample, mutate, crossover, toy_score, toy_madds, 1_000, EvolutionConfig(max_tries=50),
                            random.Random(0))
    with pytest.raises(AutospaceError, match="top"):
        EvolutionConfig(population=5, top=10)


def test_index_choice_operators():
    sample, mutate, crossover = index_choice_operators([3, 1, 5])
    rng = random.Random(0)
    arch = sample(rng)
    assert len(arch) == 3 and arch[1] == 0
    mutated = mutate(arch, rng, 1.0)
    assert mutated[0] != arch[0] and mutated[2] != arch[2] and mutated[1] == 0
    assert mutate(arch, rng, 0.0) == arch
    child = crossover((0, 0, 0), (2, 0, 4), rng)
    assert all(c in (a, b) for c, a, b in zip(child, (0, 0, 0), (2, 0, 4)))
    with pytest.raises(AutospaceError):
        mutate((0, 0, 9), rng, 0.5)


# -- ProxylessNAS-G on a toy: binary gates, two-path sampling, MAdds penalty ----------------

@pytest.mark.parametrize("weight", [0.0, 30.0])
def test_proxyless_gradient_toy_converges(weight):
    from autospace.nn.gates import gated_output, rescale_pair

    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(4, generator=generator)
    shifts = [torch.randn(n, 4, generator=generator) for n in (3, 4, 2)]
    modules = [[lambda x, b=b: x + b for b in layer] for layer in shifts]
    scores = [(layer @ direction).tolist() for layer in shifts]  # the loss is linear: sum of per-layer scores
    madds = [[1_000_000 * (1 + i) for i in range(len(layer))] for layer in shifts]
    if weight == 0:
        best = tuple(min(range(len(s)), key=s.__getitem__) for s in scores)
    else:  # the penalty outweighs the task: the cheapest candidate everywhere
        best = (0, 0, 0)
    distributions = LayerDistributions([len(layer) for layer in shifts])
    optimizer = torch.optim.Adam(distributions.parameters(), lr=0.05, betas=(0.0, 0.999))
    target = minimum_madds(madds, 0)
    for _ in range(300):
        pairs = distributions.sample_pairs(generator)
        y = torch.randn(8, 4, generator=generator)
        for layer_modules, logits, (active, chosen) in zip(modules, distributions.logits, pairs):
            y = gated_output(layer_modules, y, active, chosen, logits)
        task = (y @ direction).mean()
        expected = expected_madds(distributions.probabilities(), madds, 0)
        loss = madds_penalized_loss(task, expected, target, kind="add-linear", weight=weight)
        old = [logits.detach().clone() for logits in distributions.logits]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for logits, previous, (active, _) in zip(distributions.logits, old, pairs):
            rescale_pair(logits, previous, active)
    assert distributions.argmax() == best


# -- the most probable network within the budget ------------------------------------------------

def _brute_force_best(log_p, madds, fixed, target):
    feasible = [choice for choice in itertools.product(*[range(len(layer)) for layer in madds])
                if fixed + sum(layer[i] for layer, i in zip(madds, choice)) <= target]
    return max(sum(layer[i] for layer, i in zip(log_p, choice)) for choice in feasible)


def test_most_probable_within_budget_equals_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        madds = [[rng.randint(0, 30) for _ in range(rng.randint(1, 4))] for _ in range(rng.randint(1, 5))]
        # Repeated values make ties in probability and in MAdds.
        log_p = [[rng.choice([-0.5, -1.0, math.log(rng.random())]) for _ in layer] for layer in madds]
        fixed = rng.randint(0, 5)
        target = rng.randint(max(1, minimum_madds(madds, fixed)), max(1, maximum_madds(madds, fixed)))
        choice = most_probable_within_budget(log_p, madds, fixed, target)
        assert fixed + sum(layer[i] for layer, i in zip(madds, choice)) <= target
        assert sum(layer[i] for layer, i in zip(log_p, choice)) == pytest.approx(
            _brute_force_best(log_p, madds, fixed, target), abs=1e-12)


def test_most_probable_in_band_equals_brute_force():
    """Under the band's floor, the most probable network in [lower, target] when one exists."""
    rng = random.Random(1)
    lifted = 0
    for _ in range(300):
        madds = [[rng.randint(0, 30) for _ in range(rng.randint(1, 4))] for _ in range(rng.randint(1, 5))]
        log_p = [[rng.choice([-0.5, -1.0, math.log(rng.random())]) for _ in layer] for layer in madds]
        fixed = rng.randint(0, 5)
        target = rng.randint(max(1, minimum_madds(madds, fixed)), max(1, maximum_madds(madds, fixed)))
        lower = rng.randint(0, target)
        choice = most_probable_in_band(log_p, madds, fixed, target, lower)
        total = fixed + sum(layer[i] for layer, i in zip(madds, choice))
        score = sum(layer[i] for layer, i in zip(log_p, choice))
        in_band = [c for c in itertools.product(*[range(len(layer)) for layer in madds])
                   if lower <= fixed + sum(layer[i] for layer, i in zip(madds, c)) <= target]
        within = most_probable_within_budget(log_p, madds, fixed, target)
        if fixed + sum(layer[i] for layer, i in zip(madds, within)) >= lower:
            assert choice == within  # a choice already in the band is kept
        elif in_band:
            lifted += 1
            assert lower <= total <= target
            assert score == pytest.approx(max(sum(layer[i] for layer, i in zip(log_p, c)) for c in in_band),
                                          abs=1e-12)
        else:
            assert choice == within  # nothing in the band: the within-target choice
    assert lifted > 30


def test_most_probable_within_budget_keeps_a_fitting_argmax_and_refuses_impossible_targets():
    distributions = LayerDistributions([len(c) for c in CANDIDATES])
    with torch.no_grad():
        for logits, values in zip(distributions.logits, ([0.1, 0.2, 0.3], [0.0, 0.5, 0.9, 0.2], [0.0, 0.4])):
            logits.copy_(torch.tensor(values))
    log_p = distributions.host_log_probabilities()
    argmax = distributions.argmax()
    assert argmax == (2, 2, 1)
    assert most_probable_within_budget(log_p, CANDIDATES, FIXED, network_madds(argmax)) == argmax
    tighter = most_probable_within_budget(log_p, CANDIDATES, FIXED, network_madds(argmax) - 1)
    assert tighter != argmax and network_madds(tighter) < network_madds(argmax)
    assert most_probable_within_budget(log_p, CANDIDATES, FIXED, minimum_madds(CANDIDATES, FIXED)) == (0, 3, 0)
    with pytest.raises(AutospaceError, match="smallest network"):
        most_probable_within_budget(log_p, CANDIDATES, FIXED, minimum_madds(CANDIDATES, FIXED) - 1)
    with pytest.raises(AutospaceError, match="log-probabilities"):
        most_probable_within_budget([[0.0]] + log_p[1:], CANDIDATES, FIXED, 10 ** 9)


def test_host_log_probabilities_match_the_probabilities():
    distributions = random_distributions(4)
    for log_p, p in zip(distributions.host_log_probabilities(), distributions.probabilities()):
        assert torch.tensor(log_p).exp().tolist() == pytest.approx(p.tolist(), abs=1e-7)


def test_host_probabilities_are_cached_until_a_logit_changes():
    from autospace.nn.gates import rescale_pair

    distributions = random_distributions(5)
    first = distributions.host_probabilities()
    assert distributions.host_probabilities() is first  # nothing changed: no new transfer
    optimizer = torch.optim.Adam(distributions.parameters(), lr=0.1, betas=(0.0, 0.999))
    distributions.log_probability((0, 1, 0)).backward()
    optimizer.step()
    after_step = distributions.host_probabilities()
    assert after_step is not first and after_step != first
    expected = [p.tolist() for p in distributions.probabilities()]
    assert after_step == [pytest.approx(p, abs=1e-7) for p in expected]
    old = [logits.detach().clone() for logits in distributions.logits]
    with torch.no_grad():
        distributions.logits[1][2] += 1.0
    rescale_pair(distributions.logits[1], old[1], (1, 2))
    assert distributions.host_probabilities()[1] == pytest.approx(distributions.probabilities()[1].tolist(), abs=1e-7)
    distributions.load_state_dict(random_distributions(6).state_dict())
    assert distributions.host_probabilities() == [
        pytest.approx(p.tolist(), abs=1e-7) for p in random_distributions(6).probabilities()]
    cached = distributions.host_probabilities()
    distributions.refresh()
    assert distributions.host_probabilities() is not cached
