"""The remote render server and its wire protocol: the viewer on a laptop drives rendering on a
GPU machine over an SSH session's stdin/stdout or a TCP socket with a token. Plain values only:
JSON for control, compressed image bytes for frames; nothing is ever unpickled."""
