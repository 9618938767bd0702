"""alloop.bench.simulate: the protocol contract, determinism, paired design and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from alloop._cli_simulate import simulate_command
from alloop.bench import paired_split, plot_learning_curves, run_campaign, simulate
from alloop.datasets import Dataset, load_dataset
from alloop.errors import ConfigError

SMALL = dict(initial=6, batch=4, budget=18, seeds=3, test_size=0.3)
RESULT_KEYS = {
    "aubc_mean",
    "aubc_std",
    "aubc_per_seed",
    "final_accuracy_mean",
    "labels",
    "curve_mean",
    "curve_std",
    "seconds",
    "paired_vs",
}
PAIRED_KEYS = {"baseline", "aubc_diff_mean", "aubc_diff_std", "wins", "ties", "losses", "t_pvalue", "wilcoxon_pvalue"}
PROTOCOL_KEYS = {
    "data",
    "model",
    "strategies",
    "initial",
    "batch",
    "budget",
    "seeds",
    "test_size",
    "target",
    "n_records",
    "n_train",
    "n_test",
    "embeddings",
    "baseline",
}


def _strip_seconds(result):
    return {spec: {k: v for k, v in r.items() if k != "seconds"} for spec, r in result["results"].items()}


@pytest.fixture(scope="module")
def wine_result():
    return simulate("wine", "logreg", ["margin", "random", "entropy"], **SMALL)


def test_result_has_exactly_the_documented_keys(wine_result):
    assert set(wine_result) == {"protocol", "results"}
    assert set(wine_result["protocol"]) == PROTOCOL_KEYS
    assert list(wine_result["results"]) == ["margin", "random", "entropy"]
    for r in wine_result["results"].values():
        assert set(r) == RESULT_KEYS
    json.dumps(wine_result)  # plain JSON: no numpy scalars, no NaN objects


def test_rerun_gives_identical_numbers(wine_result):
    again = simulate("wine", "logreg", ["margin", "random", "entropy"], **SMALL)
    assert _strip_seconds(again) == _strip_seconds(wine_result)
    assert again["protocol"] == wine_result["protocol"]


def test_labels_axis_respects_the_budget_exactly(wine_result):
    # initial 6, batch 4, budget 18: 6, 10, 14, then the last batch is cut to 4 → 18
    for r in wine_result["results"].values():
        assert r["labels"] == [6, 10, 14, 18]
        assert len(r["curve_mean"]) == len(r["curve_std"]) == 4


def test_last_batch_is_cut_to_fit_the_budget():
    ds = load_dataset("wine")
    train, test, init = paired_split(ds.y, 0, 0.3, 5)
    trace = run_campaign(ds, "logreg", "margin", train=train, test=test, initial_rows=init, batch=4, budget=15, seed=0)
    assert trace.labels == [5, 9, 13, 15]
    assert [b.size for b in trace.batches] == [4, 4, 2]
    assert trace.selected.size + init.size == 15


def test_statistics_are_consistent(wine_result):
    for r in wine_result["results"].values():
        per_seed = np.array(r["aubc_per_seed"])
        assert len(per_seed) == 3
        assert r["aubc_mean"] == pytest.approx(per_seed.mean())
        assert r["aubc_std"] == pytest.approx(per_seed.std(ddof=0))
        assert r["aubc_mean"] == pytest.approx(np.mean(r["curve_mean"]))
        assert r["final_accuracy_mean"] == pytest.approx(r["curve_mean"][-1])


def test_simulate_uses_the_documented_split_and_initial_set(wine_result):
    """Recompute each seed by hand from the documented protocol: simulate must agree exactly."""
    from sklearn.model_selection import train_test_split

    ds = load_dataset("wine")
    for s in range(3):
        train, test = train_test_split(np.arange(ds.n_samples), test_size=0.3, stratify=ds.y, random_state=s)
        init = np.random.default_rng(s).choice(train, size=6, replace=False)
        tr2, te2, init2 = paired_split(ds.y, s, 0.3, 6)
        np.testing.assert_array_equal(init, init2)
        np.testing.assert_array_equal(test, te2)
        for spec in ("margin", "random"):
            trace = run_campaign(
                ds, "logreg", spec, train=train, test=test, initial_rows=init, batch=4, budget=18, seed=s
            )
            assert trace.aubc == wine_result["results"][spec]["aubc_per_seed"][s]


def test_paired_design_same_split_and_initial_set_for_every_strategy():
    ds = load_dataset("wine")
    train, test, init = paired_split(ds.y, 1, 0.3, 6)
    traces = {
        spec: run_campaign(ds, "logreg", spec, train=train, test=test, initial_rows=init, batch=4, budget=18, seed=1)
        for spec in ("margin", "random", "least-confidence")
    }
    for t in traces.values():
        np.testing.assert_array_equal(t.initial, init)
    # the initial fit sees the same labels, so the first accuracy point is shared
    assert len({t.accuracy[0] for t in traces.values()}) == 1
    # different seeds give different splits
    assert not np.array_equal(paired_split(ds.y, 2, 0.3, 6)[1], test)


def test_test_rows_are_never_selected_even_when_the_pool_runs_out():
    ds = load_dataset("iris")
    train, test, init = paired_split(ds.y, 0, 0.3, 5)
    trace = run_campaign(
        ds, "gaussian-nb", "margin", train=train, test=test, initial_rows=init, batch=40, budget=10_000, seed=0
    )
    chosen = trace.selected
    assert not np.isin(chosen, test).any()
    assert np.isin(chosen, train).all()
    assert np.unique(np.concatenate([chosen, init])).size == train.size  # whole pool labeled, once each
    assert trace.labels[-1] == train.size


def test_budget_beyond_the_train_part_stops_when_the_pool_is_empty():
    out = simulate("iris", "gaussian-nb", ["random"], initial=5, batch=50, budget=500, seeds=1, test_size=0.3)
    assert out["results"]["random"]["labels"] == [5, 55, 105]
    assert out["protocol"]["n_train"] == 105


def _tie_data(n=40):
    """Identical rows: every record gets the same probabilities, so every score ties."""
    y = np.array([0, 1] * (n // 2))
    return Dataset(
        X=np.zeros((n, 2)), y=y, ids=np.arange(n), name="ties", feature_names=("a", "b"), classes=np.array([0, 1])
    )


@pytest.mark.parametrize("spec", ["margin", "entropy", "least-confidence"])
def test_ties_are_broken_by_the_lower_row(spec):
    ds = _tie_data()
    train, test, init = paired_split(ds.y, 0, 0.25, 4)
    trace = run_campaign(ds, "logreg", spec, train=train, test=test, initial_rows=init, batch=5, budget=14, seed=0)
    rest = np.sort(np.setdiff1d(train, init))
    np.testing.assert_array_equal(trace.batches[0], rest[:5])
    np.testing.assert_array_equal(trace.batches[1], rest[5:10])


def test_single_class_initial_set_does_not_crash():
    y = np.array([0] * 30 + [1] * 30)
    ds = Dataset(
        X=np.arange(60, dtype=float).reshape(-1, 1),
        y=y,
        ids=np.arange(60),
        name="s",
        feature_names=("a",),
        classes=np.array([0, 1]),
    )
    train, test, _ = paired_split(ds.y, 0, 0.3, 2)
    init = np.sort(train[y[train] == 0])[:2]
    trace = run_campaign(ds, "logreg", "margin", train=train, test=test, initial_rows=init, batch=3, budget=8, seed=0)
    assert trace.labels == [2, 5, 8]
    assert trace.accuracy[0] == pytest.approx(np.mean(y[test] == 0))


def test_paired_comparison_against_random_or_the_first_spec(wine_result):
    res = wine_result["results"]
    assert wine_result["protocol"]["baseline"] == "random"
    assert res["random"]["paired_vs"] is None
    for spec in ("margin", "entropy"):
        pv = res[spec]["paired_vs"]
        assert set(pv) == PAIRED_KEYS and pv["baseline"] == "random"
        diff = np.array(res[spec]["aubc_per_seed"]) - np.array(res["random"]["aubc_per_seed"])
        assert pv["aubc_diff_mean"] == pytest.approx(diff.mean())
        assert pv["aubc_diff_std"] == pytest.approx(diff.std())
        assert pv["wins"] + pv["ties"] + pv["losses"] == 3
    out = simulate("iris", "gaussian-nb", ["entropy", "margin"], initial=6, batch=6, budget=12, seeds=2, test_size=0.3)
    assert out["results"]["entropy"]["paired_vs"] is None
    assert out["results"]["margin"]["paired_vs"]["baseline"] == "entropy"


def test_identical_strategies_give_no_p_value():
    out = simulate(
        "iris", "gaussian-nb", ["random", "random(seed=None)"], initial=6, batch=6, budget=12, seeds=2, test_size=0.3
    )
    pv = out["results"]["random(seed=None)"]["paired_vs"]
    assert pv["aubc_diff_mean"] == 0.0 and pv["ties"] == 2
    assert pv["t_pvalue"] is None and pv["wilcoxon_pvalue"] is None


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        (dict(budget=5, initial=10), "budget"),
        (dict(initial=200, budget=300), "initial"),
        (dict(initial=0), "initial"),
        (dict(batch=0), "batch"),
        (dict(seeds=0), "seeds"),
        (dict(test_size=0.0), "test_size"),
        (dict(test_size=1.0), "test_size"),
        (dict(test_size="0.3"), "test_size"),
        (dict(strategies=["margn"]), "strategies"),
        (dict(strategies=[]), "strategies"),
        (dict(strategies=["margin", "margin"]), "strategies"),
        (dict(model="lgreg"), "model"),
        (dict(model="knn", initial=3), "initial"),
    ],
)
def test_bad_inputs_name_the_parameter(kwargs, param):
    args = dict(
        data="iris", model="gaussian-nb", strategies=["margin"], initial=6, batch=3, budget=12, seeds=1, test_size=0.3
    )
    args.update(kwargs)
    with pytest.raises(ConfigError, match=f"The '{param}' parameter of simulate"):
        simulate(**args)


def test_batch_message_shape():
    with pytest.raises(ConfigError) as info:
        simulate("iris", "gaussian-nb", ["margin"], initial=6, batch=0, budget=12, seeds=1, test_size=0.3)
    assert str(info.value) == "The 'batch' parameter of simulate must be an int >= 1. Got 0."


def test_plot_writes_a_png(tmp_path, wine_result):
    out = plot_learning_curves(wine_result, tmp_path / "sub" / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def app():
    app = typer.Typer()
    app.command("simulate")(simulate_command)

    @app.callback()
    def _root() -> None:  # keep 'simulate' as a subcommand
        pass

    return app


def test_cli_writes_json_with_the_documented_keys_and_a_plot(tmp_path, app):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--data",
            "iris",
            "--model",
            "gaussian-nb",
            "--strategy",
            "margin",
            "--strategy",
            "random",
            "--initial",
            "6",
            "--batch",
            "3",
            "--budget",
            "12",
            "--seeds",
            "2",
            "--test-size",
            "0.3",
            "--json",
            str(out),
            "--plot",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc) == {"protocol", "results"} and set(doc["protocol"]) == PROTOCOL_KEYS
    assert list(doc["results"]) == ["margin", "random"]
    assert all(set(r) == RESULT_KEYS for r in doc["results"].values())
    assert doc["results"]["margin"]["labels"] == [6, 9, 12]
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "margin" in res.output and "AUBC" in res.output


def test_cli_defaults(tmp_path, app, monkeypatch):
    seen = {}

    def fake(data, **kwargs):
        seen.update(kwargs, data=data)
        return {"protocol": {}, "results": {}}

    monkeypatch.setattr("alloop.bench.simulate", fake)
    monkeypatch.setattr("alloop._cli_simulate.render_table", lambda result: "")
    res = CliRunner().invoke(
        app, ["simulate", "--data", "digits", "--strategy", "margin", "--json", str(tmp_path / "o.json")]
    )
    assert res.exit_code == 0, res.output
    assert {k: seen[k] for k in ("model", "initial", "batch", "budget", "seeds", "test_size", "target")} == dict(
        model="logreg", initial=20, batch=10, budget=200, seeds=5, test_size=0.3, target=None
    )


def test_cli_reports_errors_without_traceback_and_exit_code_2(tmp_path, app):
    res = CliRunner().invoke(
        app, ["simulate", "--data", "iris", "--strategy", "margin", "--batch", "0", "--json", str(tmp_path / "o.json")]
    )
    assert res.exit_code == 2
    assert "The 'batch' parameter of simulate must be an int >= 1. Got 0." in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.json").exists()
    res = CliRunner().invoke(
        app, ["simulate", "--data", str(tmp_path / "x.csv"), "--strategy", "margin", "--json", "o.json"]
    )
    assert res.exit_code == 2 and "does not exist" in res.output


def test_simulate_on_a_csv_file_with_a_target_column(tmp_path):
    ds = load_dataset("iris")
    lines = ["a,b,c,d,species"] + [
        ",".join(map(str, [*x, ["setosa", "versicolor", "virginica"][y]])) for x, y in zip(ds.X, ds.y, strict=True)
    ]
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(lines) + "\n")
    out = simulate(
        path, "gaussian-nb", ["margin"], initial=6, batch=6, budget=12, seeds=1, test_size=0.3, target="species"
    )
    assert out["protocol"]["data"] == str(path) and out["protocol"]["target"] == "species"
    ref = simulate(ds, "gaussian-nb", ["margin"], initial=6, batch=6, budget=12, seeds=1, test_size=0.3)
    # same rows, same labels in the same sorted class order: the same numbers as the built-in
    assert out["results"]["margin"]["aubc_per_seed"] == ref["results"]["margin"]["aubc_per_seed"]


def test_simulate_gives_standardised_features_as_embeddings_when_asked():
    """embeddings='features': core-set's first pick is the train row farthest (standardised features, train
    statistics) from the initial labeled rows; without it a strategy needing embeddings fails before any run."""
    from alloop.bench.simulate import paired_split, run_campaign

    ds = load_dataset("iris")
    train, test, init = paired_split(ds.y, 0, 0.3, 10)
    trace = run_campaign(
        ds,
        "logreg",
        "coreset",
        train=train,
        test=test,
        initial_rows=init,
        batch=1,
        budget=11,
        seed=0,
        embeddings="features",
    )
    emb = (ds.X - ds.X[train].mean(axis=0)) / ds.X[train].std(axis=0)
    unl = np.setdiff1d(train, init)
    far = np.linalg.norm(emb[unl][:, None, :] - emb[init][None, :, :], axis=2).min(axis=1)
    assert trace.batches[0].tolist() == [unl[np.argmax(far)]]
    out = simulate("iris", "logreg", ["coreset"], initial=10, batch=10, budget=30, seeds=1, embeddings="features")
    assert out["protocol"]["embeddings"] == "features" and out["results"]["coreset"]["labels"] == [10, 20, 30]
    with pytest.raises(ConfigError, match=r"'coreset' needs embeddings.*--embeddings features"):
        simulate("iris", "logreg", ["margin", "coreset"], initial=10, batch=10, budget=30, seeds=1)
    with pytest.raises(ConfigError, match=r"'embeddings' parameter of simulate must be one of 'none', 'features'"):
        simulate("iris", "logreg", ["margin"], initial=10, batch=10, budget=30, seeds=1, embeddings="yes")


def test_summary_table_fits_an_80_column_console_without_cutting_a_number():
    import io

    from rich.console import Console

    from alloop._cli_simulate import render_table

    result = simulate(
        "iris",
        "logreg",
        ["margin", "random", "top(margin, 50) >> coreset"],
        initial=10,
        batch=10,
        budget=30,
        seeds=2,
        compute_saving="on",
        embeddings="features",
    )
    out = io.StringIO()
    Console(file=out, width=80).print(render_table(result))
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    tokens = set(text.split())
    for r in result["results"].values():
        assert {f"{r['aubc_mean']:.4f}", f"{r['aubc_std']:.4f}", f"{r['final_accuracy_mean']:.4f}"} <= tokens
        if r["paired_vs"]:
            assert f"{r['paired_vs']['aubc_diff_mean']:+.4f}" in tokens
        assert f"{r['compute']['cpu_s']:.2f}" in tokens
    assert "top(margin, 50) >> coreset" in text  # the compute table has room for the whole spec
