import pytest

from dermalens.training.config import load_config, save_config


def test_defaults_overrides_and_roundtrip(tmp_path):
    config = load_config(None, ["stages.1.epochs=7", "augment.scale=[0.3, 1.0]", "balance.method=focal"])
    assert config.stages[1].epochs == 7 and config.augment.scale == (0.3, 1.0)
    assert config.balance.method == "focal"
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").to_dict() == config.to_dict()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("balance.method=magic", "valid: none, class_weights"),
        ("model.head=ternary", "valid: dx, binary"),
        ("nonsense=1", "unknown TrainConfig keys"),
        ("preprocessing.color_constancy=retinex", "valid: shades_of_gray, none"),
        ("justtext", "expected key.sub=value"),
    ],
)
def test_invalid_values_name_the_valid_ones(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("ham10000.yaml", "smoke.yaml"):
        load_config(root / name)
