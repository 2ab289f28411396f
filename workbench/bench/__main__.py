"""python -m workbench.bench [--quick] [--out DIR]: the CoCo-Gen host benchmarks."""
from workbench.bench.codegen_bench import main

raise SystemExit(main())
