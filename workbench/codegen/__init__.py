"""CoCo-Gen: LR, front ends, reorder, compact storage, emitters, tuner, runtime.

    from workbench.codegen import compile_layer, compile
    kernel = compile_layer(conv, emitter="numba")     # one pruned conv -> generated kernel
    net = compile(model, target="host", emitter="c", input_shape=(3, 224, 224))
    y = net(x); net.profile(x); net.memory(1, x)

Modules: lr (the LR, JSON + npz), patterns (kept kernels and patterns from the zeros),
frontend (to_lr) over frontend_torch / frontend_onnx, passes (BN folding, activation fusion),
reorder (filter kernel reorder), storage (FKW packing, CSR comparison), schedule (Schedule,
ScheduleSpace), ir (fixed geometry and buffer layouts), build (the cache every target shares),
targets (compile: the one place naming the targets). Then one folder per target or emitter:
c/ (C renderers for any vector width), host/ (Numba and C builds, compile_layer, the network
runtime and plan, the tuner), arm64/ (the phone bundle: the host's C plan, made at NEON's
width, exported as steps; main, weights file, cross build, qemu, llvm-mca estimates), cuda/
(CUDA C renderers, NVRTC, the driver-API runtime on torch tensors, CUDA graphs, the GPU
tuner). Imports run one way: arm64 -> host -> c -> the shared modules above; cuda -> the
shared modules.
"""
from workbench.codegen.host.kernel import CompiledLayer, compile_layer
from workbench.codegen.host.network import CompiledNetwork
from workbench.codegen.lr import LR, Layer, LRError, conv_layer
from workbench.codegen.patterns import KernelPatterns, analyse
from workbench.codegen.schedule import Schedule, ScheduleSpace
from workbench.codegen.targets import compile

__all__ = ["CompiledLayer", "compile_layer", "LR", "Layer", "LRError", "conv_layer",
           "KernelPatterns", "analyse", "CompiledNetwork", "compile", "Schedule",
           "ScheduleSpace"]
