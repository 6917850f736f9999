"""Training: RunConfig -> tf.data pipeline + compiled model -> fit with callbacks -> run folder."""
