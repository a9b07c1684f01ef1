"""The Trainer tab: launch or follow a training run, its curves, fake grids and log."""
