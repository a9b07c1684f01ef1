"""`python -m eg3d_runtime.serve`, kept for existing command lines: the command is
eg3d_runtime.commands.serve."""
import sys

from .commands.serve import main

if __name__ == '__main__':
    sys.exit(main())
