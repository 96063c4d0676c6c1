"""Reader (and metadata writer) of the THINGS-EEG2 image set.

The image set is a folder with two splits and a metadata file::

    image_set/
        training_images/00001_aardvark/aardvark_01b.jpg, ...   1654 concepts x 10 images in the real set
        test_images/00001_aircraft_carrier/aircraft_carrier_06s.jpg, ...   200 concepts x 1 image
        image_metadata.npy   pickled dict: {train,test}_img_{concepts,files,concepts_THINGS}

Row *i* of a split's EEG array belongs to image *i* of the sorted folder walk: concept folders in sorted order, the
files of each folder in sorted order (concept-major). Everything here follows that walk, and every count (concepts,
images per concept) is read from the folders, never assumed, so smaller simulated sets work the same way.

Checks, each failing with an error that names the folder or file: a missing root or split folder, a concept folder
whose name is not ``NNNNN_<concept>``, two folders with the same number, an empty folder, concepts with unequal
image counts, and training and test concepts that overlap (the test concepts must be unseen in training: that is
what makes the task zero-shot).

``image_metadata.npy`` is a pickle (a dict saved with ``np.save``), exactly as in the official release; it is read
with ``np.load(allow_pickle=True).item()`` and checked against the folders. Only open metadata files you trust.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegdecode.errors import DataFormatError, MissingFileError, check_option
from eegdecode.io import atomic_path

log = logging.getLogger(__name__)

#: split name -> folder below the image-set root
SPLIT_FOLDERS: dict[str, str] = {"train": "training_images", "test": "test_images"}
METADATA_FILE = "image_metadata.npy"
#: metadata key prefix of each split
_METADATA_PREFIX = {"train": "train_img", "test": "test_img"}
METADATA_KEYS: tuple[str, ...] = tuple(
    f"{_METADATA_PREFIX[split]}_{field}"
    for split in SPLIT_FOLDERS
    for field in ("concepts", "files", "concepts_THINGS")
)
#: prompt of a concept; ``{}`` receives the concept name with spaces
PROMPT_TEMPLATE = "This picture is {}"
CONCEPT_FOLDER_PATTERN = re.compile(r"^(\d{5})_(.+)$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_ROOT_HINT = (
    "Point --image-set (or $EEGDECODE_DATA/image_set) at the THINGS-EEG2 image set, the folder holding "
    "training_images/, test_images/ and image_metadata.npy, or write a simulated one with `eegdecode simulate`."
)


def concept_name(concept_folder: str) -> str:
    """Human-readable name of a concept folder: ``00002_aircraft_carrier`` -> ``aircraft carrier``.

    Parameters
    ----------
    concept_folder : str
        Folder name ``NNNNN_<concept>``.

    Returns
    -------
    str
        The part after the five-digit number, underscores replaced by spaces.
    """
    match = CONCEPT_FOLDER_PATTERN.match(concept_folder)
    if match is None:
        raise ValueError(f"Invalid concept folder name {concept_folder!r}; expected NNNNN_<concept>")
    return match.group(2).replace("_", " ")


def concept_prompt(name: str, template: str = PROMPT_TEMPLATE) -> str:
    """Text prompt of a concept name, ``"This picture is aircraft carrier"`` by default."""
    return template.format(name)


@dataclass(frozen=True, eq=False)
class ImageSplit:
    """The images of one split, in the order of the EEG rows.

    Attributes
    ----------
    name : str
        ``"train"`` or ``"test"``.
    folder : Path
        The split folder (``.../image_set/training_images``).
    concepts : tuple of str
        Concept folder names in sorted order (``00001_aardvark``).
    image_paths : tuple of Path
        Every image, concept-major: concept folders sorted, files within a folder sorted.
    relative_names : tuple of str
        Image paths relative to the image-set root with ``/`` separators
        (``training_images/00001_aardvark/aardvark_01b.jpg``); recorded as provenance.
    image_concept_index : np.ndarray
        ``(n_images,)`` int64, the index into ``concepts`` of every image.
    images_per_concept : int
        Number of images in every concept folder (the same for all, checked).
    """

    name: str
    folder: Path
    concepts: tuple[str, ...]
    image_paths: tuple[Path, ...]
    relative_names: tuple[str, ...]
    image_concept_index: np.ndarray
    images_per_concept: int

    @property
    def n_images(self) -> int:
        return len(self.image_paths)

    @property
    def n_concepts(self) -> int:
        return len(self.concepts)

    @property
    def image_files(self) -> tuple[str, ...]:
        """File names without folders (``aardvark_01b.jpg``), as in ``image_metadata.npy``."""
        return tuple(p.name for p in self.image_paths)

    @property
    def image_concepts(self) -> tuple[str, ...]:
        """The concept folder of every image, as in ``image_metadata.npy``."""
        return tuple(self.concepts[i] for i in self.image_concept_index)

    @property
    def concept_names(self) -> tuple[str, ...]:
        """Concept names with spaces (``aircraft carrier``), one per concept."""
        return tuple(concept_name(c) for c in self.concepts)

    def prompts(self, template: str = PROMPT_TEMPLATE) -> tuple[str, ...]:
        """One text prompt per concept, ``"This picture is {name}"`` by default."""
        return tuple(concept_prompt(n, template) for n in self.concept_names)


def _scan_split(root: Path, split: str) -> ImageSplit:
    folder = root / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise MissingFileError(
            folder, f"The image set {root} has no {SPLIT_FOLDERS[split]}/ folder. {_ROOT_HINT}"
        )
    concept_dirs: list[os.DirEntry] = []
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            log.debug("ignoring file %s in %s", entry.name, folder)
            continue
        if CONCEPT_FOLDER_PATTERN.match(entry.name) is None:
            raise DataFormatError(
                Path(entry.path),
                "not a concept folder name",
                "NNNNN_<concept> (five digits, underscore, name)",
                entry.name,
            )
        concept_dirs.append(entry)
    if not concept_dirs:
        raise DataFormatError(folder, "no concept folders", "folders named NNNNN_<concept>", "none")
    concept_dirs.sort(key=lambda e: e.name)

    numbers: dict[str, str] = {}
    concepts: list[str] = []
    image_paths: list[Path] = []
    relative_names: list[str] = []
    concept_index: list[int] = []
    counts: list[int] = []
    for i, entry in enumerate(concept_dirs):
        number = entry.name[:5]
        if number in numbers:
            raise DataFormatError(
                folder,
                f"two concept folders share the number {number}",
                "unique numbers",
                f"{numbers[number]} and {entry.name}",
            )
        numbers[number] = entry.name
        files = sorted(
            f.name
            for f in os.scandir(entry.path)
            if not f.name.startswith(".") and f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES)
        )
        if not files:
            raise DataFormatError(
                Path(entry.path),
                "concept folder holds no images",
                f"files ending in {IMAGE_SUFFIXES}",
                "none",
            )
        concepts.append(entry.name)
        counts.append(len(files))
        for name in files:
            image_paths.append(Path(entry.path) / name)
            relative_names.append(f"{SPLIT_FOLDERS[split]}/{entry.name}/{name}")
            concept_index.append(i)

    # The EEG rows are n_concepts x images_per_concept; a ragged folder would shift every later row.
    majority = max(set(counts), key=counts.count)
    for entry, count in zip(concept_dirs, counts):
        if count != majority:
            raise DataFormatError(
                Path(entry.path),
                "every concept must hold the same number of images",
                f"{majority} images (as most folders in {folder})",
                f"{count}",
            )
    return ImageSplit(
        name=split,
        folder=folder,
        concepts=tuple(concepts),
        image_paths=tuple(image_paths),
        relative_names=tuple(relative_names),
        image_concept_index=np.asarray(concept_index, dtype=np.int64),
        images_per_concept=majority,
    )


class ImageSet:
    """The THINGS-EEG2 image set below ``root``.

    Splits are scanned on first use. Whenever both split folders exist, asking for either one also checks that
    training and test concepts are disjoint.

    Parameters
    ----------
    root : str or Path
        The ``image_set`` folder, holding ``training_images/``, ``test_images/`` and ``image_metadata.npy``.

    Examples
    --------
    >>> images = ImageSet("data/image_set")  # doctest: +SKIP
    >>> train = images.split("train")  # doctest: +SKIP
    >>> train.n_concepts, train.images_per_concept, train.prompts()[0]  # doctest: +SKIP
    (1654, 10, 'This picture is aardvark')
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError(self.root, _ROOT_HINT)
        self._splits: dict[str, ImageSplit] = {}
        self._disjoint_checked = False

    def __repr__(self) -> str:
        return f"ImageSet({str(self.root)!r})"

    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA_FILE

    def available_splits(self) -> tuple[str, ...]:
        """The splits whose folder exists."""
        return tuple(s for s, f in SPLIT_FOLDERS.items() if (self.root / f).is_dir())

    def split(self, name: str) -> ImageSplit:
        """The images of split ``name`` (``"train"`` or ``"test"``), in EEG row order."""
        check_option("split", name, SPLIT_FOLDERS)
        if name not in self._splits:
            self._splits[name] = _scan_split(self.root, name)
        if not self._disjoint_checked and all(
            s in self._splits or s in self.available_splits() for s in SPLIT_FOLDERS
        ):
            self._check_disjoint()
        return self._splits[name]

    def _check_disjoint(self) -> None:
        for s in SPLIT_FOLDERS:
            if s not in self._splits:
                self._splits[s] = _scan_split(self.root, s)
        self._disjoint_checked = True
        by_name = {split: {c[6:]: c for c in self._splits[split].concepts} for split in SPLIT_FOLDERS}
        shared = sorted(set(by_name["train"]) & set(by_name["test"]))
        if shared:
            pairs = [f"{by_name['train'][n]} / {by_name['test'][n]}" for n in shared[:5]]
            more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
            raise DataFormatError(
                self.root,
                "training and test concepts must be disjoint (zero-shot test set)",
                "no shared concept",
                f"{len(shared)} shared: {', '.join(pairs)}{more}",
            )

    def read_metadata(self) -> dict[str, list[str]]:
        """Read ``image_metadata.npy`` and check it against the folders of every available split."""
        return read_image_metadata(self.metadata_path, image_set=self)


