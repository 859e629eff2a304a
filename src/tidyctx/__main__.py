"""``python -m tidyctx``: the same command line as ``tidyctx``."""

from tidyctx._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
