"""``eegdecode download``: the only part of the package that touches the network.

``assets`` is the table of what can be fetched (THINGS-EEG2 image set, the 250 Hz / 100 Hz / raw EEG releases,
THINGS-MEG) with each host's URL scheme; ``sources`` lists files in each host's API shape; ``http`` fetches one
file resumably with size and checksum checks; ``fetch`` skips complete files, checks the disk, unpacks archives and
keeps ``manifest`` up to date.
"""

from eegdecode.download.assets import ASSETS, Endpoints, Item, plan
from eegdecode.download.fetch import fetch_items, status_of
from eegdecode.download.http import DownloadError, DownloadOptionError

__all__ = [
    "ASSETS",
    "DownloadError",
    "DownloadOptionError",
    "Endpoints",
    "Item",
    "fetch_items",
    "plan",
    "status_of",
]
