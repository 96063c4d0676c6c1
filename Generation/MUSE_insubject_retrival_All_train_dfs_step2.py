"""Generation step 2 for MUSE_EEG: diffusion prior + SDXL-Turbo/IP-Adapter (same as `eegdecode generate --model MUSE_EEG`).

Thin alias kept under the original script name. Example:
python Generation/MUSE_insubject_retrival_All_train_dfs_step2.py --subject 1 --runs runs --sdxl weights/sdxl-turbo --ip-adapter weights/ip-adapter
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("generate", "--model", "MUSE_EEG"))
