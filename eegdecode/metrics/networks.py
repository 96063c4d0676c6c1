"""The feature networks of the reconstruction metrics, built offline from local weight files.

Five networks serve six feature metrics (AlexNet gives two layers in one pass):

============  ===========================================  =====  ============================  ======================
network       architecture and layer (graph node)          input  weights file                  metric(s)
============  ===========================================  =====  ============================  ======================
``alexnet``   torchvision AlexNet, ``features.4`` and      256    ``alexnet-owt-7be5be79.pth``  AlexNet(2), AlexNet(5)
              ``features.11`` (ReLU after conv2 / conv5)
``inception`` torchvision Inception-v3, ``avgpool``        342    ``inception_v3_google-        InceptionV3
              (``transform_input=True`` as its weights)           0cc3c7bd.pth``
``clip``      OpenCLIP ``ViT-L-14-quickgelu`` image        224    ``ViT-L-14.pt`` (OpenAI)      CLIP
              embedding (768-d, unnormalised)
``effnet``    torchvision EfficientNet-B1, ``avgpool``     255    ``efficientnet_b1-            EffNet-B
                                                                  c27df63c.pth``
``swav``      torchvision ResNet-50 with the SwAV state    224    ``swav_800ep_pretrain.        SwAV
              dict (``fc`` left untouched), ``avgpool``           pth.tar``
============  ===========================================  =====  ============================  ======================

Every network sees the square base images resized (bilinear, antialias) to its input side, then normalised with the
ImageNet mean/std (CLIP: the CLIP mean/std). Nothing is ever downloaded: weights come from an explicit path or from
``$TORCH_HOME/hub/checkpoints/<file name>`` (the folder torchvision itself caches to). ``random_weights=True`` builds
the same architectures with random weights, for tests and the demo only; the report labels such output.

CLIP: OpenAI's ViT-L/14 was trained with QuickGELU, so OpenAI weights must go into ``ViT-L-14-quickgelu`` (the same
parameters as ``ViT-L-14``; loading them into ``ViT-L-14`` raises no error but gives wrong features). Pass
``clip_model="ViT-L-14"`` for weights trained with GELU (e.g. LAION). OpenAI's TorchScript ``ViT-L-14.pt``, OpenCLIP
state dicts (``.bin``/``.pt``/``.pth``) and ``.safetensors`` files are all accepted.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from eegdecode.errors import DataFormatError, WeightsNotFoundError
from eegdecode.metrics.scores import resize_square

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_CLIP_MODEL = "ViT-L-14-quickgelu"


@dataclass(frozen=True)
class NetworkSpec:
    """One feature network: architecture, preprocessing, layers read out and where its weights come from."""

    name: str
    title: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    outputs: dict[str, str]  # metric id -> graph node read out
    weights_file: str
    weights_url: str


NETWORKS: dict[str, NetworkSpec] = {
    "alexnet": NetworkSpec(
        "alexnet",
        "torchvision AlexNet (IMAGENET1K_V1)",
        256,
        IMAGENET_MEAN,
        IMAGENET_STD,
        {"alexnet2": "features.4", "alexnet5": "features.11"},
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "inception": NetworkSpec(
        "inception",
        "torchvision Inception-v3 (IMAGENET1K_V1)",
        342,
        IMAGENET_MEAN,
        IMAGENET_STD,
        {"inceptionv3": "avgpool"},
        "inception_v3_google-0cc3c7bd.pth",
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    ),
    "clip": NetworkSpec(
        "clip",
        "OpenAI CLIP ViT-L/14 image embedding (OpenCLIP)",
        224,
        CLIP_MEAN,
        CLIP_STD,
        {"clip": "image_embedding"},
        "ViT-L-14.pt",
        "https://openaipublic.azureedge.net/clip/models/"
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    ),
    "effnet": NetworkSpec(
        "effnet",
        "torchvision EfficientNet-B1 (IMAGENET1K_V2)",
        255,
        IMAGENET_MEAN,
        IMAGENET_STD,
        {"effnet": "avgpool"},
        "efficientnet_b1-c27df63c.pth",
        "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth",
    ),
    "swav": NetworkSpec(
        "swav",
        "ResNet-50 with SwAV weights (800 epochs)",
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        {"swav": "avgpool"},
        "swav_800ep_pretrain.pth.tar",
        "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
    ),
}

# metric id -> network name
METRIC_NETWORK: dict[str, str] = {metric: spec.name for spec in NETWORKS.values() for metric in spec.outputs}


def checkpoint_dir() -> Path:
    """The folder torchvision caches weights in: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(network: str, explicit: str | Path | None = None) -> Path | None:
    """Find the weights file of ``network``.

    Parameters
    ----------
    network : str
        A key of :data:`NETWORKS`.
    explicit : path, optional
        A file the user named; it must exist.

    Returns
    -------
    pathlib.Path or None
        ``explicit`` if given, else ``checkpoint_dir() / <weights file>`` if it exists, else None (the caller skips
        the metric and says which file to fetch, see :func:`missing_weights_message`).
    """
    spec = NETWORKS[network]
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                path, f"given as the {network} weights; expected the file {spec.weights_file}"
            )
        return path
    default = checkpoint_dir() / spec.weights_file
    return default if default.is_file() else None


