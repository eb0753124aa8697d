"""benchmarks/dapo_summary.py: pass@1 interpolated by training time, zero-advantage shares."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("dapo_summary", Path(__file__).resolve().parents[2] / "benchmarks" / "dapo_summary.py")
summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summary)


def test_val_curve_and_interpolation():
    rs = [{"iteration": 0, "val/x/pass@1": 0.2}, {"iteration": 1, "timing/all": 10.0},
          {"iteration": 2, "timing/all": 30.0, "val/x/pass@1": 0.6}, {"iteration": 3, "timing/all": 20.0},
          {"iteration": 4, "timing/all": 40.0, "val/x/pass@1": 0.3}]
    curve = summary.val_curve(rs)
    assert curve == [(0, 0.0, 0.2), (2, 40.0, 0.6), (4, 100.0, 0.3)]
    assert summary.interpolate(curve, 0.0) == 0.2
    assert abs(summary.interpolate(curve, 20.0) - 0.4) < 1e-9
    assert abs(summary.interpolate(curve, 70.0) - 0.45) < 1e-9
    assert summary.interpolate(curve, 100.0) == 0.3 and summary.interpolate(curve, 101.0) is None


def test_zero_adv_shares_with_and_without_dynamic_sampling():
    on = [{"dynamic_sampling/groups_constant": 8.0, "dynamic_sampling/prompts_generated": 32.0,
           "advantages/zero_group_fraction": 0.0}]
    off = [{"advantages/zero_group_fraction": 0.25}]
    assert summary.zero_adv(on) == ([0.25], [0.0]) and summary.zero_adv(off) == ([0.25], [0.25])
