"""Recipes: a published method's full training setting as one YAML file, with its source and published numbers.

A recipe file (``eegdecode/recipes/NAME.yaml``, or any folder given to :func:`add_recipe_dir`) holds

- ``name``, ``title`` and ``source`` (paper, venue, arXiv, code repository, and the files and commits each
  setting was read from);
- ``published``: the paper's 200-way top-1 / top-5 on THINGS-EEG2 (``intra``, ``loso``) and THINGS-MEG where
  reported, and the table they come from;
- ``settings``: the keys of :class:`~eegdecode.training.config.TrainConfig`, exactly (``data`` and ``target`` as
  mappings), for the intra-subject protocol; ``loso``: the keys that change for leave-one-subject-out;
- ``deviations``: each ``{setting, ours, theirs, why}`` where the recipe runs differently from the paper (always at
  least the model selection: a validation split of training concepts, never the test set);
- ``not_reproduced``: what of the paper no option here expresses (``{what, why, needs}``);
- ``simulated``: the overrides that make the recipe run on the simulated data set (its vision model stands in for
  the paper's backbone; the layers and blur variants it provides are :data:`SIMULATED_LAYERS` and
  :data:`SIMULATED_BLUR`).

:func:`recipe_config` resolves a recipe into a ``TrainConfig`` mapping (settings, then the protocol's overrides,
then the simulated ones), checked by building the ``TrainConfig``. The registry follows open_clip's model-config
registry (``list_models`` / ``add_model_config``): files found by name in a list of folders, later folders
overriding earlier ones.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegdecode.errors import ConfigError, DataFormatError, MissingFileError

#: the packaged recipes
PACKAGE_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
#: the simulated data set's vision model: the target store ``eegdecode simulate`` writes (``simulator:vision``)
SIMULATED_BACKBONE = "simulator:vision"
#: layers of the simulated vision model (12 blocks as ViT-B, and the final embedding)
SIMULATED_LAYERS = ("embedding", *(f"block:{i}" for i in range(12)))
#: image variants the simulator writes (:mod:`eegdecode.targets.blur`; ``data.simulate_vision.VARIANTS``)
SIMULATED_BLUR = ("none", "ubp", "multiblur12", "noise:25", "lowres:0.1", "mosaic:5")
#: recipe keys; the first four are required
REQUIRED_KEYS = ("name", "title", "source", "published", "settings", "deviations")
OPTIONAL_KEYS = ("loso", "not_reproduced", "simulated", "notes")
PROTOCOLS = ("intra", "loso", "joint")

_recipe_dirs: list[Path] = [PACKAGE_RECIPES]


@dataclass(frozen=True)
class Recipe:
    """One recipe file, read and checked (see the module docstring for the keys)."""

    name: str
    title: str
    source: dict[str, Any]
    published: dict[str, Any]
    settings: dict[str, Any]
    deviations: list[dict[str, str]]
    loso: dict[str, Any] = field(default_factory=dict)
    not_reproduced: list[dict[str, str]] = field(default_factory=list)
    simulated: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    path: Path | None = None

    def published_top1(self, protocol: str, dataset: str = "things_eeg2") -> float | None:
        """The paper's mean top-1 (%) for ``protocol`` (``intra`` / ``loso``), or None where not reported."""
        entry = (self.published.get(dataset) or {}).get(protocol) or {}
        return entry.get("top1")

    def published_top5(self, protocol: str, dataset: str = "things_eeg2") -> float | None:
        entry = (self.published.get(dataset) or {}).get(protocol) or {}
        return entry.get("top5")


def add_recipe_dir(path: str | Path) -> None:
    """Search ``path`` for ``*.yaml`` recipes too; its recipes replace packaged ones of the same name."""
    folder = Path(path)
    if not folder.is_dir():
        raise MissingFileError(folder, "add_recipe_dir needs a folder of recipe YAML files")
    if folder.resolve() not in [d.resolve() for d in _recipe_dirs]:
        _recipe_dirs.append(folder)


def _recipe_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in _recipe_dirs:
        for path in sorted(folder.glob("*.yaml")):
            files[path.stem] = path
    return files


def list_recipes() -> list[str]:
    """Names of every recipe found, sorted."""
    return sorted(_recipe_files())


def _train_config_keys() -> set[str]:
    from eegdecode.training.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def _check_overrides(path: Path, section: str, mapping: Any) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise DataFormatError(
            path, f"'{section}' must be a mapping of training options", found=type(mapping).__name__
        )
    unknown = sorted(set(mapping) - _train_config_keys())
    if unknown:
        raise DataFormatError(
            path,
            f"'{section}' has keys that are not TrainConfig options: {unknown}",
            expected=sorted(_train_config_keys()),
        )
    return mapping


