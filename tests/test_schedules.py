import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfsparse import schedules

steps = st.integers(min_value=0, max_value=5000)


@st.composite
def polynomial(draw):
    begin = draw(st.integers(0, 1000))
    end = begin + draw(st.integers(1, 2000))
    final = draw(st.floats(0.0, 0.99))
    initial = draw(st.floats(0.0, final))
    return schedules.PolynomialDecay(
        final_sparsity=final,
        initial_sparsity=initial,
        begin_step=begin,
        end_step=end,
        power=draw(st.sampled_from([1, 2, 3, 4.5])),
        frequency=draw(st.integers(1, 300)),
    )


@given(polynomial(), steps, steps)
def test_polynomial_is_monotone(schedule, a, b):
    low, high = sorted((a, b))
    assert schedule.sparsity(low) <= schedule.sparsity(high)


@given(polynomial())
def test_polynomial_hits_target_exactly_at_end_and_after(schedule):
    assert schedule.sparsity(schedule.end_step) == schedule.final_sparsity
    assert schedule.sparsity(schedule.end_step + 1234) == schedule.final_sparsity
    assert schedule.sparsity(schedule.begin_step) == pytest.approx(schedule.initial_sparsity)
    if schedule.begin_step > 0:
        assert schedule.sparsity(schedule.begin_step - 1) == 0.0


@given(polynomial(), steps)
def test_updates_only_on_frequency_steps(schedule, step):
    expected = schedule.begin_step <= step <= schedule.end_step and (
        (step - schedule.begin_step) % schedule.frequency == 0 or step == schedule.end_step
    )
    assert schedule.is_update_step(step) == expected


@given(polynomial(), steps)
def test_last_update_step_is_latest_update_step_not_after(schedule, step):
    last = schedule.last_update_step(step)
    if step < schedule.begin_step:
        assert last is None
        return
    assert last <= step and schedule.is_update_step(last)
    assert not any(schedule.is_update_step(s) for s in range(last + 1, min(step, schedule.end_step) + 1))


@settings(max_examples=50)
@given(polynomial())
def test_config_round_trip(schedule):
    assert schedules.deserialize(schedules.serialize(schedule)) == schedule
    assert schedules.PolynomialDecay.from_config(schedule.get_config()) == schedule


def test_constant_schedule():
    schedule = schedules.Constant(0.5, begin_step=10, frequency=5)
    assert schedule.sparsity(9) == 0.0 and schedule.sparsity(10) == 0.5 and schedule.sparsity(10**6) == 0.5
    assert schedule.is_update_step(15) and not schedule.is_update_step(16)
    assert schedules.get(schedules.serialize(schedule)) == schedule
    assert not schedule.is_frozen(10**6)


def test_zhu_gupta_formula():
    schedule = schedules.PolynomialDecay(final_sparsity=0.9, begin_step=100, end_step=1100, frequency=1)
    t = 600
    expected = 0.9 + (0.0 - 0.9) * (1 - (t - 100) / 1000) ** 3
    assert math.isclose(schedule.sparsity(t), expected)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(final_sparsity=1.0, end_step=10), "final_sparsity"),
        (dict(final_sparsity=-0.1, end_step=10), "final_sparsity"),
        (dict(final_sparsity=float("nan"), end_step=10), "final_sparsity"),
        (dict(final_sparsity=0.5, begin_step=10, end_step=10), "end_step"),
        (dict(final_sparsity=0.5, end_step=None), "end_step"),
        (dict(final_sparsity=0.5, end_step=10, frequency=0), "frequency"),
        (dict(final_sparsity=0.5, end_step=10, power=0), "power"),
        (dict(final_sparsity=0.5, initial_sparsity=0.6, end_step=10), "initial_sparsity"),
        (dict(final_sparsity=0.5, begin_step=-1, end_step=10), "begin_step"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`"):
        schedules.PolynomialDecay(**kwargs)


def test_get_rejects_garbage():
    with pytest.raises(ValueError, match="schedule"):
        schedules.get("polynomial")
