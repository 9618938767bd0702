"""The strategy spec grammar: what parses to what, round trips, and errors that point at the bad token."""

from __future__ import annotations

import pytest

from alloop import SelectionEngine
from alloop.errors import ConfigError
from alloop.strategies import EntropySampling, MarginSampling, RandomSampling, make_strategy, parse_spec
from alloop.strategies._spec import tokenize
from alloop.strategies.compose import Exclude, PerClassQuota, Product, Schedule, TwoStage, WeightedSum


def test_tokenizer_keeps_kebab_names_whole_and_splits_ranges():
    kinds = [(t.kind, t.text) for t in tokenize("least-confidence@0-2, margin - random")]
    assert kinds == [
        ("NAME", "least-confidence"),
        ("AT", "@"),
        ("NUMBER", "0"),
        ("MINUS", "-"),
        ("NUMBER", "2"),
        ("COMMA", ","),
        ("NAME", "margin"),
        ("MINUS", "-"),
        ("NAME", "random"),
        ("END", ""),
    ]
    assert [(t.kind, t.text) for t in tokenize("top(margin, 10k) >> random(seed=3)")] == [
        ("NAME", "top"),
        ("LPAREN", "("),
        ("NAME", "margin"),
        ("COMMA", ","),
        ("COUNT", "10k"),
        ("RPAREN", ")"),
        ("SHIFT", ">>"),
        ("NAME", "random"),
        ("ARGS", "(seed=3)"),
        ("END", ""),
    ]
    # a parameter list is one token even when it holds quoted specs with parentheses and commas
    assert [t.kind for t in tokenize("exclude(inner='top(margin, 5) >> random', ids=(1, 2))")] == [
        "NAME",
        "ARGS",
        "END",
    ]


def test_simple_specs_build_plain_strategies():
    assert isinstance(make_strategy("margin"), MarginSampling)
    r = make_strategy(" random(seed=3) ")
    assert isinstance(r, RandomSampling) and r.seed == 3
    assert parse_spec("random(seed=3)") == ("random", {"seed": 3})  # the simple parser still works


def test_composite_specs_build_the_right_structure():
    w = make_strategy("0.7*margin + 0.3*entropy")
    assert isinstance(w, WeightedSum) and w.weights == (0.7, 0.3)
    assert [type(p) for p in w.parts] == [MarginSampling, EntropySampling]
    assert make_strategy("margin + entropy").weights is None
    assert make_strategy("margin - 0.5*entropy").weights == (1.0, -0.5)

    p = make_strategy("margin * entropy * random(seed=1)")
    assert isinstance(p, Product) and len(p.parts) == 3 and p.parts[2].seed == 1

    t = make_strategy("top(margin, 10k) >> random")
    assert isinstance(t, TwoStage) and t.m == "10k" and isinstance(t.first, MarginSampling)
    assert make_strategy("top(margin, 500) >> random").m == 500
    # >> is right-associative: each stage prefilters for the next
    chain = make_strategy("top(margin, 8k) >> top(entropy, 2k) >> random")
    assert isinstance(chain.then, TwoStage) and chain.m == "8k" and chain.then.m == "2k"

    s = make_strategy("random@0-2, margin")
    assert isinstance(s, Schedule) and s.when == ("0-2",)
    s2 = make_strategy("margin @labeled<100, entropy")
    assert s2.when == ("labeled<100",) and "labels" in s2.needs

    # precedence: * binds tighter than +, + tighter than >>, >> tighter than @ and ','
    mixed = make_strategy("top(0.5*margin * entropy + random, 3k) >> random@1, margin")
    assert isinstance(mixed, Schedule)
    stage = mixed.parts[0]
    assert isinstance(stage, TwoStage) and isinstance(stage.first, WeightedSum)
    assert isinstance(stage.first.parts[0], Product) and stage.first.weights == (0.5, 1.0)


def test_call_form_builds_any_registered_composite():
    q = make_strategy("per-class-quota(inner='margin', quota='proportional')")
    assert isinstance(q, PerClassQuota) and q.inner == "margin"
    e = make_strategy("exclude(inner='0.5*margin + entropy', ids=(3, 4))")
    assert isinstance(e, Exclude) and e.ids == (3, 4)
    assert make_strategy("weighted(parts=('margin', 'entropy'))") == make_strategy("margin + entropy")


