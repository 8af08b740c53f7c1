"""``python -m components.sizing``: the sizing command line (:mod:`components.sizing.cli`)."""

from components.sizing.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
