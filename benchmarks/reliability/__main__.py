import sys

from benchmarks.reliability.run import main

sys.exit(main())
