"""robmem.bridge: claim registry, bound-vs-measurement comparisons, plots, report, CLI."""

if __name__ != "robmem.bridge":  # the folder is not a top-level package
    raise ImportError("import robmem.bridge, not bridge: the installed package is robmem")
