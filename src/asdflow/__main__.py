"""`python -m asdflow <stage>`: the same as the `asdflow` command (the workflow's rules use it,
so a job runs in whatever Python environment it is given: the venv, a `--sdm conda` env)."""

import sys

from asdflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