def _check_metadata_values(path: Path | None, metadata: Mapping[str, object]) -> dict[str, list[str]]:
    """Keys present, values sequences of strings, equal lengths within a split; returns plain lists."""
    if not isinstance(metadata, Mapping):
        raise DataFormatError(
            path,
            "image metadata must be a dict",
            f"dict with keys {list(METADATA_KEYS)}",
            type(metadata).__name__,
        )
    missing = [k for k in METADATA_KEYS if k not in metadata]
    if missing:
        raise DataFormatError(
            path, f"image metadata lacks keys {missing}", list(METADATA_KEYS), sorted(metadata)
        )
    out: dict[str, list[str]] = {}
    for key in METADATA_KEYS:
        value = metadata[key]
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
            raise DataFormatError(
                path, f"{key} must be a list of strings", "list of str", type(value).__name__
            )
        items = list(value)
        bad = next((i for i, v in enumerate(items) if not isinstance(v, str)), None)
        if bad is not None:
            raise DataFormatError(path, f"{key}[{bad}] must be a string", "str", repr(items[bad]))
        out[key] = [str(v) for v in items]
    for split, prefix in _METADATA_PREFIX.items():
        lengths = {
            f"{prefix}_{f}": len(out[f"{prefix}_{f}"]) for f in ("concepts", "files", "concepts_THINGS")
        }
        if len(set(lengths.values())) != 1:
            raise DataFormatError(
                path, f"the {split} metadata lists differ in length", "equal lengths", lengths
            )
    return out


