"""THINGS-MEG official epochs (or the raw BIDS runs) -> ATM's layout + cache (same as `eegdecode preprocess meg`).

Every flag of `eegdecode preprocess meg` works here. Examples:
    python MEG-preprocessing/preprocess_meg.py --bids-root ds004212 --data-root data_meg --participant 1 2 3 4
    python MEG-preprocessing/preprocess_meg.py --bids-root ds004212 --data-root data_meg --participant 1 --from raw
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("preprocess", argv=["meg", *sys.argv[1:]]))
