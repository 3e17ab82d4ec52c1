"""SCALE-Sim (``scalesim`` 3.0.0, an eval extra) as an external check of the INT cycle model.

SCALE-Sim's weight-stationary model maps a GEMM (M tokens, K, N) like qarch's arrays: K on the
rows, N on the columns, one *fold* per (K tile, column block), the M vectors streaming through
it. It runs each fold on its own: R cycles to load the fold's weights, then the M vectors with
the skew and drain (M + R + C - 2 cycles), so a GEMM of F folds takes ``F (M + 2R + C - 2)``
cycles. qarch's arrays overlap consecutive passes (wavefront weight loads start while the
previous pass drains), so the difference is exactly (docs/perf.md "SCALE-Sim"):

    SCALE-Sim - qarch = F R + (F - 1)(M + R + C - 2 - period(M)) - 3

- ``F R``: SCALE-Sim loads every fold's weights before any vector enters;
- ``(F - 1)(M + R + C - 2 - period(M))``: it starts the next fold only after the previous one
  drained, where qarch starts it ``period(M)`` cycles after the previous one started;
- ``- 3``: qarch counts first input to last output inclusive through the activation edge
  register and the output register, SCALE-Sim counts cycles of its demand matrices.

qarch's side is a single-buffered INT array with one accumulator batch (``acc_depth`` >= M) and
``pipeline`` 1 (the 512- and 1,024-deep accumulators need it), the closest to SCALE-Sim's
dataflow. SCALE-Sim 3.0.0's memory simulator fails under NumPy 2.4 (``int()`` of a one-element
array in ``double_buffered_scratchpad_mem.py``), so this runs its compute model alone: the demand
matrices, one row per cycle, which are what its memory system replays (stall-free with its
buffers large enough, as configured here).
"""

from __future__ import annotations

import gc
import tempfile
import warnings
from pathlib import Path

__all__ = ["scalesim_cycles", "reference_config", "compare", "SHAPES"]

# (K, N) of every SmolLM2-135M layer (q/o, k/v, gate/up, down) at prefill 512, decode 1 and
# 8 tokens, and 64; MiniLM's at 128 tokens; and shapes that tile unevenly.
_SMOL = ((576, 576), (576, 192), (576, 1536), (1536, 576))
SHAPES = tuple(
    [(m, k, n) for m in (512, 64, 8, 1) for k, n in _SMOL]
    + [(128, 384, 384), (128, 384, 1536), (128, 1536, 384)]
    + [(100, 70, 33), (7, 300, 17), (33, 17, 100)]
)

_CFG = """[general]
run_name = qarch

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 65536
FilterSramSzkB: 65536
OfmapSramSzkB: 65536
IfmapOffset: 0
FilterOffset: 100000000
OfmapOffset: 200000000
Bandwidth: 10
Dataflow: ws
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def scalesim_cycles(shapes, rows: int, cols: int) -> list[int]:
    """SCALE-Sim's weight-stationary cycles of each GEMM ``(M, K, N)`` on a rows x cols array."""
    try:
        from scalesim.layout_utils import layouts
        from scalesim.scale_config import scale_config
        from scalesim.single_layer_sim import single_layer_sim
        from scalesim.topology_utils import topologies
    except ImportError:
        raise ValueError("SCALE-Sim is not installed: run `make setup` (scalesim 3.0.0)") from None
    # SCALE-Sim opens its CSV files without closing them: collect them here, warnings off.
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as d:
        warnings.simplefilter("ignore", ResourceWarning)
        cfg_path, topo_path, lay_path = (Path(d) / f for f in ("qarch.cfg", "gemm.csv", "l.csv"))
        cfg_path.write_text(_CFG.format(rows=rows, cols=cols))
        topo_path.write_text(
            "Layer,M,N,K,\n" + "".join(f"g{i},{m},{n},{k},\n" for i, (m, k, n) in enumerate(shapes))
        )
        lay_path.write_text("Layer,\n")  # no custom layouts (the file is still read)
        conf = scale_config()
        conf.read_conf_file(str(cfg_path))
        topo = topologies()
        topo.load_arrays(topofile=str(topo_path), mnk_inputs=True)
        lay = layouts()
        lay.load_arrays(layoutfile=str(lay_path))
        out = []
        for i in range(len(shapes)):
            sim = single_layer_sim()
            sim.set_params(layer_id=i, config_obj=conf, topology_obj=topo, layout_obj=lay,
                           verbose=False)  # fmt: skip
            ops = sim.op_mat_obj
            _, ifmap = ops.get_ifmap_matrix()
            _, filt = ops.get_filter_matrix()
            _, ofmap = ops.get_ofmap_matrix()
            sim.compute_system.set_params(
                config_obj=conf, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap,
                sparsity_ratio_N=1, sparsity_ratio_M=1,
                ifmap_op_mat_original=ops.ifmap_addr_matrix_original,
                sparsity_filter_array=ops.sparse_filter_array,
            )  # fmt: skip
            _, _, ofmap_demand = sim.compute_system.get_demand_matrices()
            out.append(int(ofmap_demand.shape[0]))
        del topo, lay, sim
        gc.collect()
    return out


def reference_config(rows: int, cols: int, m_max: int = 512):
    """The qarch INT array closest to SCALE-Sim's dataflow (module docstring)."""
    from .configs.integer import IntArrayConfig

    depth = max(2, 1 << (m_max - 1).bit_length())
    return IntArrayConfig(
        rows=rows, cols=cols, w_bits=8, a_bits=8, acc_bits=32, out_bits=32,
        acc_depth=depth, pipeline=1, double_buffer=False,
    )  # fmt: skip


def compare(shapes=SHAPES, rows: int = 16, cols: int = 16) -> list[dict]:
    """Per shape: SCALE-Sim's cycles, qarch's, and the difference explained term by term."""
    cfg = reference_config(rows, cols, max(m for m, _, _ in shapes))
    sim = scalesim_cycles(shapes, rows, cols)
    out = []
    for (m, k, n), s in zip(shapes, sim):
        q = cfg.cycles(m, k, n)
        folds = -(-k // rows) * -(-n // cols)
        explained = folds * rows + (folds - 1) * (m + rows + cols - 2 - cfg.period(m)) - 3
        out.append({"m": m, "k": k, "n": n, "folds": folds, "scalesim": s, "qarch": q,
                    "difference": s - q, "explained": explained,
                    "relative": (s - q) / s})  # fmt: skip
    return out
