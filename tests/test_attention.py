"""pyposert.ops.attention on the CPU against the float64 materialised-softmax reference."""

from __future__ import annotations

import numpy as np
import pytest

import pyposert
from pyposert import ops
from reference import attention_ref


def qkv(rng, batch, queries, keys, dk, dv, spread=1.0):
    q = (rng.standard_normal((batch, queries, dk)) * spread).astype(np.float32)
    k = (rng.standard_normal((batch, keys, dk)) * spread).astype(np.float32)
    v = rng.standard_normal((batch, keys, dv)).astype(np.float32)
    return q, k, v


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("queries,keys", [(1, 1), (1, 97), (97, 97), (131, 61), (257, 300)])
@pytest.mark.parametrize("dk,dv", [(8, 13), (32, 64), (32, 100), (5, 1)])
def test_matches_reference(rng, batch, queries, keys, dk, dv):
    q, k, v = qkv(rng, batch, queries, keys, dk, dv)
    scale = float(rng.uniform(0.05, 1.0))
    got = ops.attention(q, k, v, scale=scale)
    assert got.shape == (batch, queries, dv) and got.dtype == np.float32
    np.testing.assert_allclose(got, attention_ref(q, k, v, scale), rtol=2e-5, atol=2e-5)


def test_large_scores_do_not_overflow(rng):
    """Scores in the hundreds: a naive exp overflows, the online softmax must not."""
    q, k, v = qkv(rng, 2, 200, 333, 32, 40, spread=4.0)
    got = ops.attention(q, k, v, scale=1.0)
    ref = attention_ref(q, k, v, 1.0)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_pona_sizes(rng):
    """The shapes PoNA/NRAM attention has at 1/4 of 256 x 176 (N = 64 * 44 = 2816) and rt size."""
    q, k, v = qkv(rng, 1, 704, 704, 32, 256)
    np.testing.assert_allclose(ops.attention(q, k, v), attention_ref(q, k, v), rtol=2e-5, atol=2e-5)


def test_nan_propagates_to_its_row_only(rng):
    q, k, v = qkv(rng, 1, 40, 50, 8, 16)
    q[0, 3, 2] = np.nan
    got = ops.attention(q, k, v)
    assert np.isnan(got[0, 3]).all()
    assert np.isfinite(np.delete(got[0], 3, axis=0)).all()
    k[0, 7, 0] = np.nan  # a NaN key poisons every query (as the math says)
    assert np.isnan(ops.attention(q, k, v)).all()


def test_deterministic_and_thread_count_independent(rng):
    q, k, v = qkv(rng, 2, 150, 170, 16, 48)
    first = ops.attention(q, k, v)
    pyposert.set_num_threads(1)
    try:
        single = ops.attention(q, k, v)
    finally:
        pyposert.set_num_threads(0)
    assert np.array_equal(first, ops.attention(q, k, v))
    assert np.array_equal(first, single)


def test_out_argument(rng):
    q, k, v = qkv(rng, 1, 10, 12, 8, 9)
    out = np.empty((1, 10, 9), np.float32)
    assert ops.attention(q, k, v, out=out) is out
    np.testing.assert_allclose(out, attention_ref(q, k, v), rtol=2e-5, atol=2e-5)


