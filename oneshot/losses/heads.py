"""What the losses with a layer of their own (``loss.head``) share, and how a model trains it.

A loss may own a Keras layer: the class weights or proxies of the classification losses
(:class:`oneshot.losses.ClassProxies`), the queue of :class:`oneshot.losses.CrossBatchMemory`.
Keras does not train a loss's weights (a compiled loss is not part of the model), so the
layer must be in the model: :func:`attach` (which :func:`oneshot.models.build_online` calls)
makes the training model a :class:`LossHeadModel` holding it as ``model.loss_head``, so
``model.trainable_weights`` and the run checkpoint (``model.save_weights``) hold it. Its
``compute_loss`` tells the loss whether it is training: the SphereFace step and the XBM queue
advance in ``fit``'s steps only, never in ``evaluate`` (``predict`` computes no loss).

Any other Keras model that computes such a loss (``keras.Model(...).compile(loss=ArcFaceLoss(
...))`` then ``fit`` or ``evaluate``) is refused with an error naming :func:`attach`: it would
train without the class weights and say nothing. Called directly, outside any model (as the
tests do), a loss computes its value with its head as it is (built on first eager use), and
each call counts as a training step.

The layer is built for the embedding size (:class:`LossHead`) and the loss belongs to one
model (:func:`claim`).
"""

from __future__ import annotations

import contextvars
import inspect
import weakref

import keras

from oneshot.pieces import register

#: the attribute of a training model that holds its loss's layer (see :func:`attach`)
LOSS_HEAD = "loss_head"

# (model, training) while a LossHeadModel computes its loss (each replica thread has its own)
_COMPUTING: contextvars.ContextVar[tuple[keras.Model, bool] | None] = contextvars.ContextVar(
    "oneshot_loss_head_model", default=None
)


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


def loss_head(loss: keras.losses.Loss | None) -> keras.layers.Layer | None:
    """The layer a loss owns (its class weights, proxies or queue), ``loss.head``; None for
    losses without one. Any loss exposing a Keras layer as ``head`` is attached this way."""
    head = getattr(loss, "head", None)
    return head if isinstance(head, keras.layers.Layer) else None


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


@register
class LossHeadModel(keras.Model):
    """A functional model that holds its loss's layer (``model.loss_head``) and tells the
    loss whether it computes it for training.

    Compiling it with a loss that owns a head (``loss.head``) attaches the head (built for
    the output size): ``fit`` trains it and ``save_weights`` holds it. ``compute_loss`` runs
    the loss knowing ``training`` (False in ``evaluate``), so the loss changes its state
    (SphereFace's step, the XBM queue) in training steps only. Make one with :func:`attach`
    or :func:`oneshot.models.build_online`; it saves and loads as a Keras model (registered),
    its head reattached when the loaded model is compiled with its loss.
    """

    def compile(self, *args, **kwargs) -> None:
        """``keras.Model.compile``, then the loss's head is attached (see :func:`attach`)."""
        super().compile(*args, **kwargs)
        if loss_head(self.loss) is not None:
            attach(self, self.loss)

    def compile_from_config(self, config: dict) -> None:
        """Keras's own (compile, then build the optimizer), with this class's ``compile``."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras's ``compute_loss``, the loss told whether it is ``training``."""
        token = _COMPUTING.set((self, bool(training)))
        try:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        finally:
            _COMPUTING.reset(token)


def _structure(model: keras.Model) -> tuple:
    """A functional model's inputs and outputs in the structure it was built with (a
    Sequential's: single tensors), or (None, None) for a model without them (subclassed)."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return None, None
    if not inputs or not outputs:
        return None, None
    if hasattr(model, "_inputs_struct"):  # Functional
        return model._inputs_struct, model._outputs_struct
    return (inputs[0] if len(inputs) == 1 else inputs), (
        outputs[0] if len(outputs) == 1 else outputs
    )


def attach(model: keras.Model, loss: keras.losses.Loss) -> keras.Model:
    """The model that trains ``loss``'s head: a :class:`LossHeadModel` over ``model``'s
    inputs and outputs (``model`` itself if it is one), the head built for the output size
    and held as ``model.loss_head``. Compile it with ``loss``. The loss then belongs to it, and
    the model holds no other loss's head (both are refused).

    Example:
    >>> loss = ArcFaceLoss(num_classes=10)
    >>> model = attach(keras.Model(images, embeddings), loss)  # doctest: +SKIP
    >>> model.compile(optimizer="adam", loss=loss)  # doctest: +SKIP
    >>> model.fit(images_and_labels)  # doctest: +SKIP
    """
    head = loss_head(loss)
    if head is None:
        raise ValueError(
            f"Invalid value for argument `loss`: {type(loss).__name__} has no layer of its "
            "own (`loss.head`) to attach. Compile the model with it directly."
        )
    if not isinstance(model, LossHeadModel):
        inputs, outputs = _structure(model)
        if inputs is None or outputs is None:
            raise ValueError(
                "Invalid value for argument `model`. Expected a functional keras.Model (known "
                f"inputs and outputs). Received: {type(model).__name__} {model.name!r}."
            )
        model = LossHeadModel(inputs, outputs, name=model.name)
    held = getattr(model, LOSS_HEAD, None)
    if held is not None and held is not head:  # it would go on holding (and training) both
        raise ValueError(
            f"Invalid value for argument `loss`: model {model.name!r} holds the layer of "
            f"another loss ({held.name!r}). Attach {type(loss).__name__} to a new model over "
            "the same layers: oneshot.losses.attach(keras.Model(model.inputs, model.outputs), "
            "loss)."
        )
    if hasattr(loss, "attach"):
        loss.attach(model)  # refuses a loss that already belongs to another model
    if not head.built:
        head.build((None, model.outputs[0].shape[-1]))
    setattr(model, LOSS_HEAD, head)  # tracked: its weights join model.trainable_weights
    return model


def _keras_model_computing_loss() -> keras.Model | None:
    """The Keras model whose ``compute_loss`` is on the call stack, if any (``fit``,
    ``evaluate`` and ``train_on_batch`` of any model compute their loss there)."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "compute_loss":
            caller = frame.f_locals.get("self")
            if isinstance(caller, keras.Model):
                return caller
        frame = frame.f_back
    return None


def updates_state(loss: keras.losses.Loss) -> bool:
    """Whether this computation of ``loss`` may change its head's state: True in a training
    step of the :class:`LossHeadModel` that holds the head and in a direct call (no model),
    False in its ``evaluate``. A Keras model computing the loss without holding its head
    would train without it (or evaluate with a layer no checkpoint holds): refused."""
    computing = _COMPUTING.get()
    model, training = computing if computing is not None else (None, True)
    if model is None:
        model = _keras_model_computing_loss()
    if model is not None and getattr(model, LOSS_HEAD, None) is not loss_head(loss):
        raise ValueError(
            f"Model {model.name!r} computes {type(loss).__name__}, whose layer "
            f"`loss.head` ({type(loss.head).__name__}: class weights or a queue) is not part "
            "of the model: fit would not train it and checkpoints would not hold it. Attach "
            "it: model = oneshot.losses.attach(model, loss), then model.compile(optimizer, "
            "loss=loss); or build the model with oneshot.models.build_online(embedding, "
            "loss=loss)."
        )
    return training
