"""BlurChooser: fixed, deterministic random, and UBP's uncertainty rule on a known batch."""

import pytest
import torch

from eegdecode.targets.chooser import BlurChooser


def test_fixed_and_eval_levels():
    c = BlurChooser(10, 3)
    assert c.choose(torch.arange(4)).tolist() == [1, 1, 1, 1]
    assert BlurChooser(10, 12, level=0).choose(torch.tensor([3, 7])).tolist() == [0, 0]
    r = BlurChooser(10, 12, rule="random", level=5)
    assert r.choose(torch.arange(3), train=False).tolist() == [5, 5, 5]


def test_random_rule_is_deterministic_per_seed_step_and_sample():
    a, b = BlurChooser(1000, 12, rule="random", seed=3), BlurChooser(1000, 12, rule="random", seed=3)
    idx = torch.arange(1000)
    first_a, first_b = a.choose(idx), b.choose(idx)
    assert torch.equal(first_a, first_b)
    assert first_a.dtype == torch.long and 0 <= first_a.min() and first_a.max() < 12
    counts = torch.bincount(first_a, minlength=12)
    assert counts.min() > 50  # ~83 each: all levels drawn
    # A sample's level does not depend on the other samples of its batch.
    c = BlurChooser(1000, 12, rule="random", seed=3)
    assert torch.equal(c.choose(idx[500:510]), first_a[500:510])
    # The next step draws again; another seed draws differently.
    assert not torch.equal(a.choose(idx), first_a)
    assert not torch.equal(BlurChooser(1000, 12, rule="random", seed=4).choose(idx), first_a)
    # The state travels with the module (state_dict), so a resumed run continues the same sequence.
    d = BlurChooser(1000, 12, rule="random", seed=3)
    d.load_state_dict(a.state_dict())
    assert torch.equal(d.choose(idx), a.choose(idx))


def test_uncertainty_rule_on_a_known_batch():
    c = BlurChooser(6, 3, rule="uncertainty")
    idx = torch.tensor([0, 1, 2, 3, 4, 5])
    assert c.choose(idx).tolist() == [1] * 6  # everyone starts at the medium blur
    d = torch.tensor([10.0, 1.0, 1.0, 1.0, 1.0, -8.0])
    c.update(idx, d)
    s = 0.3 * d + 0.7 * torch.ones(6)
    torch.testing.assert_close(c.similarity, s)
    mean, sd = s.mean(), s.std()
    expected = [0 if x > mean + 1.959964 * sd else 2 if x < mean - 1.959964 * sd else 1 for x in d]
    assert c.choose(idx).tolist() == expected == [0, 1, 1, 1, 1, 2]
    assert c.choose(idx, train=False).tolist() == [1] * 6
    # Only the updated samples change.
    c2 = BlurChooser(8, 3, rule="uncertainty")
    c2.update(idx, d)
    assert c2.levels[6:].tolist() == [1, 1] and c2.similarity[6:].tolist() == [1.0, 1.0]
    stack = torch.arange(3 * 6 * 2, dtype=torch.float32).reshape(3, 6, 2)
    picked = c.select(stack, idx, c.choose(idx))
    torch.testing.assert_close(picked[0], stack[0, 0])
    torch.testing.assert_close(picked[5], stack[2, 5])


def test_invalid_settings():
    with pytest.raises(ValueError, match="uses 3"):
        BlurChooser(5, 12, rule="uncertainty")
    with pytest.raises(ValueError, match="allowed values"):
        BlurChooser(5, 3, rule="sometimes")
    with pytest.raises(ValueError, match="level"):
        BlurChooser(5, 3, level=3)