def test_torch_cpu_tensors_are_viewed_without_copy(rng):
    torch = pytest.importorskip("torch")
    q, k, v = qkv(rng, 1, 20, 30, 8, 12)
    got = ops.attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v))
    np.testing.assert_allclose(got, attention_ref(q, k, v), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("shapes,match", [
    (((1, 5, 8), (1, 6, 4), (1, 6, 3)), r"k must be \[1, Nk, 8\] float32.*got \[1, 6, 4\] float32"),
    (((1, 5, 8), (2, 6, 8), (1, 6, 3)), r"k must be \[1, Nk, 8\]"),
    (((1, 5, 8), (1, 6, 8), (1, 7, 3)), r"v must be \[1, 6, Dv\] float32.*got \[1, 7, 3\]"),
    (((5, 8), (1, 6, 8), (1, 6, 3)), r"q must be \[B, Nq, Dk\] float32, got \[5, 8\]"),
    (((1, 5, 0), (1, 6, 0), (1, 6, 3)), r"Dk >= 1"),
    (((1, 5, 8), (1, 0, 8), (1, 0, 3)), r"at least one key"),
])
def test_bad_shapes_raise_value_error(shapes, match):
    q, k, v = (np.zeros(s, np.float32) for s in shapes)
    with pytest.raises(ValueError, match=match):
        ops.attention(q, k, v)


def test_bad_dtype_and_layout_raise_value_error():
    q = np.zeros((1, 5, 8), np.float32)
    with pytest.raises(ValueError, match=r"q must be \[B, Nq, Dk\] float32, got \[1, 5, 8\] float16"):
        ops.attention(q.astype(np.float16), q, q)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.attention(q, np.zeros((1, 8, 5), np.float32).transpose(0, 2, 1), q)
    with pytest.raises(ValueError, match="scale must be finite"):
        ops.attention(q, q, q, scale=float("inf"))


def test_empty_batches_and_queries(rng):
    q, k, v = qkv(rng, 0, 5, 6, 8, 3)
    assert ops.attention(q, k, v).shape == (0, 5, 3)
    q, k, v = qkv(rng, 2, 0, 6, 8, 3)
    assert ops.attention(q, k, v).shape == (2, 0, 3)


def strided_views(rng, batch=3, queries=45, keys=70, dk=8, dv=24, heads=3):
    """q a head slice of [B, Nq, heads*Dk], k a transposed-batch view of [Nk, B, Dk], v broadcast
    over the batch (stride 0), and a strided out: none of them C-contiguous."""
    q_all = rng.standard_normal((batch, queries, heads * dk)).astype(np.float32)
    q = q_all[:, :, dk:2 * dk]
    k = rng.standard_normal((keys, batch, dk)).astype(np.float32).transpose(1, 0, 2)
    v = np.broadcast_to(rng.standard_normal((1, keys, dv)).astype(np.float32), (batch, keys, dv))
    assert not any(a.flags.c_contiguous for a in (q, k, v))
    return q, k, v


def test_strided_views_match_contiguous_copies_without_a_copy(rng):
    q, k, v = strided_views(rng)
    expected = ops.attention(*(np.ascontiguousarray(a) for a in (q, k, v)), scale=0.3)
    buffer = np.full((q.shape[0], q.shape[1], 2 * v.shape[2] + 5), 7.0, np.float32)
    out = buffer[:, :, 5:5 + v.shape[2]]  # rows 2 * Dv + 5 apart
    assert ops.attention(q, k, v, scale=0.3, out=out) is out
    np.testing.assert_array_equal(out, expected)  # same kernel, same order of operations
    np.testing.assert_allclose(out, attention_ref(q, k, v, 0.3), rtol=2e-5, atol=2e-5)
    assert (buffer[:, :, :5] == 7.0).all() and (buffer[:, :, 5 + v.shape[2]:] == 7.0).all()


def test_native_entry_reads_strides_in_place(rng):
    """pyposert._C itself takes the strided arrays: nothing on the way makes a packed copy."""
    q, k, v = strided_views(rng, batch=2, queries=33, keys=129, dk=5, dv=40)
    out = np.zeros((2, 40, 33), np.float32).transpose(0, 2, 1)  # columns of a [B, Dv, Nq] buffer
    with pytest.raises(ValueError, match="C-contiguous"):  # the last axis must be unit-stride
        pyposert._C.attention_cpu(q, k, v, out, 1.0)
    out = np.zeros((33, 2, 40), np.float32).transpose(1, 0, 2)  # transposed batch
    pyposert._C.attention_cpu(q, k, v, out, 1.0)
    np.testing.assert_allclose(out, attention_ref(q, k, v, 1.0), rtol=2e-5, atol=2e-5)


def test_overlapping_out_is_refused(rng):
    q, k, v = qkv(rng, 1, 4, 6, 8, 3)
    out = np.lib.stride_tricks.as_strided(np.zeros(3, np.float32), (1, 4, 3), (0, 0, 4), writeable=True)
    with pytest.raises(ValueError, match="overlap"):
        ops.attention(q, k, v, out=out)


def test_torch_strided_views_are_read_in_place(rng):
    torch = pytest.importorskip("torch")
    q, k, v = strided_views(rng)
    tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v))
    heads = torch.from_numpy(rng.standard_normal((3, 45, 3 * 8)).astype(np.float32))
    heads[:, :, 8:16] = tq
    out = torch.zeros(3, 45, 2 * 24)
    ops.attention(heads[:, :, 8:16], tk.transpose(0, 1).contiguous().transpose(0, 1), tv, out=out[:, :, 24:])
    np.testing.assert_allclose(out[:, :, 24:].numpy(), attention_ref(q, k, v, 1.0), rtol=2e-5, atol=2e-5)
    assert (out[:, :, :24] == 0).all()
