"""Targets: named, cached sets of image (and optional text) features of a vision backbone.

A :class:`~eegdecode.targets.spec.TargetSpec` names the backbone, its weights, the layers, the pooling and the image
variants (blur levels); :func:`~eegdecode.targets.compute.compute_targets` runs an
:mod:`extractor <eegdecode.targets.extractors>` over an image set and caches the result in a
:class:`~eegdecode.targets.store.TargetStore` (float16, memory-mapped, one array per layer and variant, with
provenance). :class:`~eegdecode.targets.chooser.BlurChooser` picks a blur level per training sample.
"""
