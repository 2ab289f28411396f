"""python -m workbench.bench [peers|blocks|linear] [--quick] [--out DIR]: the CoCo-Gen host
benchmarks; with `peers`, ours against every peer runtime (workbench.bench.peers_bench), with
`blocks`, ours against one peer block by block (workbench.bench.blocks_bench), with `linear`,
VGG-16's classifier GEMVs dense and pruned (workbench.bench.linear_bench), else codegen_bench."""
import sys

if sys.argv[1:2] == ["peers"]:
    from workbench.bench.peers_bench import main
    raise SystemExit(main(sys.argv[2:]))
if sys.argv[1:2] == ["linear"]:
    from workbench.bench.linear_bench import main as linear_main
    raise SystemExit(linear_main(sys.argv[2:]))
if sys.argv[1:2] == ["blocks"]:
    from workbench.bench.blocks_bench import main as blocks_main
    raise SystemExit(blocks_main(sys.argv[2:]))
from workbench.bench.codegen_bench import main

raise SystemExit(main())
