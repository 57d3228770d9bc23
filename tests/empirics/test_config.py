"""TrainConfig: validation of every range, JSON/TOML round trips, presets."""

import dataclasses

import pytest

from robmem.empirics.config import PRESETS, TrainConfig, field_comments, preset


@pytest.mark.parametrize("name", [None, *sorted(PRESETS)])
def test_json_and_toml_round_trip(name, tmp_path):
    config = TrainConfig() if name is None else preset(name)
    config = config.replace(model_kwargs={"hidden": [32, 16]}, n_train=123, grad_clip=1.5)
    assert TrainConfig.from_json(config.to_json()) == config
    assert TrainConfig.from_toml(config.to_toml()) == config
    for suffix in (".json", ".toml"):
        path = tmp_path / f"c{suffix}"
        config.save(path)
        assert TrainConfig.load(path) == config


def test_every_field_has_a_unit_comment():
    comments = field_comments()
    assert set(comments) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(len(c) > 5 for c in comments.values())


def test_ints_become_floats_for_float_fields():
    config = TrainConfig.from_json('{"lr": 1, "epsilon": 0}')
    assert isinstance(config.lr, float) and isinstance(config.epsilon, float)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epsilon", -0.1),
        ("attack_step_size", 0.0),
        ("attack_steps", -1),
        ("label_noise", 1.5),
        ("label_noise", -0.1),
        ("te_alpha", 1.0),
        ("te_end_epoch", 90),
        ("te_start_epoch", 0),
        ("te_weight", -1.0),
        ("epochs", 0),
        ("batch_size", 0),
        ("lr", -1.0),
        ("momentum", 1.5),
        ("milestones", [150, 100]),
        ("milestones", [0]),
        ("method", "madry"),
        ("schedule", "linear"),
        ("norm", "1"),
        ("device", "tpu"),
        ("eval_restarts", 0),
        ("n_train", 0),
        ("cyclic_peak_fraction", 1.0),
        ("trades_beta", -1.0),
        ("fgsm_step_size", 0.0),
        ("select_mode", "best"),
        ("epsilon", float("nan")),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_test_set_selection_must_be_explicit():
    with pytest.raises(ValueError, match="allow_test_selection"):
        TrainConfig(select_metric="test_robust_acc")
    TrainConfig(select_metric="test_robust_acc", allow_test_selection=True)
    with pytest.raises(ValueError, match="val_size"):
        TrainConfig(select_metric="val_robust_acc")


def test_trades_needs_linf():
    with pytest.raises(ValueError, match="norm"):
        TrainConfig(method="trades", norm="2")


def test_unknown_and_mistyped_fields():
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig.from_dict({"epsilonn": 0.1})
    with pytest.raises(TypeError, match="epochs"):
        TrainConfig(epochs=2.5)
    with pytest.raises(TypeError, match="augment"):
        TrainConfig(augment="yes")
    with pytest.raises(ValueError, match="path"):
        TrainConfig().save("config.yaml")


def test_differences_lists_changed_fields():
    a, b = TrainConfig(), TrainConfig(epsilon=0.2, device="auto")
    assert set(a.differences(b)) == {"epsilon", "device"}
    assert set(a.differences(b, ignore=frozenset({"device"}))) == {"epsilon"}
