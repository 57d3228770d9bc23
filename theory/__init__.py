"""robmem.theory: exact ReLU constructions, certification, bound calculators.

Pure mathematics on numpy/sympy/scipy/cvxpy. Never imports :mod:`empirics` and never
imports torch at import time.
"""

if __name__ != "robmem.theory":  # the folder is not a top-level package
    raise ImportError("import robmem.theory, not theory: the installed package is robmem")
