"""chater-gpt entry point: `python main.py` or `python main.py run` (production),
`python main.py demo` (the embedded stack end to end)."""

import sys

from chater_gpt.cli import main

if __name__ == "__main__":
    sys.exit(main())
