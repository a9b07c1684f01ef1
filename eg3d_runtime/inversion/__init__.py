"""Photo inversion, one idea per module: targets (the picture and its camera, with one-line
errors), losses (pixel + multi-scale SSIM, or LPIPS from given weights), optimise (the latent,
the camera, pivotal tuning), invert (the whole inversion: Settings, invert, load_inputs),
outputs (what it writes, all or none). The invert command, the viewer's Invert panel and the
render server's inversion job call invert and outputs."""
