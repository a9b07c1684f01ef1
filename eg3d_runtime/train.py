"""`python -m eg3d_runtime.train`, kept for existing command lines: the command is
eg3d_runtime.commands.train."""
import sys

from .commands.train import main

if __name__ == '__main__':
    sys.exit(main())
