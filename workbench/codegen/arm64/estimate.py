"""Static cost of ARM64 kernels on a named phone core: llvm-mca on each kernel's hot loop.

No ARM64 hardware is needed and nothing runs: the kernel is compiled to assembly with the
cross compiler, its hot loop (the innermost loop with the most vector fmla) is cut out, and
llvm-mca simulates that block on the core's scheduling model. The result is an *estimate*
(qemu timings say nothing about a phone either), and every row says so. Only as good as
LLVM's model of the core: LLVM 14 models the Cortex-A76/A77/A78/X1 with its Cortex-A57 model
(3-wide, one 128-bit fmla per cycle), so their fraction of peak reads at most about half.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.codegen.arm64.program import Program
from workbench.codegen.arm64.toolchain import common_flags, cross_compiler, llvm_mca, run_tool
from workbench.codegen.build import CompilerError, debug

ITERATIONS = 200

# fp32 flops per cycle when every FP/NEON pipe issues a 128-bit fmla (4 lanes x 2 flops).
# A76/A77/A78: two 128-bit FP/ASIMD pipes; X1: four. A55: two 64-bit FP MAC pipes, so one
# Q-form (128-bit) fmla per cycle (Arm's A55 optimisation guide: Q-form FMLA throughput 1).
PEAK_FLOPS_PER_CYCLE: dict[str, float] = {
    "cortex-a55": 8.0,
    "cortex-a76": 16.0,
    "cortex-a77": 16.0,
    "cortex-a78": 16.0,
    "cortex-x1": 32.0,
}

_FMA = {"fmla", "fmls", "fmadd", "fmsub", "fnmadd", "fnmsub"}  # 2 flops per lane
_ARITH = {"fadd", "fsub", "fmul", "fnmul", "fmulx", "fdiv", "faddp"}  # 1 flop per lane
# GCC writes bne, LLVM b.ne: both, and the compare-and-branch forms.
_COND_BRANCH = re.compile(r"^(b\.?(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)|cbn?z|tbn?z)$")
_LANES = re.compile(r"^v\d+\.(\d+)[bhsd]$")


@dataclass(frozen=True)
class KernelEstimate:
    """llvm-mca's static estimate of one kernel's hot loop on a core (not a measurement):
    cycles and fp flops per loop iteration, and flops per cycle against the core's peak.
    stack_accesses counts the loop's loads and stores through sp: register spills."""
    symbol: str
    cpu: str
    loop_instructions: int
    cycles_per_iteration: float
    block_rthroughput: float
    flops_per_iteration: int
    flops_per_cycle: float
    peak_flops_per_cycle: float
    fraction_of_peak: float
    stack_accesses: int
    sched_model: str

    @property
    def label(self) -> str:
        """What this is, for plots and tables: an llvm-mca estimate, never a timing."""
        return f"llvm-mca estimate for {self.cpu} (LLVM's {self.sched_model} model)"

    def __str__(self) -> str:
        return (f"{self.symbol}: {self.cycles_per_iteration:.2f} cycles/iter, "
                f"{self.flops_per_cycle:.2f} flops/cycle = {self.fraction_of_peak:.0%} of "
                f"peak [{self.label}]")


def _peak(cpu: str) -> float:
    if cpu not in PEAK_FLOPS_PER_CYCLE:
        raise ValueError(f"unknown cpu {cpu!r}; known: {', '.join(PEAK_FLOPS_PER_CYCLE)}")
    return PEAK_FLOPS_PER_CYCLE[cpu]


def assembly(source: str, cpu: str = "cortex-a76") -> str:
    """source compiled by the ARM64 cross compiler to assembly text, tuned for cpu."""
    _peak(cpu)
    cc, _ = cross_compiler()
    # -mtune, not -mcpu: -mcpu next to -march=armv8-a draws a conflict warning from GCC, and
    # the bundle itself is built for plain ARMv8-A.
    flags = [f for f in common_flags() if not f.startswith("-mtune=")] + [f"-mtune={cpu}"]
    with tempfile.TemporaryDirectory(prefix="wb_mca_") as d:
        c_path, s_path = Path(d) / "k.c", Path(d) / "k.s"
        c_path.write_text(source)
        run_tool([cc, *flags, "-S", "-o", str(s_path), str(c_path)], f"{Path(cc).name} -S")
        return s_path.read_text()


def _functions(asm: str, symbol: str) -> list[list[str]]:
    """The lines of symbol and of the local functions it may call or outline (static
    helpers, OpenMP's symbol._omp_fn.N), one list per function."""
    lines = [ln.split("//")[0].rstrip() for ln in asm.splitlines()]
    glob = {ln.split()[1] for ln in lines if ln.strip().startswith((".globl", ".global"))}
    funcs: dict[str, list[str]] = {}
    cur: str | None = None
    for ln in lines:
        m = re.match(r"^\s*\.type\s+([^,\s]+),\s*[%@]function", ln)
        if m:
            cur = m.group(1)
            funcs[cur] = []
        elif cur is not None:
            if re.match(rf"^\s*\.size\s+{re.escape(cur)},", ln):
                cur = None
            else:
                funcs[cur].append(ln)
    if symbol not in funcs:
        raise ValueError(f"estimate: the source defines no function {symbol!r}")
    return [body for name, body in funcs.items() if name == symbol or name not in glob]


def _instructions(lines: list[str]) -> list[str]:
    """Instruction lines only: labels and assembler directives stripped."""
    out = []
    for ln in lines:
        s = re.sub(r"^\s*[\w.$]+:", "", ln).strip()
        if s and not s.startswith("."):
            out.append(s)
    return out


