"""Recipes: every packaged recipe loads, states its source, published numbers and deviations (always the validation
selection), resolves to a valid TrainConfig for every protocol on real and simulated roots, and `train --recipe`
layers recipe < --config < flags. `eegdecode recipes` lists all of them; a bad name is one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eegdecode.cli import build_parser, main
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import ConfigError, DataFormatError, MissingFileError
from eegdecode.targets.blur import expand_variants
from eegdecode.training import recipes
from eegdecode.training.config import TrainConfig
from eegdecode.training.recipes import (
    PACKAGE_RECIPES,
    SIMULATED_BACKBONE,
    SIMULATED_BLUR,
    SIMULATED_LAYERS,
    add_recipe_dir,
    get_recipe,
    list_recipes,
    recipe_config,
)

EXPECTED = {  # name -> (encoder, published THINGS-EEG2 intra top-1, loso top-1); SAMGA Table I unless noted
    "nervformer_v2": ("NervformerV2", 27.85, None),  # as its code reports
    "atm_s": ("ATMS_50", 27.1, 11.9),
    "nice": ("NICE_EEG", 16.1, 6.2),
    "ubp": ("EEGProject", 50.9, 12.4),
    "neurobridge": ("EEGProject", 63.2, 19.0),
    "multiblur": ("BlurEEGEncoder", 80.0, 20.0),  # Liu et al. README (RN50)
    "shallow_alignment": ("EEGProject", 82.6, 22.4),
    "samga": ("EEGProject", 91.3, 34.4),
}


@pytest.fixture
def registry(monkeypatch):
    """The recipe folders, restored after the test (add_recipe_dir changes a module-level list)."""
    monkeypatch.setattr(recipes, "_recipe_dirs", [PACKAGE_RECIPES])
    return recipes._recipe_dirs


def test_the_eight_recipes_are_packaged():
    assert list_recipes() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_states_source_numbers_and_the_validation_selection(name):
    r = get_recipe(name)
    assert r.name == name and r.title
    assert r.source["paper"] and r.source["code"] and r.source.get("files")
    encoder, intra, loso = EXPECTED[name]
    assert r.settings["model"] == encoder
    assert r.published_top1("intra") == intra
    assert r.published_top1("loso") == loso
    assert r.published["table"]
    for entry in r.deviations:
        assert all(entry[k] for k in ("setting", "ours", "theirs", "why"))
    selection = [d for d in r.deviations if d["setting"] == "model selection"]
    assert len(selection) == 1 and "validation" in selection[0]["ours"] and "concepts" in selection[0]["ours"]
    for gap in r.not_reproduced:
        assert gap["what"] and gap["why"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("protocol", ["intra", "loso"])
def test_recipe_resolves_to_a_train_config(name, protocol):
    real = TrainConfig.from_dict(recipe_config(name, simulated=False, protocol=protocol))
    sim = TrainConfig.from_dict(recipe_config(name, simulated=True, protocol=protocol))
    r = get_recipe(name)
    assert real.target["backbone"] == r.settings["target"]["backbone"] != SIMULATED_BACKBONE
    assert sim.target["backbone"] == SIMULATED_BACKBONE and sim.target["weights"] is None
    assert set(sim.target["layers"]) <= set(SIMULATED_LAYERS)
    assert set(expand_variants(sim.target["blur"])) <= set(expand_variants(list(SIMULATED_BLUR)))
    # everything but the target is the paper's setting on simulated data too
    assert {k: v for k, v in sim.to_dict().items() if k != "target"} == {
        k: v for k, v in real.to_dict().items() if k != "target"
    }
    assert real.data.time_window == (0.0, 1.0)


def test_known_settings_of_three_papers():
    ubp = TrainConfig.from_dict(recipe_config("ubp"))
    assert (ubp.epochs, ubp.batch_size, ubp.lr, ubp.weight_decay, ubp.early_stopping) == (
        50,
        1024,
        1e-4,
        1e-4,
        5,
    )
    assert ubp.target["blur_rule"] == "uncertainty" and ubp.data.channels == "posterior17"
    assert TrainConfig.from_dict(recipe_config("ubp", protocol="loso")).lr == 1e-5
    samga = TrainConfig.from_dict(recipe_config("samga"))
    assert samga.mmd_epochs == 20 and samga.target["combine"] == "router"
    assert samga.target["layers"] == ["block:20", "block:24", "block:28", "block:32", "block:36"]
    assert TrainConfig.from_dict(recipe_config("samga", simulated=True)).target["router"]["centre"] == 7
    loso = TrainConfig.from_dict(recipe_config("neurobridge", protocol="loso"))
    assert loso.model == "TSConv" and loso.data.channels == "all" and loso.data.train_unit == "average"
    nice = TrainConfig.from_dict(recipe_config("nice"))
    assert (nice.epochs, nice.batch_size, nice.lr, nice.weight_decay) == (200, 1000, 2e-4, 0.0)
    assert nice.betas == (0.5, 0.999)  # Adam(betas=(0.5, 0.999)): AdamW without weight decay


def test_the_contrastive_forms_and_samgas_schedule_of_the_recipes():
    """UBP: softplus of a learnable scale; SAMGA and NeuroBridge: softplus of the fixed initial scale; all three
    normalise the image side only. SAMGA: MMD weight 0.9 -> 0.5 over its 20-epoch stage 1, then AdamW at 5e-5."""
    from eegdecode.training.config import MMDSchedule
    from eegdecode.training.losses import build_loss

    forms = {}
    for name in ("ubp", "samga", "neurobridge", "nice", "atm_s"):
        cfg = TrainConfig.from_dict(recipe_config(name))
        loss = build_loss(cfg.loss, **cfg.loss_options)
        forms[name] = (loss.temperature, loss.learns_temperature, loss.normalise)
    assert forms == {
        "ubp": ("softplus", True, "target"),
        "samga": ("softplus", False, "target"),
        "neurobridge": ("softplus", False, "target"),
        "nice": ("exp", True, "both"),
        "atm_s": ("exp", True, "both"),
    }
    samga = TrainConfig.from_dict(recipe_config("samga"))
    schedule = MMDSchedule.from_config(samga.mmd_epochs, samga.mmd_options)
    assert (schedule.weight(0), schedule.weight(19), schedule.weight(20)) == (0.9, pytest.approx(0.5), None)
    assert schedule.lr(20, samga.lr) == 5e-5 and samga.betas == (0.9, 0.999)


def test_names_are_case_and_dash_insensitive_and_unknown_names_are_refused():
    assert get_recipe("ATM-S").name == "atm_s"
    with pytest.raises(ConfigError, match=r"--recipe: 'nope'; known recipes are \['atm_s'"):
        get_recipe("nope")


def test_add_recipe_dir_adds_and_overrides(registry, tmp_path):
    data = yaml.safe_load((PACKAGE_RECIPES / "ubp.yaml").read_text())
    data["settings"]["epochs"] = 7
    (tmp_path / "ubp.yaml").write_text(yaml.safe_dump(data))
    mine = dict(data, name="mine")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    add_recipe_dir(tmp_path)
    assert "mine" in list_recipes() and len(list_recipes()) == len(EXPECTED) + 1
    assert recipe_config("ubp")["epochs"] == 7
    with pytest.raises(MissingFileError, match="folder"):
        add_recipe_dir(tmp_path / "absent")


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d["settings"].update(epoch=3),
            r"bad\.yaml: 'settings' has keys that are not TrainConfig options: \['epoch'\]",
        ),
        (lambda d: d.pop("deviations"), r"bad\.yaml: recipe lacks \['deviations'\]"),
        (
            lambda d: d.update(name="other"),
            r"bad\.yaml: the recipe's name must be its file name; expected bad",
        ),
        (lambda d: d["deviations"][0].pop("why"), r"bad\.yaml: 'deviations' entry 0 lacks \['why'\]"),
        (lambda d: d["simulated"].update(target_layers=1), r"'simulated' has keys that are not TrainConfig"),
    ],
)
def test_malformed_recipes_name_the_file_and_the_key(registry, tmp_path, change, message):
    data = yaml.safe_load((PACKAGE_RECIPES / "ubp.yaml").read_text())
    data["name"] = "bad"
    change(data)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    add_recipe_dir(tmp_path)
    with pytest.raises(DataFormatError, match=message):
        get_recipe("bad")


def test_a_recipe_with_a_bad_value_fails_when_resolved(registry, tmp_path):
    data = yaml.safe_load((PACKAGE_RECIPES / "ubp.yaml").read_text())
    data["name"] = "slow"
    data["settings"]["lr"] = -1
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(data))
    add_recipe_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"recipe slow \(.*slow\.yaml\): Invalid value for lr: -1"):
        recipe_config("slow")


def _train_args(root: Path, *extra: str):
    argv = ["train", "--data-root", str(root), *extra]
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_train_recipe_on_the_simulated_root(tiny_root, capsys, name):
    from eegdecode.commands.train import build_config

    cfg = build_config(_train_args(tiny_root, "--recipe", name), DatasetPaths(tiny_root, "250hz"))
    assert cfg.target["backbone"] == SIMULATED_BACKBONE
    assert cfg.model == EXPECTED[name][0]
    out = capsys.readouterr().out
    assert f"recipe {name}:" in out and "simulated data root" in out


def test_train_recipe_on_a_real_root_keeps_the_papers_target(tmp_path, capsys):
    from eegdecode.commands.train import build_config

    cfg = build_config(_train_args(tmp_path, "--recipe", "ubp"), DatasetPaths(tmp_path, "250hz"))
    assert cfg.target["backbone"] == "open_clip:RN50" and cfg.target["weights"] == "openai"
    assert "simulated" not in capsys.readouterr().out


def test_config_file_overrides_the_recipe_and_flags_override_both(tiny_root, tmp_path, capsys):
    from eegdecode.commands.train import build_config

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"epochs": 9, "lr": 0.002, "data": {"val_fraction": 0.2}}))
    args = _train_args(tiny_root, "--recipe", "neurobridge", "--config", str(config), "--epochs", "2",
                       "--protocol", "loso", "--time-window", "0", "0.5")  # fmt: skip
    cfg = build_config(args, DatasetPaths(tiny_root, "250hz"))
    assert cfg.epochs == 2 and cfg.lr == 0.002  # flag > config > recipe
    assert cfg.weight_decay == 1e-4 and cfg.seed == 2025  # recipe
    assert cfg.model == "TSConv" and cfg.data.channels == "all"  # the recipe's loso settings
    assert cfg.data.val_fraction == 0.2 and cfg.data.time_window == (0.0, 0.5)
    assert cfg.data.train_unit == "average"  # the config file's data mapping merged into the recipe's
    assert "leave-one-subject-out" in capsys.readouterr().out


def test_another_model_flag_drops_the_recipes_model_options(tiny_root, capsys):
    from eegdecode.commands.train import build_config

    paths = DatasetPaths(tiny_root, "250hz")
    cfg = build_config(_train_args(tiny_root, "--recipe", "ubp", "--model", "MUSE_EEG"), paths)
    assert cfg.model == "MUSE_EEG" and cfg.model_options == {}
    same = build_config(_train_args(tiny_root, "--recipe", "ubp", "--model", "eeg_project"), paths)
    assert same.model_options == {"drop_prob": 0.3}


def test_train_with_an_unknown_recipe_is_one_line_and_exit_2(tiny_root, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["train", "--data-root", str(tiny_root), "--recipe", "nope", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("eegdecode train: error: Invalid value for --recipe: 'nope'; known recipes are")
    assert not out.exists()


def test_recipes_command_lists_all_and_shows_one(capsys):
    assert main(["recipes", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| recipe")]
    assert [row.split(" | ")[0][2:] for row in rows] == sorted(EXPECTED)
    samga = next(row for row in rows if row.startswith("| samga "))
    assert " 91.3 | 34.4 | 4 |" in samga
    assert main(["recipes", "ubp"]) == 0
    text = capsys.readouterr().out
    for part in ("Source", "Published", "Settings", "Deviations from the paper (1)", "model selection",
                 "On simulated data", SIMULATED_BACKBONE, "50.9"):  # fmt: skip
        assert part in text
    assert main(["recipes", "nope"]) == 2
    assert "Invalid value for NAME: 'nope'" in capsys.readouterr().err


def test_recipes_are_package_data():
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"recipes/*.yaml"' in text
    assert sorted(p.stem for p in PACKAGE_RECIPES.glob("*.yaml")) == sorted(EXPECTED)


def test_the_recipes_page_table_is_the_commands_table():
    from eegdecode.commands.recipes import list_table

    page = (Path(__file__).resolve().parents[2] / "docs" / "recipes.md").read_text()
    table = list_table(markdown=True).split("\n\n")[0]
    assert table in page


def test_recipes_command_reads_a_recipe_dir(registry, tmp_path, capsys):
    data = yaml.safe_load((PACKAGE_RECIPES / "nice.yaml").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(dict(data, name="mine", title="My variant")))
    assert main(["recipes", "--recipe-dir", str(tmp_path), "mine"]) == 0
    assert capsys.readouterr().out.startswith("mine: My variant")
    assert main(["recipes", "--recipe-dir", str(tmp_path / "absent")]) == 1
    assert "absent: not found" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["neurobridge", "samga"])
@pytest.mark.parametrize("protocol", ["intra", "loso"])
def test_neurobridge_and_samga_smooth_the_training_eeg(name, protocol):
    cfg = TrainConfig.from_dict(recipe_config(name, simulated=True, protocol=protocol))
    assert cfg.data.augment == {"smooth": {"kernel": 5, "p": 0.3, "seed": 0}}
    assert not [g for g in get_recipe(name).not_reproduced if "smooth" in g["what"].lower()]


def test_neurobridge_averages_its_four_image_variants_and_the_simulator_writes_them():
    from eegdecode.data.simulate_vision import VARIANTS

    assert SIMULATED_BLUR == VARIANTS
    for simulated in (False, True):
        target = TrainConfig.from_dict(recipe_config("neurobridge", simulated=simulated)).target
        assert target["blur"] == ["gaussian:15", "noise:25", "lowres:0.1", "mosaic:5"]
        assert target["blur_rule"] == "mean"
    assert not [g for g in get_recipe("neurobridge").not_reproduced if "mosaic" in g["what"]]
