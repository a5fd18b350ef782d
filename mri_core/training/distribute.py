"""Which `tf.distribute` strategy a run uses, and which worker saves the result.

Mirrored across local devices, multi-worker across hosts via the standard TF_CONFIG
(DESIGN.md, "Where it goes past one machine"). Every worker ends with the same weights, so
only the chief saves a package.
"""

from __future__ import annotations


def make_strategy(name: str):
    """`auto` (the default strategy), `mirrored` or `multiworker`; create it before any other TensorFlow op."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # reads the standard TF_CONFIG
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)
