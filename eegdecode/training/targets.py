"""What a run aligns the EEG to, as the trainer uses it.

Without ``TrainConfig.target`` the target is the feature store named by ``TrainConfig.features`` (one image
embedding per image, one text embedding per concept), exactly as before. With a target (a
:class:`~eegdecode.training.config.TargetPlan`), the arrays come from the data root's target store
(``<root>/targets/<spec key>/``, written by ``eegdecode features --backbone ...`` or by the simulator):

- each layer of ``target.layers`` at ``target.pooling``, for every blur variant of ``target.blur``;
- one layer is used as it is; several are concatenated (``combine: concat``) or kept apart, ``(n, L, dim)``, for
  the router head (``combine: router``, :class:`~eegdecode.models.heads.AlignedEncoder`);
- the training rows are a stack ``(n_variants, n_images, ...)``; each sample's variant is chosen by
  :class:`~eegdecode.targets.chooser.BlurChooser` (``fixed``, ``random``, ``uncertainty``) or the variants are
  averaged (``mean``); validation and test galleries use ``target.eval_variant`` (default: the ``fixed`` one);
- ``blur_rule: learned``: every row carries every variant, ``(n_images, n_variants, dim)``, in training and in
  the galleries alike; the model's :class:`~eegdecode.models.heads.BlurMixer` mixes them (:func:`target_space`);
- ``target.head``: the rows stay in the target's space; the model's head projects them (:func:`target_space`);
- text: the store's prompt features when they have the target's width, else each concept's mean image target
  (for ``learned``, of the variants' mean); none for router targets and for a projection head (recorded in
  ``config.json`` as ``target_text``).

:class:`TrainTargets` holds the training rows on the device and gives each batch its targets without host reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eegdecode.embeddings.store import FeatureSet
from eegdecode.errors import ConfigError, MissingFileError
from eegdecode.targets.chooser import BlurChooser
from eegdecode.targets.store import TargetStore
from eegdecode.training.config import TargetPlan


@dataclass
class TargetArrays:
    """A fold's targets on the host: the evaluation view of each split as a FeatureSet, and the training stack."""

    train: FeatureSet  # image: (n, dim) or (n, L, dim) at the evaluation variant
    test: FeatureSet
    train_stack: np.ndarray | None  # (n_variants, n, ...) float32; None: train.image is the only variant
    plan: TargetPlan | None = None
    store: Path | None = None
    text_kind: str = "stored"


def targets_root(data_root: str | Path) -> Path:
    return Path(data_root) / "targets"


def load_target_arrays(data_root: str | Path, plan: TargetPlan) -> TargetArrays:
    """Read the arrays ``plan`` names from the data root's target store (an error names what is missing)."""
    spec = plan.spec
    store = TargetStore.for_spec(targets_root(data_root), spec)
    if not store.exists():
        raise MissingFileError(
            store.sidecar,
            f"no target store for {spec.backbone}; compute it with `eegdecode features --backbone {spec.backbone} "
            f"{' '.join('--layer ' + x for x in spec.layers)} --pooling {spec.pooling}"
            f"{''.join(' --blur ' + v for v in spec.blur)}`",
        )
    eval_variant = plan.eval_variant or spec.blur[plan.train_level]

    def layers(split: str, variant: str) -> np.ndarray:
        arrays = [
            np.asarray(store.image(split, layer, spec.pooling, variant), dtype=np.float32)
            for layer in spec.layers
        ]
        if len(arrays) == 1:
            return arrays[0]
        if plan.combine == "router":
            widths = {a.shape[1] for a in arrays}
            if len(widths) != 1:
                raise ConfigError(
                    f"target.combine 'router' needs layers of one width; {spec.layers} have {sorted(widths)}"
                )
            return np.stack(arrays, axis=1)
        return np.concatenate(arrays, axis=1)

    meta = store.meta()
    splits_meta = meta.get("splits", {})

    def text_for(split: str, image: np.ndarray) -> tuple[np.ndarray, str]:
        n_concepts = int(splits_meta[split]["n_concepts"])
        if plan.combine == "router" and image.ndim == 3:  # router targets (n, L, dim): no text target
            return np.zeros((n_concepts, 0), dtype=np.float32), "none (router targets)"
        if plan.head is not None:  # the EEG lives in the head's space, the text in the target's
            return np.zeros((n_concepts, 0), dtype=np.float32), "none (projection head)"
        if image.ndim == 3:  # learned blur mixture (n, V, dim): the text of the variants' mean
            image = image.mean(axis=1)
        stored = store.text(split)
        if spec.layers == ("embedding",) and stored is not None and stored.shape[1] == image.shape[1]:
            return np.asarray(stored, dtype=np.float32), "stored prompts"
        return image.reshape(n_concepts, -1, image.shape[1]).mean(axis=1), "concept mean of the image targets"

    views = {}
    for split in ("train", "test"):
        if plan.blur_rule == "mean":
            image = np.mean([layers(split, v) for v in spec.blur], axis=0)
        elif plan.blur_rule == "learned":  # (n, V, dim): the model's BlurMixer makes one target of them
            image = np.stack([layers(split, v) for v in spec.blur], axis=1)
        else:
            image = layers(split, eval_variant)
        text, text_kind = text_for(split, image)
        shown = "learned mixture" if plan.blur_rule == "learned" else eval_variant
        fs_meta = {"format": "eegdecode-targets-view/1", "dim": int(image.shape[-1]), "splits": splits_meta,
                   "store": str(store.folder), "eval_variant": shown, "text": text_kind}  # fmt: skip
        views[split] = FeatureSet(image=image, text=text, meta=fs_meta)
    stack = None
    if len(spec.blur) > 1 and plan.blur_rule in ("random", "uncertainty"):
        stack = np.stack([layers("train", v) for v in spec.blur])
    elif plan.blur_rule == "fixed" and spec.blur[plan.train_level] != eval_variant:
        stack = layers("train", spec.blur[plan.train_level])[None]
    return TargetArrays(views["train"], views["test"], stack, plan, store.folder, text_kind)


