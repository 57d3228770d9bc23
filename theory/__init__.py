"""robmem.theory: exact ReLU constructions, certification, bound calculators.

Pure mathematics on numpy/sympy/scipy/cvxpy. Never imports :mod:`empirics` and never
imports torch at import time.
"""
