"""``TargetStore``: cached target features, float16 and memory-mapped, one array per split, layer, pooling and
image variant, with their provenance in ``targets.json``.

Layout of one store (the folder ``<root>/<TargetSpec.key>``; no pickle)::

    targets.json                                      provenance: spec, weights stamps, model config digest,
                                                      library versions, per split the image-list digest, and
                                                      one entry per array (layer, module, pooling, variant, blur)
    image__train__embedding__none__none.npy           (n_images, dim) float16
    image__train__block31__cls__fovea51g3.npy         (n_images, dim) float16
    text__train.npy                                   (n_concepts, dim) float16 (open_clip embedding space)
    ...

Rows follow the image-set walk (concept-major, the EEG row order). Arrays are unnormalised. The sidecar is
written last and lists only arrays that are complete and current: a new array is written first (atomically) and
then added to it; arrays that went stale are removed from it before they are replaced, and a full rebuild removes
the sidecar first, so a folder without one reads as empty, never as a mix of old and new arrays.

:meth:`TargetStore.feature_set` exposes one (layer, pooling, variant) as the
:class:`~eegdecode.embeddings.store.FeatureSet` the trainer reads today.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.embeddings.store import SPLITS, FeatureSet, save_features
from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError, check_option
from eegdecode.io import read_json, save_npy, write_json
from eegdecode.targets.blur import parse_variant
from eegdecode.targets.pooling import pooling_slug
from eegdecode.targets.spec import TargetSpec, slug

FORMAT = "eegdecode-targets/1"
SIDECAR = "targets.json"
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: pooling recorded for arrays that need none (the final embedding)
NO_POOLING = "none"


class StaleTargetsError(DataFormatError):
    """The store's provenance differs from what is asked for and a rebuild was not allowed."""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def array_pooling(layer: str, pooling: str | None) -> str:
    """The pooling an array of ``layer`` is stored under: ``none`` for the embedding, else ``pooling``."""
    if layer == "embedding":
        return NO_POOLING
    if pooling is None:
        raise ValueError(f"Invalid value for pooling: None; layer {layer!r} needs cls, mean or tokens:N")
    pooling_slug(pooling)
    return pooling


def array_key(split: str, layer: str, pooling: str | None, variant: str) -> str:
    """The sidecar key of an array: ``train/block:3/cls/gaussian:51``."""
    check_option("split", split, SPLITS)
    return f"{split}/{layer}/{array_pooling(layer, pooling)}/{parse_variant(variant).name}"


def array_file(split: str, layer: str, pooling: str | None, variant: str) -> str:
    pool = array_pooling(layer, pooling)
    pool_slug = NO_POOLING if pool == NO_POOLING else pooling_slug(pool)
    return f"image__{split}__{slug(layer.replace(':', ''))}__{pool_slug}__{parse_variant(variant).slug}.npy"


def text_file(split: str) -> str:
    return f"text__{split}.npy"


