"""robmem.bridge: claim registry, bound-vs-measurement comparisons, plots, report, CLI."""
