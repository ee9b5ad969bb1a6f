import sys

from benchmarks.quantization.run import main

sys.exit(main())
