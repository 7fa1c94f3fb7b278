"""`--strategy_args` parsing and `make_strategy`'s argument checks (`tfsparse.training`)."""

import re

import pytest

import tfsparse
from tfsparse.training import make_strategy, parse_strategy_args, strategy_arguments

STEPS = {"begin_step": 0, "end_step": 10, "frequency": 1}


def test_values_are_python_literals_lists_included():
    assert parse_strategy_args("layers=['conv1','conv2'],exclude=['fc']") == {
        "layers": ["conv1", "conv2"], "exclude": ["fc"]}
    assert parse_strategy_args("a=1, b=-1e-3, c=True, d=None, e=(1, 2), f={'reap': 1, 'gate': 0.5}, g='x,y'") == {
        "a": 1, "b": -1e-3, "c": True, "d": None, "e": (1, 2), "f": {"reap": 1, "gate": 0.5}, "g": "x,y"}


def test_bare_words_paths_and_regexes_stay_strings():
    assert parse_strategy_args("scope=erk,layers=[conv1, conv2],criterion={reap: 1}") == {
        "scope": "erk", "layers": ["conv1", "conv2"], "criterion": {"reap": 1}}
    assert parse_strategy_args("log_dir=/tmp/run-1,layers=conv.*|pw,exclude=conv{1,2}") == {
        "log_dir": "/tmp/run-1", "layers": "conv.*|pw", "exclude": "conv{1,2}"}
    assert parse_strategy_args("") == parse_strategy_args(None) == {}


@pytest.mark.parametrize("text, problem", [
    ("layers=['a'", "its brackets or quotes are not balanced"),
    ("layers=['a' 'b' +]", "the value of `layers` is not a valid Python literal: ['a' 'b' +]"),
    ("scope=erk,scope=global", "`scope` is given twice"),
    ("0.5,scope=erk", "`0.5` has no `key=` (positional values are not accepted)"),
    ("scope=", "`scope=` has no value"),
    ("my-key=1", "`my-key` in `my-key=1` is not an argument name"),
    ("steps=3", "`steps` is not a strategy argument"),
])
def test_malformed_text_names_strategy_args(text, problem):
    with pytest.raises(ValueError, match=r"^Invalid value received for argument `strategy_args`\. Expected `key=value` "
                                         rf"items.*{re.escape(problem)}.*Received: strategy_args={re.escape(text)}$"):
        parse_strategy_args(text)


def test_target_sparsity_in_strategy_args_points_to_its_flag():
    message = ("Invalid value received for argument `strategy_args`. `target_sparsity` is a flag of its own: pass "
               "--target_sparsity=0.5 instead of putting it in --strategy_args. "
               "Received: strategy_args=target_sparsity=0.5")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_strategy("gmp", target_sparsity=0.9, steps=STEPS, **parse_strategy_args("target_sparsity=0.5"))
    # From Python, target_sparsity is make_strategy's own argument; steps in strategy_args override the computed ones.
    gmp = make_strategy("gmp", target_sparsity=0.5, steps=STEPS, **parse_strategy_args("end_step=5,scope=erk"))
    assert gmp.schedule.final_sparsity == 0.5 and gmp.schedule.end_step == 5 and gmp.scope == "erk"


def test_unknown_argument_lists_the_accepted_ones_and_a_close_match():
    accepted = ("target_sparsity, begin_step, end_step, frequency, initial_sparsity, power, schedule, scope, "
                "max_layer_sparsity, block_shape, layers, exclude, policy, log_dir")
    with pytest.raises(ValueError, match=re.escape(
            f"Strategy 'gmp' does not accept `foo`; it accepts: {accepted}. Received: strategy_args={{'foo': 1}}")):
        make_strategy("gmp", foo=1)
    with pytest.raises(ValueError, match=re.escape("does not accept `sope` (did you mean `scope`?), `layer` (did you "
                                                   "mean `layers`?); it accepts: target_sparsity")):
        make_strategy("gmp", target_sparsity=0.5, steps=STEPS, **parse_strategy_args("sope=erk,layer=['a']"))
    with pytest.raises(ValueError, match=r"Strategy 'nm' does not accept `name`; it accepts: n, m, begin_step"):
        make_strategy("nm", name="x")


@pytest.mark.parametrize("info", tfsparse.list_strategies(), ids=lambda info: info.name)
def test_every_strategy_lists_its_own_and_the_inherited_arguments(info):
    names = strategy_arguments(tfsparse.get_strategy(info.name))
    assert names[-4:] == ["layers", "exclude", "policy", "log_dir"] and "end_step" in names
