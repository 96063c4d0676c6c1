"""THINGS-EEG2 raw -> preprocessed release + cache (same as `eegdecode preprocess eeg`).

Thin alias kept under the original script name; the logic lives in `eegdecode.preprocessing.eeg`.
Example: python EEG-preprocessing/preprocessing.py --raw-root data/things-eeg2-raw --data-root data --subject 1
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("preprocess", argv=["eeg", *sys.argv[1:]]))
