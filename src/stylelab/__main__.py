"""``python -m stylelab`` and the ``stylelab`` command (pyproject's ``[project.scripts]``)."""

import sys


def entry() -> None:
    """The command's entry point: Ctrl-C while the command line's modules load is "interrupted"
    and exit 130 like Ctrl-C later on (``cli.main`` handles everything after)."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    entry()
