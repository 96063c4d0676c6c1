"""Generation step 1 for NervformerV2: EEG embeddings of a trained run (same as `eegdecode extract --model NervformerV2`).

Thin alias kept under the original script name. Example:
python Generation/NervformerV2_insubject_retrival_All_extracted_feature_step1.py --subject 1 --runs runs
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout works without installing

from eegdecode.cli import run_alias  # noqa: E402

raise SystemExit(run_alias("extract", "--model", "NervformerV2"))
