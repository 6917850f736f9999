"""Circle loss (Sun et al. 2020) is Keras's own: ``CircleLoss`` is ``keras.losses.Circle``.

Sun, Cheng, Zhang, Zhang, Zheng, Wang, Wei, "Circle Loss: A Unified Perspective of Pair
Similarity Optimization", CVPR 2020, https://arxiv.org/abs/2002.10857. Per anchor,
with the cosine similarities s_p of its positives and s_n of its negatives:

    L = log(1 + sum_n exp(gamma a_n (s_n - m)) * sum_p exp(-gamma a_p (s_p - 1 + m)))
    a_p = max(1 + m - s_p, 0),    a_n = max(s_n + m, 0)

``keras.losses.Circle(gamma=80, margin=0.4)`` takes what our in-batch losses take (integer
labels (B,) as ``y_true``, embeddings (B, D) as ``y_pred``), returns per-sample values (B,),
saves and loads as a Keras built-in, and trains through ``build_online``; its values match a
numpy loop over the formula above (tests/test_pair_losses.py). So it is re-exported as is,
not written again. What to know when using it:

- It reads ``1 - x.y`` as the cosine distance: the embeddings must be unit-norm (``conv4``
  ends with L2 normalisation by default). It does not check.
- Keras masks the zero per-sample losses (anchors without a positive or a negative), so
  ``reduction="sum_over_batch_size"`` divides by the number of anchors with a loss, not by
  B; on P x K batches every anchor has one and it is the batch mean.
- Its gradient flows through the weights a_p and a_n too (the exact derivative of the
  formula); the paper's analysis and most implementations hold them constant. Values are
  the same, gradients are not.
- Keras leaves ``dtype`` out of its config: a float64 Circle reloads as float32 (our losses
  keep it).
- It has no ``distance`` attribute: ``build_online`` records the Euclidean distance (the same
  ranking as the cosine on unit-norm embeddings) unless given ``distance=CosineSimilarity()``.
"""

from __future__ import annotations

import keras

CircleLoss = keras.losses.Circle
