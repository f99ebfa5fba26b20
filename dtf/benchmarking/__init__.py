"""Model benchmarks: planning, measuring in a child process, baselines and the matrix.

A user's own runtime is a callable ``module:function`` that follows the
contract in :mod:`dtf.benchmarking.contract`.
"""

from dtf.benchmarking.contract import Loaded, LoadRequest, ModelNotOnDisk

__all__ = ["LoadRequest", "Loaded", "ModelNotOnDisk"]
