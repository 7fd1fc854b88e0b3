import sys

from chater_gpt.cli import main

sys.exit(main())
