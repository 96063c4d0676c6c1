"""SDXL-Turbo + IP-Adapter: images from 1024-d CLIP ViT-H image embeddings.

The stock diffusers ``StableDiffusionXLPipeline`` with h94's ``ip-adapter_sdxl_vit-h`` IP-Adapter, fed through
the public ``ip_adapter_image_embeds`` argument (no forked ``__call__``; one helper is replaced so that a batch
carries one embedding per image, see ``_use_embeds_per_image``): empty prompt, 4 steps, guidance 0,
512 x 512, IP-Adapter scale 1, the scheduler shipped with sdxl-turbo (Euler ancestral, "trailing" spacing), one
seeded generator per image, so an image depends on its embedding and seed only, not on the batch it ran in.
fp16 on a GPU (the VAE decodes in fp32 through the pipeline's ``force_upcast``, because the SDXL VAE overflows in
fp16), fp32 on the CPU.

Scale of the embeddings. IP-Adapter was trained on unnormalised CLIP ViT-H image embeddings, and the norm of the
embedding sets how strongly the image follows it. ``Generator(embed_norm=...)`` rescales every embedding to that
L2 norm before it enters the pipeline; pass the mean norm of unnormalised CLIP image features (the feature store
keeps features unnormalised: ``np.linalg.norm(features, axis=1).mean()``) so that image, EEG and prior embeddings
all enter at the scale IP-Adapter knows. ``embed_norm=None`` feeds embeddings as given.

Weights come only from disk, always with ``local_files_only=True``:

- ``sdxl_dir``: a folder in diffusers layout (``model_index.json``, ``unet/``, ``vae/``, ``text_encoder{,_2}/``,
  ``tokenizer{,_2}/``, ``scheduler/``), e.g. ``hf download stabilityai/sdxl-turbo --local-dir DIR``;
- ``ip_adapter_dir``: a root folder holding ``sdxl_models/ip-adapter_sdxl_vit-h.safetensors``
  (``hf download h94/IP-Adapter sdxl_models/ip-adapter_sdxl_vit-h.safetensors --local-dir DIR``);
- or, when a folder is not given, the local Hugging Face cache (``HF_HOME`` / ``cache_dir``).

A missing folder or file raises ``WeightsNotFoundError`` saying what to download and where to put it.

``build_tiny_pipeline`` writes a tiny SDXL pipeline and IP-Adapter with random weights, built from configs, in
the same folder layout, so tests and the demo load it through exactly the code path real weights take. Those
folders carry a marker file ``EEGDECODE_RANDOM_WEIGHTS``; a generator that loads them sets ``random_weights`` and
logs a warning, and everything it writes must say so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from eegdecode.errors import DataFormatError, WeightsNotFoundError

log = logging.getLogger(__name__)

SDXL_REPO = "stabilityai/sdxl-turbo"
IP_ADAPTER_REPO = "h94/IP-Adapter"
IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHT = "ip-adapter_sdxl_vit-h.safetensors"
RANDOM_WEIGHTS_MARKER = "EEGDECODE_RANDOM_WEIGHTS"
SDXL_SUBFOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")

_SDXL_HINT = (
    f"SDXL-Turbo weights are needed in diffusers layout (model_index.json, {', '.join(SDXL_SUBFOLDERS)}). "
    f"Nothing is downloaded at run time: on a machine with network run "
    f"`eegdecode download --what weights-sdxl-turbo --data-root DATA` and pass DATA/weights/sdxl-turbo (--sdxl), "
    f"or `hf download {SDXL_REPO} --local-dir <folder>` and pass that folder, "
    f"or fill the local Hugging Face cache (HF_HOME) with the repo {SDXL_REPO}"
)
_IP_HINT = (
    f"The IP-Adapter file {IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT} is needed under the IP-Adapter root. "
    f"On a machine with network run `eegdecode download --what weights-ip-adapter --data-root DATA` and pass "
    f"DATA/weights/ip-adapter (--ip-adapter), or `hf download {IP_ADAPTER_REPO} "
    f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT} --local-dir <root>` and pass <root>, "
    f"or fill the local Hugging Face cache (HF_HOME) with that file of {IP_ADAPTER_REPO}"
)


@dataclass(frozen=True)
class SDXLWeights:
    """Where the weights are: the SDXL folder, the IP-Adapter root, and whether they are the random tiny ones."""

    sdxl: Path
    ip_adapter: Path
    random_weights: bool

    @property
    def ip_adapter_file(self) -> Path:
        return self.ip_adapter / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT


def resolve_weights(
    sdxl_dir: str | Path | None = None,
    ip_adapter_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> SDXLWeights:
    """Find the SDXL-Turbo folder and the IP-Adapter root on disk.

    Parameters
    ----------
    sdxl_dir : folder in diffusers layout, or None to look in the local Hugging Face cache.
    ip_adapter_dir : folder holding ``sdxl_models/ip-adapter_sdxl_vit-h.safetensors``, or None (cache).
    cache_dir : Hugging Face cache folder; None means the default (``HF_HOME``).

    Raises
    ------
    WeightsNotFoundError
        Naming the missing folder or file, what to download and where to put it.
    """
    if sdxl_dir is None:
        sdxl = _cached_snapshot(SDXL_REPO, cache_dir)
    else:
        sdxl = Path(sdxl_dir)
    missing = [p for p in [sdxl / "model_index.json", *(sdxl / s for s in SDXL_SUBFOLDERS)] if not p.exists()]
    if missing:
        raise WeightsNotFoundError(missing[0], _SDXL_HINT)

    if ip_adapter_dir is None:
        ip_root = _cached_ip_adapter_root(cache_dir)
    else:
        ip_root = Path(ip_adapter_dir)
    ip_file = ip_root / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT
    if not ip_file.is_file():
        raise WeightsNotFoundError(ip_file, _IP_HINT)
    random_weights = (sdxl / RANDOM_WEIGHTS_MARKER).exists() or (ip_root / RANDOM_WEIGHTS_MARKER).exists()
    return SDXLWeights(sdxl=sdxl, ip_adapter=ip_root, random_weights=random_weights)


def _cached_snapshot(repo_id: str, cache_dir) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except Exception as err:  # huggingface_hub raises several kinds when nothing is cached
        raise WeightsNotFoundError(f"Hugging Face cache entry {repo_id}", _SDXL_HINT) from err


def _cached_ip_adapter_root(cache_dir) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            IP_ADAPTER_REPO,
            f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}",
            cache_dir=cache_dir,
            local_files_only=True,
        )
    except Exception as err:
        raise WeightsNotFoundError(f"Hugging Face cache entry {IP_ADAPTER_REPO}", _IP_HINT) from err
    return Path(path).parent.parent


def _variant(folder: Path, dtype: torch.dtype) -> str | None:
    """Use sdxl-turbo's ``fp16`` files when loading in fp16 or when they are the only ones there."""
    unet = folder / "unet"
    has_full = any(unet.glob("diffusion_pytorch_model.safetensors")) or any(
        unet.glob("diffusion_pytorch_model.bin")
    )
    has_fp16 = any(unet.glob("diffusion_pytorch_model.fp16.*"))
    return "fp16" if has_fp16 and (dtype == torch.float16 or not has_full) else None


