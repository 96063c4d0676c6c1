"""Sweeps: a grid of training runs (models x protocols x subjects x seeds x any option), run to completion.

- :mod:`eegdecode.sweep.spec`: the grid file, its expansion into picklable :class:`RunSpec` objects (one per run
  folder, the usual ``<out>/<model>/<protocol>/<fold>/seed<seed>`` layout) and each run's state read from its
  folder (``results.json`` = done).
- :mod:`eegdecode.sweep.run`: :func:`run_one`, the one top-level function every executor maps over the specs.
- :mod:`eegdecode.sweep.executors`: a local process pool (one job per visible GPU, else N CPU workers) and SLURM
  (or submitit's local/debug executors) through ``submitit``, with job arrays and requeue after preemption.

Nothing here imports torch at module level, so a spawned worker starts light.
"""
