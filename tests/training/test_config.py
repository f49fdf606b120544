from pathlib import Path

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


def test_experiment_configs_are_self_contained_or_inherit_once():
    """configs/experiments/ (issue #30): a reader follows each in one file, or one `base:` hop."""
    import yaml

    root = Path(__file__).resolve().parents[2] / "configs" / "experiments"
    for path in sorted(root.glob("*.yaml")):
        base = yaml.safe_load(path.read_text()).get("base")
        if base is not None:
            assert "base" not in yaml.safe_load((path.parent / base).read_text()), f"{path.name}: chain"
        load_config(path)
    peer = load_config(root / "peer-distill-192.yaml")
    assert len(peer.distill.teachers) == 2 and peer.preprocessing.working_jpeg_quality == 75


def test_base_config_is_inherited_and_stages_replaced(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\nbatch_size: 16\nstages:\n  - {name: a, epochs: 1, lr: 0.1}\n  - {name: b, epochs: 2, lr: 0.1}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "base: base.yaml\nname: child\nmodel: {metadata: true}\nstages:\n  - {name: c, epochs: 3, lr: 0.01}\n"
    )
    config = load_config(tmp_path / "child.yaml")
    assert (config.name, config.batch_size, config.model.metadata) == ("child", 16, True)
    assert [s.name for s in config.stages] == ["c"]
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_ablation_configs_start_from_the_bundled_model():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs" / "ablations"
    configs = {p.stem: load_config(p) for p in sorted(root.glob("*.yaml"))}
    assert set(configs) == {
        "image-heads",
        "metadata",
        "hierarchical",
        "late-fusion",
        "full-metadata",
        "full-hierarchical",
        "clahe-cpu",
        "travel-cpu-no-resolution",
        "travel-cpu-distill1",
        "travel-cpu-distill1-auc",
        "travel-cpu-distill1-long",
        "travel-cpu-distill1-seed1",
        "travel-cpu-192",
        "travel-cpu-selfdistill",
        "travel-cpu-192-selfdistill",
        "travel-cpu-192-selfdistill2",
    }
    clahe = configs["clahe-cpu"]  # from ImageNet, against the small recipe: only the contrast step differs
    assert clahe.preprocessing.contrast == "clahe" and clahe.model.checkpoint is None
    assert clahe.data.split_file == "configs/splits/ham10000-seed0.json"
    assert configs["late-fusion"].model.fusion == "late" and configs["late-fusion"].model.metadata
    for name in ("image-heads", "metadata", "hierarchical", "late-fusion"):
        config = configs[name]
        assert config.model.checkpoint == "models/default/weights.pt"
        assert config.data.split_file == "configs/splits/ham10000-seed0.json"  # the same test split
        assert config.stages[0].freeze_backbone and config.stages[0].backbone_eval
    assert configs["metadata"].model.metadata and configs["hierarchical"].model.head == "hierarchical"
    full = configs["full-metadata"]
    assert full.model.pretrained and full.model.checkpoint is None and len(full.stages) == 2


