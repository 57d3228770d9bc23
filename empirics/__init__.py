"""robmem.empirics: data, models, attacks, adversarial trainers, measurements (torch).

May import :mod:`theory`; never imports :mod:`bridge`.
"""
