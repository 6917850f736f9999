"""What the losses with a layer of their own (``loss.head``) share.

A loss may own a Keras layer: the class weights or proxies of the classification losses
(:class:`oneshot.losses.ClassProxies`), the queue of :class:`oneshot.losses.CrossBatchMemory`.
:func:`oneshot.models.build_online` attaches it to the training model, so ``fit`` trains it
when it is trainable and the run checkpoint (``model.save_weights``) holds it. The layer is
built for the embedding size (:class:`LossHead`) and the loss belongs to one model
(:func:`claim`).
"""

from __future__ import annotations

import weakref

import keras


class LossHead(keras.layers.Layer):
    """Base of a loss's layer: its ``embedding_dim`` is given or taken from the first input,
    and a checkpoint restores it even before it is built."""

    embedding_dim: int | None = None

    def embedding_size(self, input_shape) -> int:
        """The embedding size D of ``input_shape``, checked against ``embedding_dim`` (then
        set to it)."""
        dim = input_shape[-1]
        if dim is None or (self.embedding_dim is not None and dim != self.embedding_dim):
            raise ValueError(
                f"Invalid embedding size for {self.name}. Expected embeddings of size "
                f"{self.embedding_dim or 'known'}. Received input shape {tuple(input_shape)}."
            )
        self.embedding_dim = int(dim)
        return self.embedding_dim

    def load_own_variables(self, store) -> None:
        """Build from the stored variables' shape first if needed (a loss that was computed
        before saving, reloaded with a compiled model, holds an unbuilt layer)."""
        if not self.built and "0" in store:
            self.build((None, store["0"].shape[-1]))
        super().load_own_variables(store)


def claim(loss: keras.losses.Loss, model: keras.Model, role: str) -> None:
    """Record that ``model`` holds ``loss``'s head (a weak reference, ``loss._owner``); a
    second model is refused with an error saying what the loss does for the first
    (``role``, e.g. "trains the class weights")."""
    owner_ref = getattr(loss, "_owner", None)
    owner = owner_ref() if owner_ref is not None else None
    if owner is not None and owner is not model:
        raise ValueError(
            f"Invalid value for argument `loss`: this {type(loss).__name__} already {role} of "
            f"model {owner.name!r}. A loss belongs to one model: pass a fresh copy, "
            "keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))."
        )
    loss._owner = weakref.ref(model)
