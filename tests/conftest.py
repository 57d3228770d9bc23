import os

from hypothesis import HealthCheck, settings

# CI keeps property tests bounded; `HYPOTHESIS_PROFILE=dev` for a bigger local budget,
# and the `fuzz` marker tests set their own, larger budgets.
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