ROUND_TRIP = [
    "0.7*margin + 0.3*entropy",
    "margin + entropy",
    "margin - random(seed=2)",
    "-1*margin",
    "1*margin",
    "2*margin * entropy",
    "margin * entropy",
    "(margin + entropy) * random",
    "0.25*margin * entropy + 0.75*least-confidence",
    "top(margin, 10k) >> random",
    "top(margin, 2.5k) >> random",
    "top(margin, 500) >> random(seed=4)",
    "top(top(margin, 5k) >> entropy, 2k) >> random",
    "top((random@0, margin), 3k) >> entropy",
    "random@0-2, margin",
    "random@0-2, entropy@3, margin",
    "margin@labeled<100, entropy",
    "top(margin, 10k) >> random@0-1, 0.5*margin + 0.5*entropy",
    "(random@0-2, margin) + entropy",
    "per-class-quota(inner='top(margin, 3k) >> random')",
    "exclude(inner='margin', ids=(1, 'a'), flag='flips')",
]


@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_spec_round_trips(spec):
    built = make_strategy(spec)
    assert built.spec == spec
    again = make_strategy(built.spec)
    assert again == built and again.spec == built.spec


def test_composites_built_in_python_print_a_spec_that_parses_to_an_equal_composite():
    inner = WeightedSum(parts=(MarginSampling(), "entropy"), weights=(2, 1))
    two = TwoStage(first=inner, then=RandomSampling(seed=5), m=40)
    sched = Schedule(parts=(two, Product(parts=("margin", "entropy"))), when=("1-3",))
    assert sched.spec == "top(2*margin + entropy, 40) >> random(seed=5)@1-3, margin * entropy"
    assert make_strategy(sched.spec) == sched
    # sugar forms normalise: '>>' without top() means top(…, 10k); equal weights of 1 print without weights
    assert make_strategy("margin >> random") == make_strategy("top(margin, 10k) >> random")
    assert make_strategy("margin >> random").spec == "top(margin, 10k) >> random"
    assert make_strategy("1*margin + 1*entropy").spec == "margin + entropy"
    assert make_strategy("0.25*(margin * entropy) + 0.75*least-confidence").spec == (
        "0.25*margin * entropy + 0.75*least-confidence"  # a weight applies to the whole product after it
    )
    assert make_strategy("top(margin, 10.0k) >> random").spec == "top(margin, 10k) >> random"
    assert make_strategy("0.7*margin + 0.3*entropy") != make_strategy("0.3*margin + 0.7*entropy")


def _caret_column(message: str) -> int:
    lines = message.splitlines()
    return lines[-1].index("^") - 2  # both display lines are indented by two spaces


ERRORS = [
    # (spec, fragment of the message, the column of the caret)
    ("0.7*margin +", "expected a strategy name after '+'", 12),
    ("0.7*margin + + entropy", "expected a strategy name after '+'", 13),
    ("margn", "Unknown strategy 'margn'. Did you mean 'margin'?", 0),
    ("0.5*margin + 0.5*entropyy", "Did you mean 'entropy'?", 17),
    ("margin-entropy", "To subtract, put spaces around '-': 'margin - entropy'", 0),
    ("margin entropy", "expected an operator", 7),
    ("top(margin, 10k)", "expected '>>' and a second strategy", 16),
    ("top(margin 10k) >> random", "expected ',' and a prefilter size", 11),
    ("top(margin, 0) >> random", "expected a prefilter size such as 10k", 12),
    ("top(margin, x) >> random", "expected a prefilter size such as 10k", 12),
    ("top(margin, 10k) + entropy", "top(...) cannot be weighted or added", 0),
    ("margin * top(margin, 10k) >> random", "top(...) cannot be multiplied", 9),
    ("0.5*top(margin, 10k) >> random", "top(...) cannot be weighted or added", 4),
    ("coreset@0-2", "expected ',' and a default strategy after the schedule condition", 11),
    ("margin@0-2, entropy@3", "the last schedule entry is the default", 19),
    ("margin, entropy", "every schedule entry but the last needs a condition", 0),
    ("margin@2-1, random", "the loop range 2-1 is empty", 9),
    ("margin@0-, random", "expected the last loop of the range after '-'", 9),
    ("margin@, random", "expected a loop range such as '0-2'", 7),
    ("margin@1.5, random", "expected a whole loop number", 7),
    ("margin@labeled>3, random", "unexpected character '>'", 14),
    ("margin@labeled, random", "expected '<' and a labeled-set size", 14),
    ("margin * 0.7", "a weight goes before its strategy", 9),
    ("0.7 margin", "expected '*' and a strategy after the weight 0.7", 4),
    ("10k*margin", "'10k' is a prefilter size", 0),
    ("(margin + entropy", "expected ')' to close the '(' at column 1", 17),
    ("margin)", "this ')' closes nothing", 6),
    ("margin + (entropy *)", "expected a strategy name after '*', found ')'", 19),
    ("margin > random", "unexpected character '>' (a two-stage spec uses '>>')", 7),
    ("margin ! random", "unexpected character '!'", 7),
    ("random(sed=3) + margin", "Strategy 'random' has no parameter 'sed'; its parameters are: seed.", 7),
    ("margin + random(seed=abs(3))", "the value of 'seed' must be a literal", 21),
    ("margin + random(seed=)", "is not valid", 21),
    ("random(3)", "give parameters by name", 6),
    ("margin + random(seed=3", "must look like 'name' or 'name(key=value, ...)'", 15),
    ("exclude(inner=margin)", "write a strategy given as a parameter as a quoted spec", 14),
]


