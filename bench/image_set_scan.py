"""Time the image-set walk, the provenance digests and the metadata round trip on a full-size THINGS-EEG2 layout.

Builds 1654 x 10 training and 200 x 1 test images (one small JPEG copied into every file name) in a temporary
folder, then prints seconds per step. Usage: ``python bench/image_set_scan.py [--concepts 1654 --per-concept 10]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from eegdecode.data.image_set import ImageSet, build_image_metadata, write_image_metadata
from eegdecode.embeddings.clip_features import split_provenance


def _build(root: Path, n_train: int, per_concept: int, n_test: int) -> None:
    jpeg = root.parent / "template.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg)
    for folder, n_concepts, n_images, prefix in (
        ("training_images", n_train, per_concept, "train"),
        ("test_images", n_test, 1, "test"),
    ):
        for c in range(n_concepts):
            concept = f"{c + 1:05d}_{prefix}_concept_{c}"
            (root / folder / concept).mkdir(parents=True)
            for i in range(n_images):
                shutil.copyfile(jpeg, root / folder / concept / f"{prefix}_concept_{c}_{i:02d}.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, default=1654)
    parser.add_argument("--per-concept", type=int, default=10)
    parser.add_argument("--test-concepts", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "image_set"
        t0 = time.perf_counter()
        _build(root, args.concepts, args.per_concept, args.test_concepts)
        print(
            f"build layout ({args.concepts} x {args.per_concept} + {args.test_concepts}): {time.perf_counter() - t0:.2f} s"
        )
        t0 = time.perf_counter()
        images = ImageSet(root)
        train, test = images.split("train"), images.split("test")
        print(
            f"scan both splits + disjointness check: {time.perf_counter() - t0:.3f} s ({train.n_images} + {test.n_images} images)"
        )
        t0 = time.perf_counter()
        split_provenance(train)
        split_provenance(test)
        print(f"provenance digests (names + sizes): {time.perf_counter() - t0:.3f} s")
        t0 = time.perf_counter()
        write_image_metadata(root / "image_metadata.npy", build_image_metadata(images))
        print(f"build + write image_metadata.npy: {time.perf_counter() - t0:.3f} s")
        t0 = time.perf_counter()
        ImageSet(root).read_metadata()
        print(f"rescan + read + validate image_metadata.npy: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
