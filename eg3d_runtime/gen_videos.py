"""`python -m eg3d_runtime.gen_videos`, kept for existing command lines: the command is
eg3d_runtime.commands.gen_videos."""
import sys

from .commands.gen_videos import main

if __name__ == '__main__':
    sys.exit(main())
