"""Training: the engine (one fit loop), batches, metrics, checkpoints, and the Ray Tune trainable."""
