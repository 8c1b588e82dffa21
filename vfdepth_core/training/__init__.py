"""Pieces that ``training/train.py`` and ``training/eval.py`` compose, one job per module:

- :mod:`.distributed` - process group, device choice, moving batches to the device
- :mod:`.sampling`    - resumable data order and per-sample seeded augmentation
- :mod:`.optim`       - the optimizer step: fused Adam, autocast, non-finite guard
- :mod:`.ema`         - the weight average
- :mod:`.checks`      - refusing a run early: dataset kind, empty splits, checkpoint compatibility
- :mod:`.evaluate`    - the depth evaluation loop (validation and eval.py), per-pixel prior
- :mod:`.files`       - run-folder files: atomic JSON/PNG, JSON lines, checkpoint retention
- :mod:`.loaders`     - the training loader and the validation loaders of a run
- :mod:`.progress`    - the progress bar and the samples/s average
- :mod:`.run_checkpoints` - which checkpoint to resume, what it restores, latest/epoch files
- :mod:`.summaries`   - TensorBoard images, step digests of DEBUG lines
- :mod:`.validation`  - validation during training (depth, ego motion) and its logs

Nothing here builds a model or a loss.
"""
