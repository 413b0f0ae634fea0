"""The CLI's parsers of ``--where FIELD=VALUE`` and of ``NAME=VALUE`` options, on drawn input:
every outcome is a result or one line and exit 2 (a named error), never a traceback."""

import dataclasses
import tempfile

from click.testing import CliRunner
from hypothesis import strategies as st

from sweep.cli import main
from sweep.spec import StudySpec
from sweep.store.store import ResultsStore
from tests.properties import INPUTS, TEXT, tried

FIELDS = [f.name for f in dataclasses.fields(StudySpec)] + ["status", "val_score", "lr", "trial_id"]
VALUES = st.one_of(TEXT, st.sampled_from(["digits", "linear", "S", "0", "50", "0..100", "..1e-3", "1..", "a..b",
                                          "0,1", "test_resnet", "ok", "error", "nan..inf"]))
WHERE = st.lists(st.one_of(st.tuples(st.sampled_from(FIELDS), VALUES).map("=".join),
                           st.tuples(TEXT, VALUES).map("=".join), TEXT), min_size=1, max_size=3)


def _invoke(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 2), (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.output
    return result


def test_where_on_a_grid_and_on_a_store():
    with tempfile.TemporaryDirectory() as root:
        store = ResultsStore(root)
        store.open_for("demo")
        for i, status in enumerate(("ok", "ok", "error")):
            store.write_trial({"study_id": f"s{i % 2}", "trial_id": f"t{i}", "dataset": "digits", "mode": "linear",
                               "n_train": 50 * (i + 1), "fold": i, "status": status, "lr": 1e-3, "val_score": 0.5 + i / 10,
                               "test_score": 0.6, "backbones": ["test_resnet"], "cell_id": "c"})

        def check(where):
            flags = [part for w in where for part in ("--where", w)]
            _invoke(["plan", "--grid", "demo", *flags])
            for level in ("trials", "cells"):
                _invoke(["results", "--results", root, "--level", level, *flags])

        assert tried(WHERE, check) >= INPUTS


PAIRS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["linear", "finetune", "dvme", "linear:dino", "finetune:test_vit"]), VALUES).map("=".join),
    st.tuples(TEXT, VALUES).map("=".join), TEXT), max_size=3)


def test_name_value_options_of_sweep_run():
    """--data, --weights, --gpus-per-trial and --cpus-per-trial, each parsed and checked before
    anything starts (a --where that keeps no study ends the run after the options)."""
    def check(drawn):
        options = []
        for option, values in zip(("--data", "--weights", "--gpus-per-trial", "--cpus-per-trial"), drawn):
            options += [part for v in values for part in (option, v)]
        with tempfile.TemporaryDirectory() as results:
            result = _invoke(["run", "--grid", "demo", *options, "--where", "dataset=none", "--results", results])
            assert result.exit_code == 2  # never a sweep: the options, or the --where, refuse it

    assert tried(st.tuples(PAIRS, PAIRS, PAIRS, PAIRS), check) >= INPUTS
