"""chater-gpt entry point: `python main.py run` (production) or `python main.py demo`."""

import sys

from chater_gpt.cli import main

if __name__ == "__main__":
    sys.exit(main())