@pytest.mark.parametrize(("spec", "fragment", "column"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_point_at_the_bad_token(spec, fragment, column):
    with pytest.raises(ConfigError) as info:
        make_strategy(spec)
    message = str(info.value)
    assert fragment in message
    lines = message.splitlines()
    assert lines[-2] == f"  {spec}"  # the spec is shown as given
    assert _caret_column(message) == column


def test_empty_spec_and_wrong_types():
    with pytest.raises(ConfigError, match="spec is empty"):
        make_strategy("   ")
    with pytest.raises(ConfigError, match="must be a name, a spec string or a Strategy; got int"):
        make_strategy(3)  # type: ignore[arg-type]


def test_errors_in_parts_given_as_strings_surface_at_first_use():
    bad = WeightedSum(parts=("margin", "entropyy"))  # the constructor only stores
    with pytest.raises(ConfigError, match="Did you mean 'entropy'"):
        _ = bad.needs
    with pytest.raises(ConfigError, match="'weights' parameter of WeightedSum must be a tuple of 2 finite numbers"):
        WeightedSum(parts=("margin", "entropy"), weights=(1.0,)).needs and WeightedSum(
            parts=("margin", "entropy"), weights=(1.0,)
        ).score(None)  # type: ignore[arg-type]
    ten = TwoStage(first="margin", then="random", m="ten")
    assert ten.spec == "two-stage(first='margin', then='random', m='ten')"  # invalid: printed in call form
    with pytest.raises(ConfigError, match="'m' parameter of TwoStage must be an int >= 1 or a multiple of k"):
        make_strategy(ten.spec).select(None, 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'when' parameter of Schedule must be a tuple of 1 conditions"):
        _ = Schedule(parts=("margin", "random"), when=()).needs


def test_engine_and_toml_style_specs_work_end_to_end():
    import numpy as np

    from alloop import Snapshot

    engine = SelectionEngine("top(margin, 2k) >> random(seed=1)", classes=[0, 1])
    engine.add_records(list(range(10)))
    probs = np.linspace(0.05, 0.95, 10)
    engine.ingest(Snapshot(ids=list(range(10)), probs=np.column_stack([probs, 1 - probs])))
    sel = engine.recommend(2)
    assert sel.strategy == "top(margin, 2k) >> random(seed=1)"
    # the prefilter keeps the 4 records closest to 0.5 (ids 3..6); random picks 2 of them
    assert set(sel.ids.tolist()) <= {3, 4, 5, 6} and sel.ids.size == 2


@pytest.mark.parametrize("spec", ["é", "margin²", "²", "margin + é", "ªmargin"])
def test_non_ascii_characters_are_a_config_error_not_a_crash(spec):
    # found by fuzzing the service's API (tests/test_api_fuzz.py): str.isalpha() accepts non-ASCII letters
    with pytest.raises(ConfigError, match="unexpected character"):
        make_strategy(spec)
