"""Target stores

Target stores: list what the simulated vision model wrote, read one layer, and see which layers the EEG carries.

`eegdecode simulate` writes, next to the EEG, a target store (`targets/simulator_vision-*`) holding every layer of
its simulated vision model (12 blocks and the final embedding) for the training and test images. The store is
read with `eegdecode.targets`, the same API that serves real backbones' features. Because the simulator knows how
the brain and the vision model were built, `simulation.json` also records how much of each layer a linear read-out
of noise-free EEG recovers: the known answer that target recipes (layer choice, blur) are tested against.
Only the unblurred variant is written here, to keep the example fast.
"""

import shutil
import tempfile
from collections import Counter
from pathlib import Path

from eegdecode.data.simulate import simulate_dataset
from eegdecode.targets.spec import TargetSpec
from eegdecode.targets.store import TargetStore

work = Path(tempfile.mkdtemp(prefix="eegdecode_example_"))
root = work / "data"
desc = simulate_dataset(root, "tiny", seed=0, dtype="float32", progress=False, vision_variants=("none",))

store = TargetStore.for_spec(root / "targets", TargetSpec("simulator:vision"))
arrays = store.arrays()
print(f"store {store.folder.relative_to(root)}: {len(arrays)} arrays")
print("arrays per split:", dict(Counter(entry["split"] for key, entry in arrays.items())))
for key in sorted(arrays)[:4]:
    print(" ", key, "->", arrays[key]["file"])

features = store.feature_set("train", "block:6", "cls", "none")
print(f"\nblock:6 (cls), training images: image features {features.image.shape}, text {features.text.shape}")

truth = desc["vision"]["ground_truth"]
print("\nshare of each layer's variance recovered from noise-free EEG (layer_from_eeg_r2):")
for layer, r2 in truth["layer_from_eeg_r2"].items():
    print(f"  {layer:<10} {r2:.3f} " + "#" * round(40 * r2))
print("layers the EEG carries most:", ", ".join(truth["carried_most"]))

shutil.rmtree(work)