class TrainTargets:
    """The training targets on the device; ``rows(batch)`` gives each sample its image and text target.

    For ``blur_rule: learned`` the one "variant" of the stack is the ``(n_images, n_variants, dim)`` view, so a
    batch's image targets are ``(batch, n_variants, dim)``, every variant, and the model's head mixes them."""

    def __init__(self, arrays: TargetArrays, image_concept: np.ndarray, n_samples: int, seed: int,
                 device: torch.device):  # fmt: skip
        stack = arrays.train_stack if arrays.train_stack is not None else np.asarray(arrays.train.image)[None]
        self.stack = torch.as_tensor(np.asarray(stack), dtype=torch.float32).to(device)
        self.text = torch.as_tensor(np.asarray(arrays.train.text), dtype=torch.float32).to(device)
        self.concept = torch.as_tensor(np.asarray(image_concept), dtype=torch.long).to(device)
        plan = arrays.plan
        self.chooser = None
        if self.stack.shape[0] > 1:
            self.chooser = BlurChooser(
                n_samples, self.stack.shape[0], plan.blur_rule, plan.blur_level, seed
            ).to(device)
        self.use_text = self.text.shape[1] > 0

    def rows(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.chooser is None:
            img = self.stack[0][batch.image]
        else:
            img = self.chooser.select(self.stack, batch.image, self.chooser.choose(batch.sample))
        return img, (self.text[self.concept[batch.image]] if self.use_text else None)

    def observe(self, batch, eeg: torch.Tensor, target: torch.Tensor) -> None:
        """After a step: UBP's uncertainty rule reads each sample's matched EEG-target cosine similarity."""
        if self.chooser is not None and self.chooser.rule == "uncertainty":
            sim = torch.nn.functional.cosine_similarity(eeg.detach().float(), target.detach().float(), dim=-1)
            self.chooser.update(batch.sample, sim)

    def state_dict(self) -> dict[str, Any]:
        return (
            {} if self.chooser is None else {f"chooser.{k}": v for k, v in self.chooser.state_dict().items()}
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.chooser is not None and state:
            self.chooser.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()})


@torch.no_grad()
def target_space(
    model: torch.nn.Module, rows: np.ndarray, device: torch.device, batch: int = 1024
) -> np.ndarray:
    """Target rows in the space the model's EEG embeddings live in: through the head's target side (the router's
    global weights, the learned blur mixture, the target projector) for an
    :class:`~eegdecode.models.heads.AlignedEncoder`, unchanged otherwise."""
    if not hasattr(model, "encode_targets"):
        return np.asarray(rows)
    model.eval()
    out = [model.encode_targets(torch.as_tensor(np.asarray(rows[i : i + batch]), dtype=torch.float32).to(device))
           for i in range(0, len(rows), batch)]  # fmt: skip
    return torch.cat(out).float().cpu().numpy()
