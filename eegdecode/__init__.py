"""eegdecode: decode seen images from EEG/MEG (THINGS-EEG2, THINGS-MEG).

Layers, imported one way only: data -> embeddings -> models -> training -> evaluation -> generation -> metrics.
"""

__version__ = "0.1.0"
