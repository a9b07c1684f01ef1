"""How the command-line tools end: a problem the user can fix is one `error:` line and exit
status 1, Ctrl-C a short note and 130, never a traceback."""
import sys


def run_command(run, args, errors, interrupted):
    """run(args) -> exit status; `errors` are the exception types printed as one line,
    `interrupted` says what Ctrl-C left behind."""
    try:
        run(args)
    except errors as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'\n{interrupted}', file=sys.stderr)
        return 130
    return 0
