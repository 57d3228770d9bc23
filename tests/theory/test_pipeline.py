"""robmem.theory.pipeline: one build → certify → count call, the same numbers as the steps."""

import numpy as np
import pytest

from robmem.theory.certify import certify, certify_outside_balls
from robmem.theory.construction import build_construction
from robmem.theory.counting import construction_parameter_count
from robmem.theory.network import ReLUNetwork
from robmem.theory.pipeline import closed_form_count, construct_and_certify
from robmem.theory.separation import synthetic_separated_points


def test_report_equals_the_separate_steps():
    x, y = synthetic_separated_points(30, 5, 0.2, 3, seed=1)
    rng = np.random.default_rng(0)
    clean = ReLUNetwork(
        [rng.normal(size=(4, 5)), rng.normal(size=(3, 4))], [np.ones(4), 0 * np.ones(3)]
    )
    report = construct_and_certify(x, y, 0.05, clean=clean, outside_seed=3)
    model = build_construction(x, y, 0.05, clean=clean)
    cert = certify(model, x, y, 0.05)
    assert report.certification.status == cert.status == ["certified"] * 30
    outside = certify_outside_balls(model, n_samples=64, seed=3)
    assert report.outside.holds and repr(report.outside) == repr(outside)
    assert report.params == model.network().nonzero_parameter_count() == report.closed_form
    assert set(report.timings) == {"build", "certify", "outside"}
    skipped = construct_and_certify(x, y, 0.05, outside_samples=None)
    assert skipped.outside is None and skipped.params == skipped.closed_form


@pytest.mark.parametrize("classes", [2, 4])
def test_closed_form_count_without_clean_is_the_short_call(classes):
    x, y = synthetic_separated_points(12, 4, 0.25, classes, seed=classes)
    x[0, :2] = 0.0  # zero centre coordinates enter the count
    model = build_construction(x, y, 0.1, n_classes=None if classes == 2 else classes)
    short = construction_parameter_count(
        12, 4, n_classes=classes, zero_centre_coordinates=int((x == 0).sum())
    )
    assert closed_form_count(model) == short == model.network().nonzero_parameter_count()
