"""``python -m stylelab`` and the ``stylelab`` command (pyproject's ``[project.scripts]``)."""

import atexit
import os
import sys

INTERRUPTED = 130


def _exit_interrupted() -> None:
    """Exit 130 for certain after Ctrl-C.

    A SIGINT that lands while a library runs Python code from C (``PyRun_*``, during
    torch's import for one) leaves CPython's "unhandled KeyboardInterrupt" flag set even
    though we caught it, and the interpreter then ends the process by SIGINT (-2) instead
    of our exit code: about one Ctrl-C in fifteen during start-up. So the exit handlers
    run as usual, the streams are flushed, and the process ends here.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(INTERRUPTED)


def entry() -> None:
    """The command's entry point: Ctrl-C while the command line's modules load is "interrupted"
    and exit 130 like Ctrl-C later on (``cli.main`` handles everything after)."""
    try:
        from .cli import main

        code = main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        code = INTERRUPTED
    if code == INTERRUPTED:
        _exit_interrupted()
    sys.exit(code)


if __name__ == "__main__":
    entry()