def _check_entries(path: Path, section: str, entries: Any, keys: tuple[str, ...]) -> list[dict[str, str]]:
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataFormatError(path, f"'{section}' must be a list of mappings", found=type(entries).__name__)
    for i, entry in enumerate(entries):
        missing = [k for k in keys if k not in entry]
        if missing:
            raise DataFormatError(path, f"'{section}' entry {i} lacks {missing}", expected=list(keys))
    return entries


def read_recipe(path: str | Path) -> Recipe:
    """Read and check one recipe file (structure only; :func:`recipe_config` checks the settings' values)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataFormatError(path, f"cannot be parsed ({exc})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(path, "a recipe must be a mapping", found=type(data).__name__)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DataFormatError(path, f"recipe lacks {missing}", expected=list(REQUIRED_KEYS))
    unknown = sorted(set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise DataFormatError(
            path, f"unknown recipe keys {unknown}", expected=list(REQUIRED_KEYS + OPTIONAL_KEYS)
        )
    if data["name"] != path.stem:
        raise DataFormatError(
            path, "the recipe's name must be its file name", expected=path.stem, found=data["name"]
        )
    for key in ("source", "published"):
        if not isinstance(data[key], dict):
            raise DataFormatError(path, f"'{key}' must be a mapping", found=type(data[key]).__name__)
    return Recipe(
        name=str(data["name"]),
        title=str(data["title"]),
        source=data["source"],
        published=data["published"],
        settings=_check_overrides(path, "settings", data["settings"]),
        deviations=_check_entries(
            path, "deviations", data["deviations"], ("setting", "ours", "theirs", "why")
        ),
        loso=_check_overrides(path, "loso", data.get("loso")),
        not_reproduced=_check_entries(path, "not_reproduced", data.get("not_reproduced"), ("what", "why")),
        simulated=_check_overrides(path, "simulated", data.get("simulated")),
        notes=str(data.get("notes") or ""),
        path=path,
    )


def get_recipe(name: str, option: str = "--recipe") -> Recipe:
    """The recipe called ``name`` (case-insensitive; ``-`` and ``_`` alike); ``option`` names it in errors."""
    files = _recipe_files()
    key = str(name).strip().lower().replace("-", "_")
    if key not in files:
        raise ConfigError(f"Invalid value for {option}: {name!r}; known recipes are {sorted(files)}")
    return read_recipe(files[key])


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides``, mappings merged key by key (lists and scalars replaced); a new dict."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def simulated_overrides(recipe: Recipe) -> dict[str, Any]:
    """The recipe's ``simulated`` overrides, with the target's backbone set to the simulator's vision model.

    The layers and blur variants a recipe asks for on simulated data must be ones the simulator writes
    (:data:`SIMULATED_LAYERS`, :data:`SIMULATED_BLUR`); the weights of a real backbone do not apply.
    """
    out = copy.deepcopy(recipe.simulated)
    if "target" in recipe.settings or "target" in out:
        target = out.setdefault("target", {})
        target["backbone"] = SIMULATED_BACKBONE
        target["weights"] = None
    return out


def recipe_config(name: str, simulated: bool = False, protocol: str = "intra") -> dict[str, Any]:
    """The recipe's settings as a :class:`~eegdecode.training.config.TrainConfig` mapping.

    Parameters
    ----------
    name : str
        A recipe name (:func:`list_recipes`).
    simulated : bool
        Apply the recipe's ``simulated`` overrides (the simulated data set's vision model as the target).
    protocol : {"intra", "loso", "joint"}
        ``loso`` applies the recipe's ``loso`` overrides (the papers' leave-one-subject-out settings).

    Returns
    -------
    dict
        TrainConfig keys; ``TrainConfig.from_dict`` of it succeeds (checked here).
    """
    from eegdecode.errors import check_option
    from eegdecode.training.config import TrainConfig

    check_option("protocol", protocol, PROTOCOLS)
    recipe = get_recipe(name)
    config = copy.deepcopy(recipe.settings)
    if protocol == "loso":
        config = merge(config, recipe.loso)
    if simulated:
        config = merge(config, simulated_overrides(recipe))
    try:
        TrainConfig.from_dict(copy.deepcopy(config))
    except ConfigError as err:
        raise ConfigError(f"recipe {recipe.name} ({recipe.path}): {err}") from None
    return config
