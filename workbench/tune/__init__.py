"""CoCo-Tune (report section 2.2, Wootz PLDI 2019): composability-based fast pruning exploration.

prototxt.py / network.py   front ends (Caffe prototxt with `module`, PyTorch with declared modules)
multiplex.py               the generated multiplexing model (full / pretrain / finetune)
filter_pruning.py          L1-norm filter pruning of modules
subspace.py                promising subspaces and tuning blocks (via workbench.sequitur)
pretrain.py, assemble.py   teacher-student block pre-training; assembly and fine-tuning
explore.py, executor.py    smallest-first exploration, resumable, in process or on Dask
pipeline.py                the run directory and the per-network task
"""
from workbench.tune.assemble import FinetuneConfig, assemble, finetune
from workbench.tune.executor import DaskExecutor, InProcessExecutor, make_executor
from workbench.tune.explore import Cached, Exploration, ResultStore, at_target, explore
from workbench.tune.filter_pruning import RATES, kept_filters, l1_prune, pruned_network
from workbench.tune.multiplex import generate, load_multiplex, write_multiplex
from workbench.tune.network import GraphModel, GraphNet, NetworkError, from_module, keep
from workbench.tune.pretrain import PretrainConfig, pretrain_blocks
from workbench.tune.prototxt import PrototxtError, from_prototxt, load_prototxt
from workbench.tune.subspace import sample_grouped, sample_subspace, tuning_blocks

__all__ = ["Cached", "DaskExecutor", "Exploration", "FinetuneConfig", "GraphModel", "GraphNet",
           "InProcessExecutor", "NetworkError", "PretrainConfig", "PrototxtError", "RATES",
           "ResultStore", "assemble", "at_target", "explore", "finetune", "from_module",
           "from_prototxt", "generate", "keep", "kept_filters", "l1_prune", "load_multiplex",
           "load_prototxt", "make_executor", "pretrain_blocks", "pruned_network",
           "sample_grouped", "sample_subspace", "tuning_blocks", "write_multiplex"]
