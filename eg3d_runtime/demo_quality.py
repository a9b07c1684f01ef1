"""`python -m eg3d_runtime.demo_quality`, kept for existing command lines: the command is
eg3d_runtime.commands.demo_quality."""
import sys

from .commands.demo_quality import main

if __name__ == '__main__':
    sys.exit(main())
