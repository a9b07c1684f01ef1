"""Training runs seen from outside the trainer: read a run directory incrementally while it is
written (run_reader, run_monitor) and start, stop or resume the trainer as its own process
(training_process). The viewer's Trainer tab uses them locally, the render server for a remote
viewer; no GUI code."""
