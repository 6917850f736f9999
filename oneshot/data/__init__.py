"""Data: real datasets (MNIST, Omniglot, Lake's one-shot runs) and tf.data samplers."""

from oneshot.data.preprocess import to_model_input

__all__ = ["to_model_input"]
