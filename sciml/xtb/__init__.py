"""GFN1-xTB through dxtb (differentiable matrices, torch) and tblite (fast independent check), and rotation-invariant
orbital features built from their matrices. Needs the ``orbnet`` extra: ``pip install -e ".[orbnet]"``.

Both libraries are many times slower with several OpenMP threads than with one: importing this package sets
``OMP_NUM_THREADS=1`` unless it is already set.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
