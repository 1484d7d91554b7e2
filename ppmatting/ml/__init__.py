"""Classical (non-learned) matting: the sparse-solver library beside the networks of ``models/``.

Split as pymatting splits it:

* ``laplacians`` (+ its numba kernels ``laplacian_kernels``, ``knn_kernels``): the matting
  Laplacians and the reduced systems ``L_UU a_U = -L_UK a_K``;
* ``sparse_solve`` (+ ``multifrontal``, ``multifrontal_kernels``): the solvers;
* ``methods``: the zoo models (closed-form, KNN, learning-based, random walk, large kernel),
  registered for YAML ``type:``, on one base class (a method is its Laplacian, full and reduced);
* ``checks``: the config-value checks they use.

Importing this package compiles nothing: the numba kernels load on first use.
"""
from ppmatting.ml.methods import (ClassicalMatting, ClosedFormMatting, KNNMatting,  # noqa: F401
                                  LargeKernelMatting, LearningBasedMatting, RandomWalkMatting)