def to_float16(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as float16 after checking it is 2-D, finite and within float16's range."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (rows, features), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: contains NaN or Inf")
    peak = float(np.abs(array).max()) if array.size else 0.0
    if peak > FLOAT16_MAX:
        raise ValueError(f"{what}: values up to {peak:g} do not fit float16 (max {FLOAT16_MAX:g})")
    return array.astype(np.float16)


class TargetStore:
    """One cache folder (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        #: set by :func:`~eegdecode.targets.compute.compute_targets`: each layer as asked -> its canonical name
        self.layer_names: dict[str, str] = {}

    @classmethod
    def for_spec(cls, root: str | Path, spec: TargetSpec) -> TargetStore:
        """The store of ``spec`` below ``root``: ``root / spec.key``."""
        return cls(Path(root) / spec.key)

    # -- reading -----------------------------------------------------------------------------------------------
    @property
    def sidecar(self) -> Path:
        return self.folder / SIDECAR

    def exists(self) -> bool:
        return self.sidecar.is_file()

    def meta(self) -> dict[str, Any]:
        """The sidecar; :class:`MissingFileError` without one, :class:`DataFormatError` for another format."""
        if not self.sidecar.is_file():
            raise MissingFileError(
                self.sidecar, "Create the targets with `eegdecode features --backbone ...`."
            )
        try:
            meta = read_json(self.sidecar)
        except ValueError as err:
            raise DataFormatError(self.sidecar, f"not valid JSON ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise DataFormatError(self.sidecar, "unknown target store format", FORMAT, found)
        return meta

    def arrays(self) -> dict[str, dict[str, Any]]:
        """Sidecar entries of the stored image arrays, by :func:`array_key`."""
        return self.meta().get("arrays", {}) if self.exists() else {}

    def has(self, split: str, layer: str, pooling: str | None = None, variant: str = "none") -> bool:
        key = array_key(split, layer, pooling, variant)
        entry = self.arrays().get(key)
        return entry is not None and (self.folder / entry["file"]).is_file()

    def _load(self, name: str, rows: int | None, mmap: bool) -> np.ndarray:
        path = self.folder / name
        if not path.is_file():
            raise MissingFileError(path, f"listed in {self.sidecar} but missing; rebuild the targets")
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if arr.ndim != 2 or arr.dtype != np.float16:
            raise DataFormatError(
                path, "target array has the wrong layout", "(rows, dim) float16", f"{arr.shape} {arr.dtype}"
            )
        if rows is not None and arr.shape[0] != rows:
            raise DataFormatError(path, f"row count disagrees with {SIDECAR}", rows, arr.shape[0])
        return arr

    def _held(self, key: str) -> str:
        """What the store holds near ``key`` (``split/layer/pooling/variant``), short enough for one line: the
        stored variants of that split and layer, or else the stored layers of that split."""
        arrays = sorted(self.arrays())
        split, layer, pool, _ = key.split("/", 3)
        variants = [k.split("/", 3)[3] for k in arrays if k.startswith(f"{split}/{layer}/{pool}/")]
        if variants:
            return f"it holds {len(arrays)} arrays; its variants of {split}/{layer}/{pool}: {', '.join(variants)}"
        layers = sorted({k.split("/", 3)[1] for k in arrays if k.startswith(f"{split}/")})
        shown = ", ".join(layers[:12]) + (f", ... ({len(layers)} layers)" if len(layers) > 12 else "")
        return f"it holds {len(arrays)} arrays; no layer {layer!r} in {split}, whose layers are: {shown or 'none'}"

    def image(
        self,
        split: str,
        layer: str = "embedding",
        pooling: str | None = None,
        variant: str = "none",
        mmap: bool = True,
    ) -> np.ndarray:
        """One image array, ``(n_images, dim)`` float16 (memory-mapped unless ``mmap=False``)."""
        key = array_key(split, layer, pooling, variant)
        entry = self.arrays().get(key)
        if entry is None:
            raise MissingFileError(
                self.folder / array_file(split, layer, pooling, variant),
                f"no array {key!r} in {self.sidecar} ({self._held(key)}); compute it with `eegdecode features`",
            )
        arr = self._load(entry["file"], entry.get("rows"), mmap)
        if list(arr.shape[1:]) != list(entry.get("shape", arr.shape)[1:]):
            raise DataFormatError(
                self.folder / entry["file"], f"width disagrees with {SIDECAR}", entry["shape"], arr.shape
            )
        return arr

    def stack(
        self, split: str, layer: str, pooling: str | None, variants, dtype: np.dtype = np.float32
    ) -> np.ndarray:
        """The arrays of several variants stacked ``(n_variants, n_images, dim)``, e.g. the blur levels a
        :class:`~eegdecode.targets.chooser.BlurChooser` picks from (``torch.as_tensor(stack).to(device)``)."""
        from eegdecode.targets.blur import expand_variants

        return np.stack(
            [np.asarray(self.image(split, layer, pooling, v), dtype=dtype) for v in expand_variants(variants)]
        )

    def text(self, split: str, mmap: bool = True) -> np.ndarray | None:
        """The concept prompt features of ``split`` (``None`` when the store has none)."""
        entry = self.meta().get("text", {}).get(split)
        return None if entry is None else self._load(entry["file"], entry.get("rows"), mmap)

    def feature_set(
        self,
        split: str,
        layer: str = "embedding",
        pooling: str | None = None,
        variant: str = "none",
        text: str = "auto",
        normalise: bool = False,
        dtype: np.dtype | None = np.float32,
    ) -> FeatureSet:
        """One (layer, pooling, variant) as the :class:`~eegdecode.embeddings.store.FeatureSet` the trainer uses.

        Parameters
        ----------
        split, layer, pooling, variant : str
            Which array (``pooling`` is ignored for ``embedding``).
        text : {"auto", "stored", "concept_mean"}
            ``stored``: the store's prompt features (same width as the image array, else an error); ``concept_mean``:
            the mean image row of every concept (a stand-in for layers without text, for training with no text
            term); ``auto``: ``stored`` when it exists with a matching width, else ``concept_mean``.
        normalise : bool
            L2-normalise every row (a fresh array).
        dtype : numpy dtype or None
            Cast to this dtype (default float32, as :func:`~eegdecode.embeddings.store.load_features` returns);
            ``None`` keeps the float16 memory map.

        Returns
        -------
        FeatureSet
            ``image`` ``(n_images, dim)``, ``text`` ``(n_concepts, dim)``, ``meta`` with ``format``, ``dim``,
            ``normalised``, ``splits`` (``n_images``, ``n_concepts``) as the feature store has, plus ``target``
            (this array's sidecar entry) and ``store`` (the folder).
        """
        check_option("text", text, ("auto", "stored", "concept_mean"))
        meta = self.meta()
        image = self.image(split, layer, pooling, variant)
        split_meta = meta.get("splits", {}).get(split, {})
        per_concept = split_meta.get("images_per_concept")
        stored_text = self.text(split)
        use_stored = text == "stored" or (
            text == "auto" and stored_text is not None and stored_text.shape[1] == image.shape[1]
        )
        if use_stored:
            if stored_text is None or stored_text.shape[1] != image.shape[1]:
                found = None if stored_text is None else stored_text.shape
                raise DataFormatError(
                    self.folder / text_file(split),
                    f"no text features of width {image.shape[1]} for {layer!r}",
                    f"(n_concepts, {image.shape[1]})",
                    found,
                )
            txt = np.asarray(stored_text, dtype=np.float32)
        else:
            if not per_concept or image.shape[0] % per_concept:
                raise DataFormatError(
                    self.sidecar,
                    f"split {split!r} lacks images_per_concept",
                    "a divisor of n_images",
                    per_concept,
                )
            txt = np.asarray(image, dtype=np.float32).reshape(-1, per_concept, image.shape[1]).mean(axis=1)
        if normalise:
            image = np.asarray(image, dtype=np.float32)
            image = image / np.maximum(np.linalg.norm(image, axis=1, keepdims=True), 1e-12)
            txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
        if dtype is not None:
            image = np.asarray(image, dtype=dtype)
            txt = txt.astype(dtype, copy=False)
        key = array_key(split, layer, pooling, variant)
        fs_meta = {
            **{k: v for k, v in meta.items() if k not in ("arrays", "text", "splits")},
            "format": "eegdecode-features/1",
            "dim": int(image.shape[1]),
            "normalised": bool(normalise),
            "splits": {
                split: {**split_meta, "n_images": int(image.shape[0]), "n_concepts": int(txt.shape[0])}
            },
            "target": {**meta["arrays"][key], "key": key, "text": "stored" if use_stored else "concept_mean"},
            "store": str(self.folder),
        }
        return FeatureSet(image=image, text=txt, meta=fs_meta)

    def export_features(
        self,
        out_dir: str | Path,
        layer: str = "embedding",
        pooling: str | None = None,
        variant: str = "none",
        text: str = "auto",
        force: bool = False,
    ) -> Path:
        """Write one (layer, pooling, variant) of both splits as a feature store (``eegdecode-features/1``).

        The result is a folder that ``load_features`` and the trainer read as they are (``--features out_dir``):
        float32 image and text arrays (text as in :meth:`feature_set`) and a ``features.json`` whose ``target``
        entry names the store and the array. An existing export of the same array is left as it is; another
        feature store in ``out_dir`` is replaced only with ``force``.
        """
        out_dir = Path(out_dir)
        sets = {
            s: self.feature_set(s, layer, pooling, variant, text=text)
            for s in SPLITS
            if s in self.meta()["splits"]
        }
        if not sets:
            raise MissingFileError(self.sidecar, "the target store holds no split to export")
        target = {"store": str(self.folder), "key": array_key(next(iter(sets)), layer, pooling, variant)}
        target["array"] = target["key"].split("/", 1)[1]
        if (out_dir / "features.json").exists():
            try:
                old = read_json(out_dir / "features.json")
            except ValueError:
                old = {}
            same = old.get("target", {}).get("array") == target["array"] and old.get("target", {}).get(
                "created"
            ) == {s: fs.meta["target"]["created"] for s, fs in sets.items()}
            if same and not force:
                return out_dir
            if not force:
                raise OutputExistsError(out_dir / "features.json", "--force")
        meta = self.meta()
        exported = {
            "source": "targets",
            "model": meta.get("backbone"),
            "weights": meta.get("weights"),
            "target": {
                **target,
                "created": {s: fs.meta["target"]["created"] for s, fs in sets.items()},
                "text": {s: fs.meta["target"]["text"] for s, fs in sets.items()},
                "entry": next(iter(sets.values())).meta["target"],
            },  # fmt: skip
            "splits": {s: meta["splits"][s] for s in sets},
        }
        # Without a sidecar the folder reads as "no store", never as a mix of old and new arrays.
        (out_dir / "features.json").unlink(missing_ok=True)
        save_features(out_dir, {s: (fs.image, fs.text) for s, fs in sets.items()}, exported)
        return out_dir

    # -- writing -----------------------------------------------------------------------------------------------
    def reset(self, meta: dict[str, Any]) -> None:
        """Start a fresh store: drop the sidecar first, then every array, then write ``meta`` with no arrays."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sidecar.unlink(missing_ok=True)
        for p in list(self.folder.glob("image__*.npy")) + list(self.folder.glob("text__*.npy")):
            p.unlink()
        write_json(self.sidecar, {**meta, "format": FORMAT, "splits": {}, "arrays": {}, "text": {}})

    def drop_split(self, split: str) -> None:
        """Forget a split (sidecar first, then its files)."""
        meta = self.meta()
        files = [e["file"] for k, e in meta["arrays"].items() if e["split"] == split]
        if split in meta.get("text", {}):
            files.append(meta["text"][split]["file"])
        meta["arrays"] = {k: e for k, e in meta["arrays"].items() if e["split"] != split}
        meta.get("text", {}).pop(split, None)
        meta.get("splits", {}).pop(split, None)
        write_json(self.sidecar, meta)
        for name in files:
            (self.folder / name).unlink(missing_ok=True)

    def forget(self, key: str) -> None:
        """Drop one array (sidecar first, then its file)."""
        meta = self.meta()
        entry = meta["arrays"].pop(key, None)
        if entry is not None:
            write_json(self.sidecar, meta)
            (self.folder / entry["file"]).unlink(missing_ok=True)

    def set_split(self, split: str, provenance: dict[str, Any]) -> None:
        meta = self.meta()
        meta.setdefault("splits", {})[split] = provenance
        write_json(self.sidecar, meta)

    def put_image(
        self,
        split: str,
        layer: str,
        pooling: str | None,
        variant: str,
        array: np.ndarray,
        info: dict[str, Any],
    ) -> Path:
        """Write one image array (float16, atomically), then list it in the sidecar with ``info``."""
        meta = self.meta()
        if split not in meta.get("splits", {}):
            raise ValueError(f"split {split!r} has no provenance in {self.sidecar}; call set_split first")
        key = array_key(split, layer, pooling, variant)
        name = array_file(split, layer, pooling, variant)
        data = to_float16(array, f"{self.folder / name}")
        expected = meta["splits"][split].get("n_images")
        if expected is not None and data.shape[0] != expected:
            raise ValueError(
                f"{self.folder / name}: {data.shape[0]} rows, but split {split!r} has {expected} images"
            )
        save_npy(self.folder / name, data)
        meta["arrays"][key] = {
            "file": name,
            "split": split,
            "layer": layer,
            "pooling": array_pooling(layer, pooling),
            "variant": parse_variant(variant).name,
            "rows": int(data.shape[0]),
            "shape": list(data.shape),
            "dtype": "float16",
            "created": now(),
            **info,
        }
        write_json(self.sidecar, meta)
        return self.folder / name

    def put_text(self, split: str, array: np.ndarray, info: dict[str, Any]) -> Path:
        """Write the prompt features of ``split`` (float16), then list them."""
        meta = self.meta()
        name = text_file(split)
        data = to_float16(array, f"{self.folder / name}")
        save_npy(self.folder / name, data)
        meta.setdefault("text", {})[split] = {
            "file": name,
            "rows": int(data.shape[0]),
            "shape": list(data.shape),
            "created": now(),
            **info,
        }
        write_json(self.sidecar, meta)
        return self.folder / name


def write_reference_targets(
    root: str | Path,
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    split_provenance: dict[str, dict[str, Any]],
    meta: dict[str, Any] | None = None,
) -> TargetStore:
    """Write known image and text embeddings (e.g. the simulator's reference) as a target store.

    The store is ``root / TargetSpec("simulator:<name>").key`` with layer ``embedding`` and variant ``none``;
    ``split_provenance[split]`` must hold at least ``image_list_digest`` and ``images_per_concept``.
    """
    spec = TargetSpec(backbone=f"simulator:{name}")
    store = TargetStore.for_spec(root, spec)
    store.reset({"spec": spec.to_dict(), "source": "simulator", "created": now(), **(meta or {})})
    for split, (image, text) in splits.items():
        prov = split_provenance[split]
        for needed in ("image_list_digest", "images_per_concept"):
            if needed not in prov:
                raise ValueError(f"split_provenance[{split!r}] lacks {needed!r}")
        store.set_split(
            split, {**prov, "n_images": int(np.shape(image)[0]), "n_concepts": int(np.shape(text)[0])}
        )
        store.put_image(split, "embedding", None, "none", image, {"module": "embedding"})
        store.put_text(split, text, {})
    return store
