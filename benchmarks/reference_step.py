"""The plain-TensorFlow reference training step: the independent check of the project's speed.

The throughput and memory benchmarks compare ``model.fit`` of the project's model against this
step. It is written apart from ``oneshot``'s training code on purpose: the batch-hard triplet loss
below is written plainly (pairwise euclidean distances, label masks, max/min, relu) and does not
use ``oneshot.losses``, ``oneshot.miners`` or ``oneshot.distances``, so a slow or wrong loss in the
package cannot hide in both sides of the comparison. Two variants of the same step, conv4 width
64 (or ``width``), embedding 64, compiled with ``tf.function`` and ``tf.GradientTape``:

- ``keras-layers``: the conv4 layers of ``oneshot.models.networks.conv4`` (only the network is shared)
  and ``keras.optimizers.Adam``;
- ``tf.nn``: everything in raw TensorFlow: the conv4 architecture with ``tf.nn.conv2d`` /
  ``moments`` / ``max_pool2d`` on ``tf.Variable``s and a hand-written Adam.

Both take ``(images, labels)`` and return the loss.
"""

from __future__ import annotations

VARIANTS = ("keras-layers", "tf.nn")
MARGIN = 0.2


def batch_hard_loss(labels, embeddings, margin: float = MARGIN):
    """Batch-hard triplet loss, plainly: euclidean distances, label masks, max/min, relu.

    ``mean_a relu(max_{p: y_p = y_a, p != a} d(a, p) - min_{n: y_n != y_a} d(a, n) + margin)``
    """
    import tensorflow as tf

    dot = tf.matmul(embeddings, embeddings, transpose_b=True)
    norms = tf.linalg.diag_part(dot)
    squared = tf.maximum(norms[:, None] - 2.0 * dot + norms[None, :], 0.0)
    dist = tf.sqrt(tf.maximum(squared, 1e-12))
    same = tf.equal(labels[:, None], labels[None, :])
    positive = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool)))
    hardest_positive = tf.reduce_max(tf.where(positive, dist, 0.0), axis=1)
    hardest_negative = tf.reduce_min(tf.where(same, tf.reduce_max(dist) + 1.0, dist), axis=1)
    return tf.reduce_mean(tf.nn.relu(hardest_positive - hardest_negative + margin))


def raw_conv4(image_size: int, width: int = 64, dim: int = 64, momentum: float = 0.9):
    """conv4 in raw TensorFlow: 4 x [conv3x3 'same' no bias, BN, ReLU, max-pool 2], dense, BN,
    L2; returns ``(forward(x), trainable variables)``; BN moving statistics are updated."""
    import tensorflow as tf

    def glorot(shape, fan_in, fan_out, seed):
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        return tf.Variable(tf.random.stateless_uniform(shape, (seed, 0), -limit, limit))

    def bn_vars(n):
        return {
            "gamma": tf.Variable(tf.ones(n)),
            "beta": tf.Variable(tf.zeros(n)),
            "mean": tf.Variable(tf.zeros(n), trainable=False),
            "var": tf.Variable(tf.ones(n), trainable=False),
        }

    kernels, norms, channels, size = [], [], 1, image_size
    for i in range(4):
        kernels.append(glorot((3, 3, channels, width), 9 * channels, 9 * width, i))
        norms.append(bn_vars(width))
        channels, size = width, size // 2
    flat = size * size * width
    dense_w, dense_b = glorot((flat, dim), flat, dim, 9), tf.Variable(tf.zeros(dim))
    norms.append(bn_vars(dim))

    def batch_norm(x, bn, axes):
        mean, var = tf.nn.moments(x, axes)
        bn["mean"].assign(momentum * bn["mean"] + (1.0 - momentum) * mean)
        bn["var"].assign(momentum * bn["var"] + (1.0 - momentum) * var)
        return tf.nn.batch_normalization(x, mean, var, bn["beta"], bn["gamma"], 1e-3)

    def forward(x):
        for kernel, bn in zip(kernels, norms[:4], strict=True):
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
            x = tf.nn.relu(batch_norm(x, bn, [0, 1, 2]))
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.matmul(tf.reshape(x, [-1, flat]), dense_w) + dense_b
        return tf.math.l2_normalize(batch_norm(x, norms[4], [0]), axis=1)

    trainable = kernels + [dense_w, dense_b]
    trainable += [bn[key] for bn in norms for key in ("gamma", "beta")]
    return forward, trainable


def raw_adam(variables, rate: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps=1e-7):
    """Hand-written Adam (Keras's defaults): returns ``apply(gradients)``."""
    import tensorflow as tf

    m = [tf.Variable(tf.zeros_like(v)) for v in variables]
    v2 = [tf.Variable(tf.zeros_like(v)) for v in variables]
    t = tf.Variable(0.0)

    def apply(gradients):
        t.assign_add(1.0)
        step_rate = rate * tf.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        for var, g, m_i, v_i in zip(variables, gradients, m, v2, strict=True):
            m_i.assign(b1 * m_i + (1.0 - b1) * g)
            v_i.assign(b2 * v_i + (1.0 - b2) * tf.square(g))
            var.assign_sub(step_rate * m_i / (tf.sqrt(v_i) + eps))

    return apply


def reference_step(variant: str, image_size: int, width: int = 64):
    """A compiled plain-TF training step ``(images, labels) -> loss`` of conv4.

    Args:
        variant: ``"keras-layers"`` or ``"tf.nn"`` (see the module docstring).
        image_size: side of the square grayscale input.
        width: conv4's filters per layer. Defaults to 64.

    Returns:
        A ``tf.function`` taking float32 images ``(B, S, S, 1)`` and int32 labels ``(B,)``.
    """
    import keras
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(
            f"Invalid value for argument `variant`. Expected one of {VARIANTS}. "
            f"Received: variant={variant!r}"
        )
    signature = [
        tf.TensorSpec((None, image_size, image_size, 1), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    ]
    if variant == "keras-layers":
        from oneshot.models.networks import conv4

        net = conv4((image_size, image_size, 1), embedding_dim=64, width=width)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(net.trainable_variables)

        @tf.function(input_signature=signature)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = batch_hard_loss(y, net(x, training=True))
            grads = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
            return loss

        return step
    forward, variables = raw_conv4(image_size, width)
    apply = raw_adam(variables)

    @tf.function(input_signature=signature)
    def raw_step(x, y):
        with tf.GradientTape() as tape:
            loss = batch_hard_loss(y, forward(x))
        apply(tape.gradient(loss, variables))
        return loss

    return raw_step
