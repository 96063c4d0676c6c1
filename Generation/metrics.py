"""Reconstruction metrics (alias of ``eegdecode metrics``; same flags, same code).

Example: ``python Generation/metrics.py --manifest gen/NervformerV2/sub-01/manifest.json``
"""

import argparse
import logging
import sys

from eegdecode.commands import metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="Generation/metrics.py", description=metrics.DESCRIPTION)
    metrics.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return metrics.run(args)


if __name__ == "__main__":
    sys.exit(main())
