"""`python -m eg3d_runtime.generate`, kept for existing command lines: the command is
eg3d_runtime.commands.generate."""
import sys

from .commands.generate import main

if __name__ == '__main__':
    sys.exit(main())