def missing_weights_message(network: str) -> str:
    """A sentence naming the file to fetch, where to put it and the flag that points at it."""
    spec = NETWORKS[network]
    return (
        f"weights not found: put {spec.weights_file} (from {spec.weights_url}) in {checkpoint_dir()} "
        f"(the folder follows $TORCH_HOME) or pass --{network}-weights PATH"
    )


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a tensor-only torch file (``weights_only=True``).

    A ``{"state_dict": ...}`` wrapper is unwrapped and a DataParallel ``module.`` prefix removed.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises several types for a non-state-dict file
            raise DataFormatError(
                path, "cannot read as a tensor-only state dict", "torch.save(state_dict)", err
            ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataFormatError(path, "not a state dict", "a mapping of names to tensors", type(state).__name__)
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def _load_into(
    model: nn.Module, state: dict[str, torch.Tensor], path: Path, may_miss: frozenset[str] = frozenset()
):
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches raise even with strict=False
        raise DataFormatError(
            path, f"does not fit {type(model).__name__}", "matching parameter shapes", err
        ) from err
    missing = [k for k in result.missing_keys if k not in may_miss]
    unexpected = list(result.unexpected_keys)
    if missing or (unexpected and not may_miss):
        raise DataFormatError(
            path,
            f"does not fit {type(model).__name__}",
            "every parameter name of the architecture",
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})",
        )
    if unexpected:
        logger.info(
            "%s: ignored %d entries not in the backbone (e.g. %s)", path, len(unexpected), unexpected[:2]
        )


def _torchvision_architecture(network: str) -> nn.Module:
    from torchvision import models

    if network == "alexnet":
        return models.alexnet(weights=None)
    if network == "inception":
        # What torchvision's weights builder sets; transform_input re-normalises ImageNet-normalised input.
        return models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    if network == "effnet":
        return models.efficientnet_b1(weights=None)
    if network == "swav":
        return models.resnet50(weights=None)
    raise KeyError(network)


def _build_clip(weights_path: Path | None, clip_model: str) -> nn.Module:
    import open_clip

    if weights_path is None:
        config = open_clip.get_model_config(clip_model)
        if config is None:
            raise ValueError(
                f"Invalid value for clip_model: {clip_model!r}; not an OpenCLIP model configuration"
            )
        return open_clip.CLIP(**config).visual
    if _is_torchscript_archive(weights_path):
        # OpenAI's own ViT-L-14.pt is a TorchScript archive; torch.jit.load reads it without unpickling Python objects.
        model = open_clip.CLIP(**open_clip.get_model_config(clip_model))
        state = torch.jit.load(str(weights_path), map_location="cpu").state_dict()
        # Scalars OpenAI stores in the archive, and the causal mask (a non-persistent buffer in OpenCLIP).
        for key in [
            k for k in state if k in ("input_resolution", "context_length", "vocab_size", "attn_mask")
        ]:
            state.pop(key)
        _load_into(model, state, weights_path)
        return model.visual
    try:
        model = open_clip.create_model(clip_model, pretrained=str(weights_path), weights_only=True)
    except (RuntimeError, AssertionError, KeyError, ValueError) as err:  # what open_clip raises on a mismatch
        raise DataFormatError(
            weights_path, f"does not fit OpenCLIP {clip_model}", "its state dict", err
        ) from err
    return model.visual


