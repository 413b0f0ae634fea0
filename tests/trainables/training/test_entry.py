"""A trial's actor is cheap to create: the trainable's module and the trial's config import
neither torch nor timm nor scikit-learn until the trial runs (an actor Tune swaps for a
reused one before its first result then costs little: benchmarks/driver_scale.py)."""

import pickle
import subprocess
import sys

from sweep.spec import StudySpec
from tests.contexts import bare_context
from trainables.context import trial_config


def test_unpickling_a_trial_config_and_the_trainable_imports_no_heavy_library():
    study = StudySpec(grid="g", dataset="digits", backbones=("test_resnet", "test_vit"), mode="dvme", subset="S",
                      n_train=50, fold=0)
    blob = pickle.dumps(trial_config(bare_context(study), 1e-3, None))
    probe = ("import pickle, sys; from trainables.training.entry import run_trial; "
             "config = pickle.loads(sys.stdin.buffer.read()); "
             "print(sorted(m for m in ('torch', 'timm', 'sklearn', 'scipy', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], input=blob, capture_output=True, check=True).stdout.decode()
    assert out.strip() == "[]", out