def load_pipeline(
    weights: SDXLWeights, device: str | torch.device, dtype: torch.dtype, ip_scale: float = 1.0
):
    """Load ``StableDiffusionXLPipeline`` plus the IP-Adapter from local folders (``local_files_only=True``)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(
        weights.sdxl,
        dtype=dtype,
        variant=_variant(weights.sdxl, dtype),
        use_safetensors=True,
        local_files_only=True,
        add_watermarker=False,
    )
    pipe.load_ip_adapter(
        str(weights.ip_adapter),
        subfolder=IP_ADAPTER_SUBFOLDER,
        weight_name=IP_ADAPTER_WEIGHT,
        image_encoder_folder=None,  # embeddings are passed in; h94 has no image_encoder under sdxl_models/
        local_files_only=True,
    )
    pipe.set_ip_adapter_scale(ip_scale)
    _use_embeds_per_image(pipe)
    if dtype == torch.float16:
        # The SDXL VAE overflows in fp16: let the pipeline decode in fp32.
        pipe.vae.register_to_config(force_upcast=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _use_embeds_per_image(pipe) -> None:
    """Make ``ip_adapter_image_embeds`` mean one embedding per image of the batch.

    The stock SDXL pipelines (diffusers 0.42) treat ``ip_adapter_image_embeds`` as one embedding shared by the
    whole batch: ``prepare_ip_adapter_image_embeds`` repeats the (B, 1, D) tensor B times, and the attention
    processors then fold the B*B rows into B samples, so every image of a batch is conditioned on all B
    embeddings at once (with equal seeds the B images come out identical). We pass embeddings that are already
    per image (with the negatives first when guidance > 1), so this helper must hand them through unchanged.
    """

    def per_image(ip_adapter_image, ip_adapter_image_embeds, device, num_images_per_prompt, do_cfg):
        if ip_adapter_image_embeds is None:
            raise ValueError(
                "this pipeline takes ip_adapter_image_embeds (precomputed embeddings), not images"
            )
        return [e.to(device) for e in ip_adapter_image_embeds]

    pipe.prepare_ip_adapter_image_embeds = per_image


class Generator:
    """Images from CLIP image embeddings with SDXL-Turbo + IP-Adapter.

    Parameters
    ----------
    sdxl_dir, ip_adapter_dir, cache_dir
        Where the weights are (see ``resolve_weights``).
    device : default CUDA when available.
    dtype : default fp16 on CUDA, fp32 otherwise.
    ip_scale : IP-Adapter scale (1 as in ATM).
    num_inference_steps, guidance_scale : sdxl-turbo settings (4 steps, guidance 0).
    embed_norm : float, optional
        Rescale every embedding to this L2 norm before it enters IP-Adapter (see the module description).
    batch_size : images per pipeline call.
    progress : tqdm bar over batches.

    Attributes
    ----------
    random_weights : bool
        True when the weights came from ``build_tiny_pipeline``: images are random-weight output.
    """

    def __init__(
        self,
        sdxl_dir: str | Path | None = None,
        ip_adapter_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        ip_scale: float = 1.0,
        num_inference_steps: int = 4,
        guidance_scale: float = 0.0,
        embed_norm: float | None = None,
        batch_size: int = 8,
        progress: bool = False,
    ):
        self.weights = resolve_weights(sdxl_dir, ip_adapter_dir, cache_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        if embed_norm is not None and not embed_norm > 0:
            raise ValueError(f"embed_norm must be positive or None; found {embed_norm}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; found {batch_size}")
        self.ip_scale = ip_scale
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.embed_norm = embed_norm
        self.batch_size = batch_size
        self.progress = progress
        self.pipe = load_pipeline(self.weights, self.device, self.dtype, ip_scale)
        self._img2img = None
        if self.random_weights:
            log.warning(
                "SDXL/IP-Adapter weights in %s are random (built by build_tiny_pipeline): images are random-weight "
                "output, not reconstructions",
                self.weights.sdxl,
            )

    @property
    def random_weights(self) -> bool:
        return self.weights.random_weights

    @property
    def embed_dim(self) -> int:
        """Width of the image embedding the loaded IP-Adapter takes (1024 for ViT-H)."""
        return self.pipe.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features

    def settings(self) -> dict:
        """The settings that decide the images, for manifests and provenance."""
        return {
            "sdxl": str(self.weights.sdxl),
            "ip_adapter": str(self.weights.ip_adapter_file),
            "random_weights": self.random_weights,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "ip_scale": self.ip_scale,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "embed_norm": self.embed_norm,
            "prompt": "",
        }

    def prepare_embeds(self, embeds) -> torch.Tensor:
        """Check (N, embed_dim) and finite; rescale rows to ``embed_norm`` when it is set. Returns float32 CPU."""
        x = torch.as_tensor(np.asarray(embeds) if not isinstance(embeds, torch.Tensor) else embeds)
        x = x.detach().float().cpu()
        if x.ndim != 2 or x.shape[1] != self.embed_dim:
            raise DataFormatError(
                None, "embeds has the wrong shape", f"(n, {self.embed_dim})", tuple(x.shape)
            )
        if not torch.isfinite(x).all():
            raise DataFormatError(None, "embeds contains NaN or Inf values")
        if self.embed_norm is not None:
            x = torch.nn.functional.normalize(x, dim=1) * self.embed_norm
        return x

    def generate(
        self,
        embeds,
        seeds: Sequence[int],
        height: int = 512,
        width: int = 512,
        init_latents: torch.Tensor | None = None,
        strength: float = 0.5,
    ) -> list[Image.Image]:
        """One image per embedding.

        Parameters
        ----------
        embeds : (N, 1024) CLIP ViT-H image embeddings (array or Tensor).
        seeds : N integers; image i depends only on embeds[i], seeds[i] and the settings.
        height, width : multiples of 8 (the VAE factor).
        init_latents : (N, 4, height/8, width/8), optional
            Unscaled SDXL-VAE latents (as ``eegdecode.generation.lowlevel`` stores them): run img2img from them
            at ``strength`` instead of text-to-image from noise.
        strength : img2img strength in (0, 1]; at least one denoising step must remain.

        Returns
        -------
        list of PIL RGB images, in the order of ``embeds``.
        """
        x = self.prepare_embeds(embeds)
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(x):
            raise ValueError(
                f"seeds must have one entry per embedding: {len(x)} embeddings, {len(seeds)} seeds"
            )
        if height % 8 or width % 8 or height < 8 or width < 8:
            raise ValueError(f"height and width must be positive multiples of 8; found {height} x {width}")
        if init_latents is not None:
            init_latents = self._check_latents(init_latents, len(x), height, width, strength)
        images: list[Image.Image] = []
        starts = range(0, len(x), self.batch_size)
        for start in tqdm(starts, desc="images", unit="batch", disable=not self.progress):
            sl = slice(start, start + self.batch_size)
            chunk = None if init_latents is None else init_latents[sl]
            images.extend(self._run(x[sl], seeds[sl], height, width, chunk, strength))
        return images

    def _check_latents(self, latents, n, height, width, strength) -> torch.Tensor:
        latents = torch.as_tensor(latents).float()
        expected = (n, 4, height // 8, width // 8)
        if tuple(latents.shape) != expected:
            raise DataFormatError(None, "init_latents has the wrong shape", expected, tuple(latents.shape))
        if not 0 < strength <= 1 or int(self.num_inference_steps * strength) < 1:
            raise ValueError(
                f"strength must be in (0, 1] and leave at least one of the {self.num_inference_steps} steps; "
                f"found {strength}"
            )
        return latents

    def _run(self, embeds, seeds, height, width, init_latents, strength) -> list[Image.Image]:
        # CPU generators: the same seed gives the same starting noise on any device.
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        h = embeds.to(self.device, self.dtype)[:, None, :]
        if self.guidance_scale > 1:
            # The pipeline chunks (negative, positive); ATM's negative is the zero embedding.
            h = torch.cat([torch.zeros_like(h), h])
        common = dict(
            prompt=[""] * len(embeds),
            ip_adapter_image_embeds=[h],
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            height=height,
            width=width,
            generator=generators,
        )
        with torch.inference_mode():
            if init_latents is None:
                return self.pipe(**common).images
            scaled = latents_to_model_space(init_latents, self.pipe.vae.config).to(self.device, self.dtype)
            return self.img2img_pipeline()(image=scaled, strength=strength, **common).images

    def img2img_pipeline(self):
        """``StableDiffusionXLImg2ImgPipeline`` sharing this generator's modules (IP-Adapter included)."""
        if self._img2img is None:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            # add_watermarker=False: diffusers would watermark every output when invisible-watermark is installed.
            self._img2img = StableDiffusionXLImg2ImgPipeline(**self.pipe.components, add_watermarker=False)
            self._img2img.set_progress_bar_config(disable=True)
            _use_embeds_per_image(self._img2img)
        return self._img2img