def build_backbone(
    network: str,
    weights_path: str | Path | None = None,
    *,
    random_weights: bool = False,
    clip_model: str = DEFAULT_CLIP_MODEL,
) -> nn.Module:
    """Build one network with its weights, in eval mode.

    Parameters
    ----------
    network : str
        A key of :data:`NETWORKS`.
    weights_path : path, optional
        The weights file; required unless ``random_weights``.
    random_weights : bool
        Build the architecture with random weights (tests and demo only).
    clip_model : str
        OpenCLIP configuration of the CLIP network.

    Returns
    -------
    torch.nn.Module
        The torchvision classifier (its layers are read out by :class:`FeatureExtractor`) or the CLIP image tower.
    """
    if network not in NETWORKS:
        raise ValueError(f"Invalid value for network: {network!r}; allowed values are {list(NETWORKS)}")
    if weights_path is None and not random_weights:
        raise WeightsNotFoundError(NETWORKS[network].weights_file, missing_weights_message(network))
    path = None if weights_path is None else Path(weights_path)
    if network == "clip":
        return _build_clip(path, clip_model).eval()
    model = _torchvision_architecture(network)
    if path is not None:
        # SwAV's checkpoint has no classifier (fc stays random, unused) and carries its projection head.
        may_miss = frozenset({"fc.weight", "fc.bias"}) if network == "swav" else frozenset()
        _load_into(model, read_state_dict(path), path, may_miss)
    return model.eval()


def network_input(images: torch.Tensor, spec: NetworkSpec, input_size: int | None = None) -> torch.Tensor:
    """What ``spec``'s network sees: ``images`` resized to its input side (square, bilinear) and normalised.

    The same computation as :meth:`FeatureExtractor.preprocess`, without building the network.
    """
    size = int(input_size or spec.input_size)
    mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1)
    return (resize_square(images, size) - mean) / std


class FeatureExtractor(nn.Module):
    """Resize, normalise and read out the metric layers of one network.

    Parameters
    ----------
    spec : NetworkSpec
        Which network (preprocessing and layers).
    backbone : torch.nn.Module
        A torchvision classifier with the spec's graph nodes, or for CLIP an OpenCLIP model or image tower (any module
        mapping images to embeddings).
    input_size : int, optional
        Override of the input side (tests and quick looks only; the report records it).

    Notes
    -----
    The forward pass takes (B, 3, H, W) floats in [0, 1] and returns ``{metric id: (B, D) float32}``.
    """

    def __init__(self, spec: NetworkSpec, backbone: nn.Module, input_size: int | None = None):
        super().__init__()
        self.spec = spec
        self.input_size = int(input_size or spec.input_size)
        backbone = backbone.eval()
        if spec.name == "clip":
            self.body = getattr(backbone, "visual", backbone)
            return
        from torchvision.models.feature_extraction import create_feature_extractor

        nodes = {node: metric for metric, node in spec.outputs.items()}
        with warnings.catch_warnings():
            # The eval-mode graph is the one we want; torchvision warns that train mode would differ.
            warnings.filterwarnings(
                "ignore", message="NOTE: The nodes obtained by tracing", category=UserWarning
            )
            try:
                self.body = create_feature_extractor(backbone, return_nodes=nodes)
            except ValueError as err:
                raise DataFormatError(
                    None, f"the {spec.name} network lacks a metric layer", f"graph nodes {list(nodes)}", err
                ) from err
        self.body.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize to ``input_size`` x ``input_size`` and normalise (what the network actually sees)."""
        return network_input(images, self.spec, self.input_size)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(images)
        if self.spec.name == "clip":
            return {"clip": self.body(x).flatten(1).float()}
        return {metric: value.flatten(1).float() for metric, value in self.body(x).items()}
