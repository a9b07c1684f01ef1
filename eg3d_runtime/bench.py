"""`python -m eg3d_runtime.bench`, kept for existing command lines: the command is
eg3d_runtime.commands.bench."""
import sys

from .commands.bench import main

if __name__ == '__main__':
    sys.exit(main())
