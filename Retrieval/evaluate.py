"""Evaluate a trained run on the test set (same as `eegdecode evaluate RUN`).

Thin alias kept under the original script name; the logic lives in the `eegdecode` package.
Example: python Retrieval/evaluate.py --data-root data/things-eeg2
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("evaluate"))
