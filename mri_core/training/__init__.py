"""The training layer of mri_core (DESIGN.md, "Shape").

A run: `data` (discover, validate, group near-duplicates, split) -> `prepared` (every image as a
reading prepares it) -> `batches` (shuffled, augmented by `augment`) -> `loop` (our strategy.run
step, minimising `losses`; it emits `events`, and `callbacks` keep history, best weights and
checkpoints, pass on progress and cancel) -> `calibrate` -> `model_info` -> a package, with
`ood_fit`'s statistics. `train` assembles it; `recipes` holds what differs per architecture
(`networks` are the CNNs) and the run's settings; `distribute` the strategy; `jobs` runs it in
the background; `evaluate` and `audit` measure packages; `uploads` takes training zips.
"""