def test_soup_member_configs_change_one_choice_of_the_bundled_recipe():
    """The soups' members (docs/proxy.md; the bundled model is the soup of the two distill1-* runs)
    are the recipe of configs/travel-cpu.yaml with the named choices changed."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    bundled = load_config(root / "travel-cpu.yaml").to_dict()
    expected = {
        "travel-cpu-no-resolution": {"augment"},
        "travel-cpu-distill1": {"distill"},
        "travel-cpu-distill1-auc": {"distill", "early_stopping_metric"},
        "travel-cpu-distill1-long": {"distill", "early_stopping_metric", "stages"},
        "travel-cpu-distill1-seed1": {"distill", "early_stopping_metric", "seed"},
        "travel-cpu-192": {"distill", "early_stopping_metric", "stages", "preprocessing"},
        "travel-cpu-selfdistill": {"distill", "early_stopping_metric", "stages"},
        "travel-cpu-192-selfdistill": {"distill", "early_stopping_metric", "stages", "preprocessing"},
        "travel-cpu-192-selfdistill2": {"distill", "early_stopping_metric", "stages", "preprocessing"},
    }
    for stem, sections in expected.items():
        member = load_config(root / "ablations" / f"{stem}.yaml").to_dict()
        changed = {k for k in bundled if k != "name" and bundled[k] != member[k]}
        assert changed == sections, stem
    no_resolution = load_config(root / "ablations" / "travel-cpu-no-resolution.yaml").augment
    assert (no_resolution.rescale, no_resolution.jpeg, no_resolution.blur) == (0.0, 0.0, 0.0)
    assert load_config(root / "ablations" / "travel-cpu-distill1.yaml").distill.weight == 1.0
    assert load_config(root / "ablations" / "travel-cpu-192.yaml").preprocessing.input_size == (192, 144)
    for stem in ("travel-cpu-selfdistill", "travel-cpu-192-selfdistill"):
        self_distill = load_config(root / "ablations" / f"{stem}.yaml").distill
        assert self_distill.teacher == "../runs/init/soup-c8-d"
        assert set(self_distill.sources) == {"ham10000", "bcn", "msk", "isic-archive"}
    second = load_config(root / "ablations" / "travel-cpu-192-selfdistill2.yaml").distill
    assert second.teacher == "../runs/init/g192" and len(second.sources) == 4


def test_print_config_shows_the_resolved_recipe_and_trains_nothing(tmp_path, capsys):
    import yaml

    from dermalens.cli import main

    root = Path(__file__).resolve().parents[2] / "configs"
    args = ["train", "--config", str(root / "ablations" / "travel-cpu-192.yaml"), "--print-config"]
    assert main([*args, "--set", f"out_dir={tmp_path}"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["preprocessing"]["input_size"] == [192, 144]  # from the file itself
    assert shown["distill"]["weight"] == 1.0  # from two bases up its chain
    assert shown["out_dir"] == str(tmp_path) and not list(tmp_path.iterdir())


def _depth(path: Path) -> int:
    """How many `base:` hops a config file takes to reach a self-contained one."""
    import yaml

    base = (yaml.safe_load(path.read_text()) or {}).get("base")
    return 0 if base is None else 1 + _depth(path.parent / base)


def test_the_shipped_recipe_is_one_file_and_is_what_the_bundled_model_was_trained_with():
    """configs/default.yaml (issue #30): no `base:`, and it resolves to the config the bundled soup's
    first member was trained with (artifact.json → training.config; the soup has its own name)."""
    import json

    from dermalens.training.config import config_from_data

    root = Path(__file__).resolve().parents[2]
    assert _depth(root / "configs" / "default.yaml") == 0
    shipped = load_config(root / "configs" / "default.yaml").to_dict()
    trained = json.loads((root / "models" / "default" / "artifact.json").read_text())["training"]["config"]
    assert trained["name"].startswith("soup-" + shipped["name"])
    assert config_from_data({**trained, "name": shipped["name"]}).to_dict() == shipped


def test_experiments_inherit_at_most_one_level_and_the_soup_members_keep_their_names():
    """Every file of configs/experiments/ is one file or one hop from one; the ablation names the
    model cards and docs/proxy.md link to resolve exactly as the shipped recipe and its long run."""
    root = Path(__file__).resolve().parents[2] / "configs"
    depths = {p.name: _depth(p) for p in sorted((root / "experiments").glob("*.yaml"))}
    assert depths and max(depths.values()) <= 1, depths
    for old, new in (
        ("travel-cpu-distill1-auc", "default.yaml"),
        ("travel-cpu-distill1-long", "experiments/default-long.yaml"),
    ):
        assert load_config(root / "ablations" / f"{old}.yaml").to_dict() == load_config(root / new).to_dict()
