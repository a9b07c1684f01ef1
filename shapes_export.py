"""`python shapes_export.py`, kept at the repository root for existing command lines: the command
is eg3d_runtime.commands.shapes_export (console script eg3d-shapes)."""
import sys

from eg3d_runtime.commands.shapes_export import main

if __name__ == '__main__':
    sys.exit(main())