def latents_to_model_space(latents: torch.Tensor, vae_config) -> torch.Tensor:
    """Unscaled VAE latents -> the scaled space the UNet and scheduler work in (as the img2img pipeline does)."""
    mean = getattr(vae_config, "latents_mean", None)
    std = getattr(vae_config, "latents_std", None)
    if mean is not None and std is not None:
        shape = (1, -1, 1, 1)
        return (
            (latents - torch.tensor(mean).view(shape))
            * vae_config.scaling_factor
            / torch.tensor(std).view(shape)
        )
    return latents * vae_config.scaling_factor


def build_tiny_pipeline(folder: str | Path, seed: int = 0, embed_dim: int = 1024) -> SDXLWeights:
    """Write a tiny random SDXL pipeline and IP-Adapter in the real folder layout.

    ``<folder>/sdxl`` is a diffusers pipeline folder (model_index.json, unet, vae, text encoders, tokenizers,
    sdxl-turbo's scheduler config); ``<folder>/ip_adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors`` holds
    a random IP-Adapter in h94's key layout taking ``embed_dim``-d embeddings. Both carry the random-weights
    marker. About 5 MB; any image size that is a multiple of 8 works (64 px is fast on a CPU).

    Returns
    -------
    SDXLWeights pointing at the two folders (``random_weights`` True).
    """
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    sdxl_dir, ip_root = folder / "sdxl", folder / "ip_adapter"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_cfg = dict(
            bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
            num_attention_heads=4, num_hidden_layers=2, vocab_size=1000, projection_dim=32, max_position_embeddings=77,
        )  # fmt: skip
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_cfg))
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
            # 6 SDXL time ids x 8 + the pooled text embedding (text_encoder_2's projection_dim)
            projection_class_embeddings_input_dim=8 * 6 + 32,
            cross_attention_dim=64,  # hidden sizes of both text encoders, concatenated
            norm_num_groups=8,
        )  # fmt: skip
        # Four blocks give the VAE factor 8 of SDXL; SDXL's scaling factor, not AutoencoderKL's default.
        vae = AutoencoderKL(
            block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=4, scaling_factor=0.13025,
            force_upcast=True,
        )  # fmt: skip
        # sdxl-turbo's scheduler_config.json
        scheduler = EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing",
            steps_offset=1,
        )  # fmt: skip
        pipe = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=CLIPTokenizer(model_max_length=77),
            tokenizer_2=CLIPTokenizer(model_max_length=77),
            unet=unet,
            scheduler=scheduler,
            image_encoder=None,
            feature_extractor=None,
        )
        ip_state = _random_ip_adapter(unet, embed_dim)
    pipe.save_pretrained(sdxl_dir, safe_serialization=True)
    ip_file = ip_root / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT
    ip_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(ip_state, str(ip_file))
    note = "Random weights built by eegdecode.generation.sdxl.build_tiny_pipeline: images are not reconstructions.\n"
    for root in (sdxl_dir, ip_root):
        (root / RANDOM_WEIGHTS_MARKER).write_text(note)
    return SDXLWeights(sdxl=sdxl_dir, ip_adapter=ip_root, random_weights=True)


def _random_ip_adapter(unet, embed_dim: int) -> dict[str, torch.Tensor]:
    """A random IP-Adapter in h94's flat key layout: image_proj.{proj,norm}.* and ip_adapter.{1,3,5,..}.to_{k,v}_ip."""
    cross = unet.config.cross_attention_dim
    widths = unet.config.block_out_channels
    state = {
        "image_proj.proj.weight": torch.randn(4 * cross, embed_dim) * 0.1,
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1
    for name in unet.attn_processors:  # diffusers numbers cross-attention layers 1, 3, 5, ... in this order
        if name.endswith("attn1.processor"):
            continue
        parts = name.split(".")
        if parts[0] == "mid_block":
            hidden = widths[-1]
        elif parts[0] == "up_blocks":
            hidden = list(reversed(widths))[int(parts[1])]
        else:
            hidden = widths[int(parts[1])]
        state[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.1
        state[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.5
        key += 2
    return state
