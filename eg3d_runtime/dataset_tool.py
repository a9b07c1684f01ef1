"""`python -m eg3d_runtime.dataset_tool`, kept for existing command lines: the command is
eg3d_runtime.commands.dataset_tool."""
import sys

from .commands.dataset_tool import main

if __name__ == '__main__':
    sys.exit(main())
