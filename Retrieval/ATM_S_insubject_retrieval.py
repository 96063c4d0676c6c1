"""Train ATMS_50 (ATM-S) and evaluate zero-shot retrieval (same as `eegdecode train --model ATMS_50`).

Thin alias kept under the original script name; the logic lives in the `eegdecode` package.
Example: python Retrieval/ATM_S_insubject_retrieval.py --subject 1 --data-root data/things-eeg2 --epochs 40
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("train", "--model", "ATMS_50"))