def _mnemonic(ins: str) -> tuple[str, list[str]]:
    head, *rest = ins.split(None, 1) or [""]
    return head.lower(), [o.strip() for o in rest[0].split(",")] if rest else []


def hot_loop(asm: str, symbol: str) -> list[str]:
    """Instructions of symbol's hot loop: of the innermost loops (a label up to a backward
    conditional branch to it, holding no other such loop), the one with the most fmla, else
    the longest."""
    best: tuple[int, int, list[str]] | None = None
    for lines in _functions(asm, symbol):
        labels = {m.group(1): i for i, ln in enumerate(lines)
                  if (m := re.match(r"^([\w.$]+):", ln))}
        loops = []
        for j, ln in enumerate(lines):
            mn, ops = _mnemonic(ln.strip())
            target = ops[-1] if ops else ""
            if _COND_BRANCH.match(mn) and labels.get(target, j) < j:
                loops.append((labels[target], j))
        for s, e in loops:
            if any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in loops):
                continue
            body = _instructions(lines[s:e + 1])
            key = (sum(_mnemonic(i)[0] == "fmla" for i in body), len(body), body)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        raise ValueError(f"estimate: {symbol} has no loop")
    return best[2]


def flops(instructions: list[str]) -> int:
    """Useful fp flops of one pass through instructions: 2 per lane of an fma, 1 per lane of
    an add, sub, mul or div (lanes from the destination: v0.4s is 4, a scalar s0 is 1)."""
    total = 0
    for ins in instructions:
        mn, ops = _mnemonic(ins)
        per_lane = 2 if mn in _FMA else 1 if mn in _ARITH else 0
        if per_lane:
            m = _LANES.match(ops[0].lower())
            total += per_lane * (int(m.group(1)) if m else 1)
    return total


def _mca(body: list[str], cpu: str) -> tuple[float, float, int, str]:
    """(total cycles, block reciprocal throughput, instructions, model) of body x ITERATIONS."""
    with tempfile.TemporaryDirectory(prefix="wb_mca_") as d:
        path = Path(d) / "loop.s"
        path.write_text("\n".join(body) + "\n")
        out = run_tool([llvm_mca(), "-mtriple=aarch64", f"-mcpu={cpu}",
                    f"-iterations={ITERATIONS}", str(path)], f"llvm-mca -mcpu={cpu}")

    def field(name: str) -> float:
        m = re.search(rf"^{name}:\s+([\d.]+)", out, re.M)
        if m is None:
            raise CompilerError(f"llvm-mca printed no {name!r}:\n{out[:2000]}")
        return float(m.group(1))
    # Resources are named after the scheduling model (A57UnitW, CortexA55UnitFPMAC): it tells
    # which core LLVM really simulated.
    unit = re.search(r"^\[[\d.]+\]\s+-\s+(\w+?)Unit", out, re.M)
    return (field("Total Cycles"), field("Block RThroughput"), int(field("Instructions")),
            unit.group(1) if unit else "unknown")


def estimate_kernel(symbol: str, source: str, cpu: str = "cortex-a76") -> KernelEstimate:
    """llvm-mca estimate of kernel symbol (in C source) on cpu: its hot loop's cycles and fp32
    flops per iteration, flops per cycle and their fraction of the core's peak."""
    peak = _peak(cpu)
    body = hot_loop(assembly(source, cpu), symbol)
    total, rthroughput, n_ins, model = _mca(body, cpu)
    if debug():
        print(f"[estimate] {symbol} hot loop ({len(body)} instructions):\n  " +
              "\n  ".join(body))
    if n_ins != len(body) * ITERATIONS:
        raise CompilerError(f"llvm-mca read {n_ins} instructions, expected "
                            f"{len(body)} x {ITERATIONS}")
    cycles = total / ITERATIONS
    f = flops(body)
    return KernelEstimate(symbol=symbol, cpu=cpu, loop_instructions=len(body),
                          cycles_per_iteration=cycles, block_rthroughput=rthroughput,
                          flops_per_iteration=f, flops_per_cycle=f / cycles,
                          peak_flops_per_cycle=peak, fraction_of_peak=f / cycles / peak,
                          stack_accesses=sum("[sp" in i for i in body), sched_model=model)


def estimate_program(prog: Program, cpu: str = "cortex-a76") -> list[dict[str, Any]]:
    """One row (plain dict, for a DataFrame) per distinct kernel source of prog: the steps
    calling it and its estimate_kernel fields, marked kind "estimate (llvm-mca)"."""
    _peak(cpu)
    steps_of: dict[int, list[str]] = {}
    for name, first, end in prog.steps:
        for k, _ in prog.calls[first:end]:
            if name not in steps_of.setdefault(k, []):
                steps_of[k].append(name)
    rows: dict[str, dict[str, Any]] = {}
    for k, (symbol, source) in enumerate(prog.kernels):
        if source in rows:
            rows[source]["steps"] += [s for s in steps_of.get(k, []) if
                                      s not in rows[source]["steps"]]
            continue
        try:
            e = estimate_kernel(symbol, source, cpu)
            est: dict[str, Any] = {**asdict(e), "label": e.label}
        except ValueError as e:  # a kernel with no loop (or none found) has no hot loop
            est = {"symbol": symbol, "cpu": cpu, "note": str(e)}
        rows[source] = {"kind": "estimate (llvm-mca)", "steps": steps_of.get(k, []), **est}
    return list(rows.values())
