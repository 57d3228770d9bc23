"""robmem.empirics: data, models, attacks, adversarial trainers, measurements (torch).

May import :mod:`theory`; never imports :mod:`bridge`.
"""

if __name__ != "robmem.empirics":  # the folder is not a top-level package
    raise ImportError("import robmem.empirics, not empirics: the installed package is robmem")
