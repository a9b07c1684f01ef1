"""`python -m eg3d_runtime.invert`, kept for existing command lines: the command is
eg3d_runtime.commands.invert."""
import sys

from .commands.invert import main

if __name__ == '__main__':
    sys.exit(main())
