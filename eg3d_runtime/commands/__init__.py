"""The command-line tools, one thin module each: parse the command line (eg3d_runtime.arguments),
call the library, report. generate, gen_videos, invert, shapes_export, bench, train,
dataset_tool, demo_quality, serve; ending says how each one ends (error line, exit status).

Each is run as `python -m eg3d_runtime.<name>` (the modules of the old names forward here),
`python shapes_export.py` or its console script (pyproject.toml). A command imports the library
only once its command line is accepted, so a bad option is refused before torch is loaded.
Nothing outside this package imports it (tests/test_layers.py)."""
