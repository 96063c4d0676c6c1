"""Peak memory of training-time data access: the original approach vs the eegdecode cache.

(a) original: ``np.load(allow_pickle=True)`` of ``preprocessed_eeg_training.npy`` then ``.astype(float32)`` (what
    the ATM/NERV loaders do), then one pass over all trials in batches;
(b) cache: open the float16 memory-mapped cache and read one epoch of batches through ``TrialDataset``.
Each runs in a fresh process. Printed: peak anonymous memory (RssAnon, sampled after every step: memory the process
materialised, the figure that decides whether a machine swaps) and peak RSS (VmHWM, which also counts memory-mapped
file pages; those are page cache the kernel can drop at any time). The target compares anonymous peaks (b)/(a).

    python bench/bench_cache_memory.py --data-root DATA [--subject 1]
    python bench/bench_cache_memory.py --simulate full --data-root /tmp/sim_full   # writes a full-scale subject first
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Both measured scripts sample the anonymous memory (RssAnon) and the peak RSS of their own process.
MEMORY_PROBE = """
import sys, time, json, numpy as np
def _mem():
    fields = dict(line.split(':', 1) for line in open('/proc/self/status'))
    return int(fields['RssAnon'].split()[0]) / 1024, int(fields['VmHWM'].split()[0]) / 1024
peak_anon = 0.0
def sample():
    global peak_anon
    peak_anon = max(peak_anon, _mem()[0])
"""

ORIGINAL = (
    MEMORY_PROBE
    + """
t = time.perf_counter()
obj = np.load(sys.argv[1], allow_pickle=True)
obj = obj.item() if isinstance(obj, np.ndarray) else obj
sample()
data = obj['preprocessed_eeg_data'].astype(np.float32)
sample()
acc = 0.0
for i in range(0, data.shape[0], 256):
    acc += float(data[i:i + 256].reshape(-1, 63, data.shape[-1])[:, :, :10].sum())
    sample()
print(json.dumps({'peak_anon_mb': peak_anon, 'peak_rss_mb': _mem()[1], 'seconds': time.perf_counter() - t}))
"""
)

CACHE = (
    MEMORY_PROBE
    + """
sys.path.insert(0, sys.argv[3])
from eegdecode.data.datasets import SubjectData, TrialDataset, make_loader, image_concepts_from_counts
from eegdecode.data.paths import DatasetPaths
t = time.perf_counter()
s = SubjectData.open(DatasetPaths(sys.argv[1]), sys.argv[2])
n = s.cache.train.shape[0]
ds = TrialDataset([s], np.arange(n), np.zeros(n, dtype=int))
acc = 0.0
for batch in make_loader(ds, 1024, shuffle=True):
    acc += float(batch['eeg'][:, :, :10].sum())
    sample()
print(json.dumps({'peak_anon_mb': peak_anon, 'peak_rss_mb': _mem()[1], 'seconds': time.perf_counter() - t, 'trials': len(ds)}))
"""
)


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--subject", default="1")
    p.add_argument(
        "--simulate", choices=("tiny", "small", "full"), help="simulate one subject at this preset first"
    )
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from eegdecode.data.cache import prepare_subject
    from eegdecode.data.paths import DatasetPaths, subject_name

    paths = DatasetPaths(Path(args.data_root))
    if args.simulate:
        from eegdecode.data.simulate import simulate_dataset

        t = time.perf_counter()
        simulate_dataset(paths.root, args.simulate, n_subjects=1, overwrite=True, write_images=False)
        print(f"simulated one {args.simulate} subject in {time.perf_counter() - t:.0f} s")
    name = subject_name(args.subject)
    t = time.perf_counter()
    prepare_subject(paths.subject_dir(name), paths.cache_dir(name))
    print(f"prepare (pickle -> float16 cache): {time.perf_counter() - t:.0f} s")
    src = paths.subject_dir(name) / "preprocessed_eeg_training.npy"
    a = _run(ORIGINAL, str(src))
    b = _run(CACHE, str(paths.root), name, str(ROOT))
    print(f"training file: {src} ({src.stat().st_size / 2**30:.2f} GiB)")
    print("| access | peak anonymous memory (MiB) | peak RSS incl. mapped file pages (MiB) | one pass (s) |")
    print("|---|---|---|---|")
    print(
        f"| (a) pickle -> float32 (original loaders) | {a['peak_anon_mb']:.0f} | {a['peak_rss_mb']:.0f} | {a['seconds']:.1f} |"
    )
    print(
        f"| (b) eegdecode cache, one epoch of batches of 1024 | {b['peak_anon_mb']:.0f} | {b['peak_rss_mb']:.0f} | {b['seconds']:.1f} |"
    )
    print(f"ratio (b)/(a), anonymous memory: {b['peak_anon_mb'] / a['peak_anon_mb']:.3f}  (target < 0.25)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
