"""Channel names, the THINGS-EEG2 channel order, and channel subsets.

The 250 Hz release keeps all 63 EEG channels in a fixed order (Fz is missing: it was the recording reference).
Gifford's 100 Hz release keeps the 17 occipito-parietal channels. Regions follow the original topography loader
(``eegdatasets_leaveone_topo.py``) and cover the 63 channels exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

from eegdecode.errors import ConfigError

THINGS_EEG2_CHANNELS: tuple[str, ...] = tuple(
    "Fp1 Fp2 AF7 AF3 AFz AF4 AF8 F7 F5 F3 F1 F2 F4 F6 F8 FT9 FT7 FC5 FC3 FC1 FCz FC2 FC4 FC6 FT8 FT10 "
    "T7 C5 C3 C1 Cz C2 C4 C6 T8 TP9 TP7 CP5 CP3 CP1 CPz CP2 CP4 CP6 TP8 TP10 P7 P5 P3 P1 Pz P2 P4 P6 P8 "
    "PO7 PO3 POz PO4 PO8 O1 Oz O2".split()
)
"""The 63 channels of the 250 Hz THINGS-EEG2 release, in file order."""

POSTERIOR_17: tuple[str, ...] = tuple("P7 P5 P3 P1 Pz P2 P4 P6 P8 PO7 PO3 POz PO4 PO8 O1 Oz O2".split())
"""Gifford's occipito-parietal selection (regexp ``^O|^P``), the channels of the official 100 Hz release."""

REGIONS: dict[str, tuple[str, ...]] = {
    "frontal": tuple("Fp1 Fp2 AF7 AF3 AFz AF4 AF8 F7 F5 F3 F1 F2 F4 F6 F8".split()),
    "central": tuple("FC5 FC3 FC1 FCz FC2 FC4 FC6 C5 C3 C1 Cz C2 C4 C6".split()),
    "parietal": tuple("CP5 CP3 CP1 CPz CP2 CP4 CP6 P7 P5 P3 P1 Pz P2 P4 P6 P8".split()),
    "temporal": tuple("FT9 FT7 T7 TP9 TP7 TP8 TP10 T8 FT8 FT10".split()),
    "occipital": tuple("PO7 PO3 POz PO4 PO8 O1 Oz O2".split()),
}

NAMED_SUBSETS = ("all", "posterior17", *REGIONS)


def resolve_channels(spec: str | Sequence[str] | None, available: Sequence[str]) -> list[int]:
    """Indices into ``available`` for a channel selection.

    Parameters
    ----------
    spec
        ``None`` or ``"all"``; ``"posterior17"`` (alias ``"occipitoparietal"``); a region name or several joined by
        ``+`` or ``,`` (``"parietal+occipital"``); or an explicit list of channel names (a list, or one string
        of names separated by commas). Names are matched case-insensitively; the result keeps ``available`` order
        for named subsets and the given order for explicit lists.
    available
        Channel names of the data, in file order.
    """
    available = list(available)
    lower = {c.lower(): i for i, c in enumerate(available)}
    if spec is None or (isinstance(spec, str) and spec.lower() == "all"):
        return list(range(len(available)))
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("posterior17", "occipitoparietal"):
            names = list(POSTERIOR_17)
            ordered_by_file = True
        else:
            parts = [p.strip() for p in spec.replace("+", ",").split(",") if p.strip()]
            if parts and all(p.lower() in REGIONS for p in parts):
                names = [c for p in parts for c in REGIONS[p.lower()]]
                ordered_by_file = True
            else:
                names = parts
                ordered_by_file = False
    else:
        names = list(spec)
        ordered_by_file = False
    unknown = [n for n in names if n.lower() not in lower]
    if unknown:
        raise ConfigError(
            f"Invalid channel selection {spec!r}: channels {unknown} are not in the data "
            f"(available: {available}; named subsets: {list(NAMED_SUBSETS)})"
        )
    idx = [lower[n.lower()] for n in names]
    if len(set(idx)) != len(idx):
        raise ConfigError(f"Invalid channel selection {spec!r}: a channel is listed twice")
    return sorted(idx) if ordered_by_file else idx
