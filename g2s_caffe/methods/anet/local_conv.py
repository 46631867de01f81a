"""Locally shared convolution from stock Caffe layers (BVLC Caffe has no such layer).

Definition (ANet's C3 and C4, §2.2): the input map (N, C, g*h, g*w) is divided into a g x g
grid of non-overlapping cells of h x w; cell (i, j) is convolved with its own filters
W_ij (K, C, k, k) and bias b_ij, with zero padding *inside the cell* (a cell never sees its
neighbours); the K-channel outputs are put back in place.  With "same" padding
(k = 2 * pad + 1) the output has the input's spatial size.

Built with NetSpec from layers every Caffe build has, forward and backward, on the CPU and
with CUDA: Slice (rows, axis 2), Slice (cells of a row, axis 3), one Convolution + ReLU per
cell named ``<name>_<i>_<j>`` (so its weights load by name), Concat (axis 3), Concat (axis 2).
tests/methods/anet/test_local_conv.py checks it, forward and gradients, against a direct numpy definition.
"""
from __future__ import annotations

from caffe import layers as L


def slice_points(size: int, grid: int) -> list[int]:
    """Where a side of ``grid`` equal cells of ``size`` each is cut."""
    return [size * i for i in range(1, grid)]


def split_cells(n, bottom, grid: int, cell_h: int, cell_w: int, prefix: str) -> list[list]:
    """The g x g cells of ``bottom`` as NetSpec tops ``<prefix>_<i>_<j>``, [row][column]
    (the rows are tops ``<prefix>_rows_<i>``)."""
    def cut(top, axis: int, size: int):
        if grid == 1:
            return [L.Slice(top, ntop=1, axis=axis)]
        return list(L.Slice(top, ntop=grid, axis=axis, slice_point=slice_points(size, grid)))

    cells = []
    for i, row in enumerate(cut(bottom, 2, cell_h)):
        n[f"{prefix}_rows_{i}"] = row
        cells.append([])
        for j, cell in enumerate(cut(row, 3, cell_w)):
            n[f"{prefix}_{i}_{j}"] = cell
            cells[-1].append(cell)
    return cells


def slice_layer_names(prefix: str, grid: int) -> dict[tuple[str, str], str]:
    """Readable names for split_cells' Slice layers (NetSpec names a multi-top layer after
    its first top): {(type, first top): layer name}."""
    out = {("Slice", f"{prefix}_rows_0"): f"{prefix}_slice_rows"}
    out.update({("Slice", f"{prefix}_{i}_0"): f"{prefix}_slice_row_{i}" for i in range(grid)})
    return out


def join_cells(n, cells: list[list], name: str):
    """Inverse of split_cells: each row's cells side by side (axis 3, tops ``<name>_row_<i>``),
    the rows stacked (axis 2, top ``<name>``)."""
    rows = []
    for i, row in enumerate(cells):
        if len(row) > 1:
            n[f"{name}_row_{i}"] = L.Concat(*row, axis=3)
            rows.append(n[f"{name}_row_{i}"])
        else:
            rows.append(row[0])
    n[name] = L.Concat(*rows, axis=2) if len(rows) > 1 else L.Split(rows[0])
    return n[name]


def cell_conv(bottom, nout: int, kernel: int, pad: int, param: list[dict], weight_filler: dict,
              bias_filler: dict):
    return L.Convolution(bottom, num_output=nout, kernel_size=kernel, pad=pad, stride=1, param=param,
                         weight_filler=weight_filler, bias_filler=bias_filler)


def locally_shared_conv(n, bottom, name: str, grid: int, cell_h: int, cell_w: int, nout: int,
                        kernel: int, pad: int, param_for, weight_filler: dict, bias_filler: dict,
                        relu: bool = True, suffix: str = ""):
    """Add a locally shared convolution (module docstring) to NetSpec ``n``; return its top.

    ``param_for(layer_name)`` gives the ``param`` list of the cell convolution named
    ``layer_name`` (without ``suffix``; named params share weights between the branches of a
    siamese net, whose second branch has ``suffix`` "_p").  Tops: ``<name>_in<suffix>_<i>_<j>``
    (the cells), ``<name>_<i>_<j><suffix>`` (each cell's convolution, ReLU in place) and
    ``<name><suffix>`` (the joined map).  Name its Slice layers with
    ``slice_layer_names(f"{name}_in{suffix}", grid)``.
    """
    cells = split_cells(n, bottom, grid, cell_h, cell_w, f"{name}_in{suffix}")
    out = []
    for i, row in enumerate(cells):
        out.append([])
        for j, cell in enumerate(row):
            layer = f"{name}_{i}_{j}"
            n[layer + suffix] = cell_conv(cell, nout, kernel, pad, param_for(layer), weight_filler, bias_filler)
            top = n[layer + suffix]
            if relu:
                n[f"relu_{layer}{suffix}"] = top = L.ReLU(top, in_place=True)
            out[-1].append(top)
    return join_cells(n, out, name + suffix)
