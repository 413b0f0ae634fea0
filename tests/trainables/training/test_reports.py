import math
from numbers import Number

from hypothesis import assume, given, settings, strategies as st

from trainables.training.reports import DETAIL, EARLIER, TUNE_FIELDS, pack, records_of, unpack

values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=20))


@given(st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in (DETAIL, EARLIER)), values,
                       max_size=12))
def test_a_packed_record_comes_back_whole_and_tune_sees_only_the_fields_it_reads(record):
    packed = pack(record)
    # Tune tracks statistics of every number of a result: only ASHA's and Optuna's fields are numbers.
    assert {k for k, v in packed.items() if isinstance(v, Number)} <= set(TUNE_FIELDS)
    back = unpack({**packed, "training_iteration": 3})  # Tune adds fields of its own
    assert back.pop("training_iteration") == 3
    assert back.keys() == record.keys()
    for k, v in record.items():
        assert back[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(back[k]))


def test_a_result_without_detail_is_read_as_it_is():
    """Tune's own result of a trial that failed before it reported (and the tests' plain ones)."""
    assert unpack({"epoch": 2, "val_score": 0.5}) == {"epoch": 2, "val_score": 0.5}


def test_records_of_gives_every_epoch_a_report_carries_in_order():
    earlier = [{"epoch": e, "val_score": 0.1 * e, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    result = {**pack({"epoch": 4, "val_score": 0.4, "best_val_score": 0.4, "train_loss": 0.25}, earlier=earlier),
              "time_total_s": 2.0}
    records = records_of(result)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[:3] == earlier and records[3]["train_loss"] == 0.25 and "earlier" not in unpack(result)


@settings(deadline=None)  # the first example imports Ray Tune
@given(st.integers(1, 200), st.integers(1, 60), st.sampled_from([2, 3, 4, 2.5]))
def test_the_rungs_a_trial_reports_at_are_the_rungs_of_rays_asha(max_t, grace, rf):
    """Computed as Ray computes them: a rung missed would be a decision ASHA never takes."""
    from ray.tune.schedulers import ASHAScheduler

    assume(grace <= max_t)  # ASHA's own requirement (and every grid's: grace_period <= max_epochs)
    from trainables.training.reports import rung_epochs

    asha = ASHAScheduler(time_attr="epoch", metric="val_score", mode="max", max_t=max_t, grace_period=grace,
                         reduction_factor=rf)
    assert rung_epochs(max_t, grace, rf) == tuple(sorted(m for m, _ in asha._brackets[0]._rungs))


def test_a_trial_reports_its_rungs_its_last_epoch_and_the_first_epoch_after_a_resume():
    from trainables.training.reports import reported, rung_epochs

    rungs = rung_epochs(12, 2, 2)
    assert rungs == (2, 4, 8)
    fresh = [e for e in range(1, 13) if reported(e, rungs, 12, first_of_resumed=False)]
    assert fresh == [2, 4, 8, 12]
    # Resumed after epoch 5: its epoch 6 is where ASHA meets it first (rung 4, as when it
    # reported every epoch), then rung 8 and the end.
    resumed = [e for e in range(6, 13) if reported(e, rungs, 12, first_of_resumed=e == 6)]
    assert resumed == [6, 8, 12]
