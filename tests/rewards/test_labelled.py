"""Accuracy on the generated labelled set (real golds, rule-based rewrites and near misses)."""
from mindspeed_rl.rewards import get_reward

from tests.rewards.labelled import build


def test_labelled_set_accuracy_and_false_positives():
    cases = build()
    assert len(cases) > 5000
    acc = get_reward("acc")
    fp = [(r, g) for r, g, ok in cases if not ok and acc(r, g, {}) > 0]
    fn = [(r, g) for r, g, ok in cases if ok and acc(r, g, {}) == 0]
    assert len(fp) == 0, fp[:5]
    assert len(fn) <= len(cases) // 500, fn[:5]
