"""Training: fine-tuning a bi-encoder, and the leakage audit that keeps eval text out of it."""
