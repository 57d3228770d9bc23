import os

from hypothesis import HealthCheck, settings

# CI keeps property tests bounded and deterministic (derandomize: the same examples on every
# run, so a red CI is reproducible); `HYPOTHESIS_PROFILE=dev` explores new examples with a
# bigger budget, and the `fuzz` marker tests set their own, larger budgets.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