def _check_metadata_against_split(path: Path, metadata: dict[str, list[str]], split: ImageSplit) -> None:
    prefix = _METADATA_PREFIX[split.name]
    folder_name = SPLIT_FOLDERS[split.name]
    for field, from_folders in (("concepts", split.image_concepts), ("files", split.image_files)):
        key = f"{prefix}_{field}"
        values = metadata[key]
        if len(values) != split.n_images:
            raise DataFormatError(
                path,
                f"length of {key} does not match the images in {folder_name}/",
                f"{split.n_images} ({split.n_concepts} concepts x {split.images_per_concept})",
                len(values),
            )
        for i, (found, expected) in enumerate(zip(values, from_folders)):
            if found != expected:
                raise DataFormatError(
                    path, f"{key}[{i}] disagrees with the sorted walk of {folder_name}/", expected, found
                )


def read_image_metadata(path: str | Path, image_set: ImageSet | None = None) -> dict[str, list[str]]:
    """Read ``image_metadata.npy`` (a pickled dict) and validate it.

    Parameters
    ----------
    path : str or Path
        The metadata file. It is a pickle: only read files you trust.
    image_set : ImageSet, optional
        When given, every available split is checked entry by entry against the sorted folder walk.

    Returns
    -------
    dict of str to list of str
        The six lists ``{train,test}_img_{concepts,files,concepts_THINGS}``.

    Raises
    ------
    MissingFileError
        The file does not exist.
    DataFormatError
        The file is not a pickled dict, lacks a key, or disagrees with the folders (the message names the file,
        the entry, the expected and the found value).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, f"The image set needs its {METADATA_FILE}. {_ROOT_HINT}")
    try:
        loaded = np.load(path, allow_pickle=True)
        content = loaded.item() if isinstance(loaded, np.ndarray) and loaded.shape == () else loaded
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(path, f"cannot be read as a pickled dict ({err})") from err
    metadata = _check_metadata_values(path, content)
    if image_set is not None:
        for split in image_set.available_splits():
            _check_metadata_against_split(path, metadata, image_set.split(split))
    return metadata


def build_image_metadata(
    image_set: ImageSet,
    train_concepts_things: Sequence[str] | None = None,
    test_concepts_things: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """The metadata dict of an image set, built from its folders.

    Parameters
    ----------
    image_set : ImageSet
        Both split folders must exist.
    train_concepts_things, test_concepts_things : sequence of str, optional
        The THINGS name (``00010_aircraft_carrier``: index in the 1854-concept THINGS list) of every concept of
        the split, one per concept in sorted folder order. Defaults to the concept folder names.

    Returns
    -------
    dict of str to list of str
        Ready for :func:`write_image_metadata`.
    """
    metadata: dict[str, list[str]] = {}
    for split, things in (("train", train_concepts_things), ("test", test_concepts_things)):
        images = image_set.split(split)
        prefix = _METADATA_PREFIX[split]
        if things is None:
            things = images.concepts
        if len(things) != images.n_concepts:
            raise ValueError(
                f"Invalid value for {split}_concepts_things: expected one name per concept ({images.n_concepts}), "
                f"got {len(things)}"
            )
        metadata[f"{prefix}_concepts"] = list(images.image_concepts)
        metadata[f"{prefix}_files"] = list(images.image_files)
        metadata[f"{prefix}_concepts_THINGS"] = [str(things[i]) for i in images.image_concept_index]
    return metadata


def write_image_metadata(path: str | Path, metadata: Mapping[str, Sequence[str]]) -> Path:
    """Write ``image_metadata.npy`` as the official release does: a dict saved with ``np.save`` (pickled).

    Parameters
    ----------
    path : str or Path
        Destination, normally ``<image_set>/image_metadata.npy``; written atomically.
    metadata : mapping
        The six lists ``{train,test}_img_{concepts,files,concepts_THINGS}``, e.g. from
        :func:`build_image_metadata`. Checked for keys and lengths before anything is written.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    clean = _check_metadata_values(None, metadata)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(clean, dtype=object), allow_pickle=True)
    return path


def open_image_set(root: Path) -> ImageSet | None:
    """The data root's image set, or ``None`` (with a log line) when it has none."""
    folder = Path(root) / "image_set"
    if not folder.is_dir():
        log.warning("%s: no image set; EEG and features are checked against each other only", folder)
        return None
    return ImageSet(folder)


def check_eeg_against_image_set(images: ImageSet, cache_dir: Path, shapes: dict[str, Sequence[int]]) -> None:
    """EEG rows of each split (``shapes[split][0]``) equal the images of that split in the image set."""
    for split, shape in shapes.items():
        found = images.split(split).n_images
        if int(shape[0]) != found:
            raise DataFormatError(
                Path(cache_dir) / f"{split}.npy",
                f"EEG {split} images disagree with the image set {images.root} ({found} images in "
                f"{images.split(split).n_concepts} concept folders)",
                found,
                int(shape[0]),
            )
