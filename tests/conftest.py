import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Paddle uses one OpenMP thread unless told otherwise; the CI machine has two cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def repo_root():
    return ROOT
