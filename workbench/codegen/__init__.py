"""CoCo-Gen for the host CPU: LR, front ends, reorder, compact storage, emitters, tuner, runtime.

    from workbench.codegen import compile_layer, compile
    kernel = compile_layer(conv, emitter="numba")     # one pruned conv -> generated kernel
    net = compile(model, target="host", emitter="c", input_shape=(3, 224, 224))
    y = net(x); net.profile(x); net.memory(1, x)

Modules: lr (the LR, JSON + npz), patterns (kept kernels and patterns from the zeros),
frontend_torch / frontend_onnx, passes (BN folding, activation fusion), reorder (filter kernel
reorder), storage (FKW packing, CSR comparison), schedule (Schedule, ScheduleSpace), ir (fixed
geometry and buffer layouts), render_numba / render_c (emitters), build (cached builds),
kernel (compile_layer), runtime / runtime_c (networks), tune (tuner with a JSONL log).
"""
from workbench.codegen.kernel import CompiledLayer, compile_layer
from workbench.codegen.lr import LR, Layer, LRError, conv_layer
from workbench.codegen.patterns import KernelPatterns, analyse
from workbench.codegen.runtime import CompiledNetwork, compile
from workbench.codegen.schedule import Schedule, ScheduleSpace

__all__ = ["CompiledLayer", "compile_layer", "LR", "Layer", "LRError", "conv_layer",
           "KernelPatterns", "analyse", "CompiledNetwork", "compile", "Schedule",
           "ScheduleSpace"]
