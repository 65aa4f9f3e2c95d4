"""The pieces of ``benchmarks/run.py``: the machine and its processes (``system``), wrk
(``wrk``), the servers under test (``targets``), the seven measurements (``measures``) and the
table, JSON and chart (``report``)."""

import sys
from pathlib import Path

# The live process stack (simulator + ``serve`` as real processes) is shared with the test
# suite and lives in ``tests/stack.py``, outside the installed package: put the repository
# root on the path so ``tests.stack`` imports when a benchmark script is run directly.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)
