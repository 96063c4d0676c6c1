"""Mean ± sd tables over runs (same as `eegdecode summarize RUNS`).

Thin alias kept under the original script name; the logic lives in the `eegdecode` package.
Example: python Retrieval/summarize.py --data-root data/things-eeg2
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("summarize"))
