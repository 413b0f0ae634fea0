import math
from numbers import Number

from hypothesis import given, strategies as st

from trainables.training.reports import DETAIL, TUNE_FIELDS, pack, unpack

values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=20))


@given(st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k != DETAIL), values, max_size=12))
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
