import sys

from nanoclaw.runner.main import main

sys.exit(main())
