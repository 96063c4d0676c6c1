"""K-way retrieval

Zero-shot k-way retrieval: how the seeded evaluation scores embeddings, with chance levels.

Each query (an EEG embedding) is ranked against its own image and k - 1 distractors drawn from the other test
images; the draws are seeded, so two models evaluated with the same seed meet the same distractor sets. Here the
"EEG embeddings" are the simulator's reference image embeddings plus Gaussian noise of growing size, so the
accuracy falls from the ceiling towards chance as the noise grows.
"""

import numpy as np

from eegdecode.data.simulate import World, resolve_preset
from eegdecode.evaluation.kway import format_kway_table, kway_accuracy

_, preset = resolve_preset("tiny")
world = World(preset, seed=0)
gallery = world.image_embeddings(world.test_latent)  # one 1024-d embedding per test image
print(f"gallery: {gallery.shape[0]} test images x {gallery.shape[1]} dimensions")

rng = np.random.default_rng(0)
scale = (gallery - gallery.mean(0)).std()  # spread of the image-specific part
for noise in (4, 16, 64):
    query = gallery + noise * scale * rng.standard_normal(gallery.shape)
    result = kway_accuracy(query, gallery, ks=(2, 4, 10, 20), n_draws=200, seed=0)
    print(f"\nnoise sd = {noise} x the spread of the embeddings around their mean")
    print(format_kway_table(result))

# The same seed gives the same distractors: the score of a fixed query set does not move between calls.
again = kway_accuracy(query, gallery, ks=(2, 4, 10, 20), n_draws=200, seed=0)
assert again.to_dict() == result.to_dict()
print("\nsame seed, same scores: True")
