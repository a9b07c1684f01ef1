"""Training: run-directory files, statistics and the training loop."""
