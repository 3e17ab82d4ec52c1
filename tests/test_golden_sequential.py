"""Block-sequential calibration (golden.calib.quantize_sequential) and the GPTQ column loop
(golden.gptq): the cached block replay gives every stage exactly the calibration inputs a full
pass over the partly quantized model gives; stages follow the layers' shared inputs; act-order
and static groups; the loop against the published algorithm; AXE's guarantee with both on."""

import pytest
import torch

from golden.axe import AxeLinear, guarantee_holds, quantize_model
from golden.calib import accumulate_hessians, find_blocks, linear_names, quantize_sequential
from golden.gptq import gptq_loop, group_order, reference_gptq
from golden.microscopiq import MsqParams, quantize_module_msq


def _tiny_llama(layers: int = 3):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def _llama_calib():
    ids = torch.randint(0, 128, (3, 24), generator=torch.Generator().manual_seed(1))
    return lambda m: [m(r[None]) for r in ids]


def _rtn_(lin: torch.nn.Linear) -> None:
    """A stand-in quantizer: weights rounded to a coarse grid, in place."""
    with torch.no_grad():
        lin.weight.copy_(torch.round(lin.weight * 4) / 4)


class _Branchy(torch.nn.Module):
    """A Linear before a block list, three blocks (each Linear -> ReLU -> two Linears on the
    same input), a Linear after: exercises the stages outside the blocks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.stem = torch.nn.Linear(6, 8)
        self.blocks = torch.nn.ModuleList(_Block() for _ in range(3))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x, scale: float = 1.0):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x, scale=scale)
        return self.head(x)


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 8)
        self.c = torch.nn.Linear(8, 8)

    def forward(self, x, scale: float = 1.0):
        h = torch.relu(self.a(x)) * scale
        return x + self.b(h) - self.c(h)


@pytest.mark.parametrize("capture", ["sequential", "block"])
@pytest.mark.parametrize("which", ["llama", "branchy"])
def test_each_stage_sees_the_partly_quantized_model(which, capture):
    """The reference: for each stage in turn, a full calibration pass over a copy in which
    every earlier stage is quantized; its Gram matrices must equal the replay's."""
    if which == "llama":
        model, calib = _tiny_llama(), _llama_calib()
    else:
        xs = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(3))
        model, calib = _Branchy().eval(), lambda m: [m(x, scale=0.5) for x in xs]
    names = linear_names(model, lambda n, m: not n.endswith("lm_head"))
    ref = _copy(model)
    stages, grams = [], {}

    def stage(stage_names, run):
        got = accumulate_hessians(model, None, stage_names, run=run)
        want = accumulate_hessians(ref, calib, stage_names)
        for n in stage_names:
            grams[n] = (got[n], want[n])
            _rtn_(dict(model.named_modules())[n])
            _rtn_(dict(ref.named_modules())[n])
        stages.append(stage_names)

    quantize_sequential(model, calib, names, stage, capture=capture)
    assert sorted(n for s in stages for n in s) == sorted(names)
    for n, ((g, rows), (w, wrows)) in grams.items():
        assert rows == wrows, n
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6, msg=n)
    if which == "llama" and capture == "sequential":
        block0 = [[n.split(".", 3)[-1] for n in s] for s in stages[:4]]
        assert block0 == [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                          ["self_attn.o_proj"], ["mlp.gate_proj", "mlp.up_proj"],
                          ["mlp.down_proj"]]  # fmt: skip
    if which == "branchy":
        assert stages[0] == ["stem"] and stages[-1] == ["head"]
        inner = [["a"], ["b", "c"]] if capture == "sequential" else [["a", "b", "c"]]
        assert [[n.rsplit(".", 1)[1] for n in s] for s in stages[1 : 1 + len(inner)]] == inner


def _copy(model):
    import copy

    return copy.deepcopy(model)


def test_find_blocks_and_a_model_without_blocks():
    m = _Branchy()
    assert find_blocks(m, linear_names(m))[0] == "blocks"
    cnn = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert find_blocks(cnn, linear_names(cnn)) is None
    xs = torch.randn(8, 4)
    for capture, want in (("sequential", [["0"], ["2"]]), ("block", [["0", "2"]])):
        seen = []
        quantize_sequential(cnn, lambda m: m(xs), linear_names(cnn),
                            lambda s, run, seen=seen: seen.append(s), capture=capture)  # fmt: skip
        assert seen == want


class _NotAChain(torch.nn.Module):
    """Blocks applied to the same input in parallel: replaying them as a chain would be wrong."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(2))

    def forward(self, x):
        return sum(b(x) for b in self.blocks)


def test_blocks_that_do_not_chain_fall_back_to_full_passes():
    m = _NotAChain()
    m.blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(4, 4)) for _ in range(2))
    xs = torch.randn(3, 4)
    ref = _copy(m)
    seen = []

    def stage(names, run):
        got = accumulate_hessians(m, None, names, run=run)
        want = accumulate_hessians(ref, lambda mm: mm(xs), names)
        for n in names:
            torch.testing.assert_close(got[n][0], want[n][0])
            _rtn_(dict(m.named_modules())[n])
            _rtn_(dict(ref.named_modules())[n])
        seen.append(names)

    with pytest.warns(UserWarning, match="do not form a chain.*full pass"):
        quantize_sequential(m, lambda mm: mm(xs), linear_names(m), stage)
    assert seen == [["blocks.0.0", "blocks.1.0"]]  # parallel: one input, one stage
    with pytest.raises(ValueError, match="capture must be one of sequential, block"):
        quantize_sequential(m, lambda mm: None, linear_names(m), lambda s, r: None,
                            capture="float")  # fmt: skip


def test_only_the_blocks_up_to_the_last_selected_one_run():
    model = _tiny_llama(3)
    names = [n for n in linear_names(model) if n.startswith("model.layers.0.")]
    calls = []
    hook = model.model.layers[2].register_forward_pre_hook(lambda *a: calls.append(1))
    stages = []
    quantize_sequential(model, _llama_calib(), names, lambda s, run: stages.append(s),
                        capture="block")  # fmt: skip
    hook.remove()
    assert stages == [[n for n in names]] and len(calls) == 3  # the capture pass only


@pytest.mark.parametrize("capture", ["sequential", "block", "float"])
def test_axe_guarantee_holds_with_act_order_and_sequential_capture(capture):
    model = _tiny_llama()
    q = quantize_model(
        model, _llama_calib(), weight_bits=4, input_bits=8, acc_bits=12, tile=16,
        include=lambda n, m: not n.endswith("lm_head"), gram=True, input_granularity="token",
        capture=capture, act_order=True,
    )  # fmt: skip
    lins = [m for m in q.modules() if isinstance(m, AxeLinear)]
    assert len(lins) == 21
    for lin in lins:
        assert guarantee_holds(lin.q_int, 8, lin.input_signed, 12, 16)
    # and the budget binds: plain GPTQ at the same setting overflows somewhere
    plain = quantize_model(
        model, _llama_calib(), weight_bits=4, input_bits=8, acc_bits=None, tile=16,
        include=lambda n, m: not n.endswith("lm_head"), gram=True, input_granularity="token",
        capture=capture, act_order=True,
    )  # fmt: skip
    assert not all(guarantee_holds(m.q_int, 8, True, 12, 16) for m in plain.modules()
                   if isinstance(m, AxeLinear))  # fmt: skip


def test_weight_only_gptq_keeps_float_inputs():
    model = _tiny_llama(2)
    q = quantize_model(
        model, _llama_calib(), weight_bits=4, input_bits=None, acc_bits=None,
        include=lambda n, m: not n.endswith("lm_head"), gram=True, capture="sequential",
    )  # fmt: skip
    lin = q.model.layers[0].self_attn.q_proj
    assert isinstance(lin, AxeLinear) and lin.input_bits is None
    x = torch.randn(5, 32)
    w = lin.q_int.float() * lin.w_scale[:, None]
    torch.testing.assert_close(lin(x), x @ w.T)
    assert int(lin.q_int.min()) >= -8 and int(lin.q_int.max()) <= 7
    with pytest.raises(ValueError, match="acc_bits needs integer inputs"):
        quantize_model(model, _llama_calib(), weight_bits=4, input_bits=None, acc_bits=16)


def test_microscopiq_sequential_and_act_order_run_on_a_transformer():
    model = _tiny_llama(2)
    sel = lambda n, m: not n.endswith("lm_head")  # noqa: E731
    p = MsqParams(b=4, T=16)
    outs = {}
    for capture, ao in (("float", False), ("sequential", True), ("block", True)):
        q, rep = quantize_module_msq(model, p, calibrate=_llama_calib(), include=sel, gram=True,
                                     capture=capture, act_order=ao)  # fmt: skip
        assert len(rep) == 4  # gate/up: the layers with a multiple of M = 64 outputs
        outs[capture] = q.model.layers[1].mlp.up_proj.weight.detach().clone()
    assert not torch.equal(outs["float"], outs["sequential"])


# -- the column loop ---------------------------------------------------------------------------


def _layer(out=48, k=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, k, generator=g)
    x = torch.randn(512, k, generator=g) * torch.rand(k, generator=g) * 3
    return w, x.double().T @ x.double()


def _loop_codes(w, gram, bits, **kw):
    qmax = 2 ** (bits - 1) - 1
    scale = (w.abs().amax(1) / qmax).to(torch.float64)
    q = torch.zeros(w.shape, dtype=torch.int64)

    def col(wc, c):
        q[:, c] = torch.round(wc / scale).clamp(-qmax - 1, qmax).to(torch.int64)
        return (q[:, c] * scale).to(wc.dtype)

    gptq_loop(w.clone(), None, col, gram=gram, **kw)
    return q


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_loop_sees_the_published_floats_column_by_column(dtype):
    """The loop holds each block column-major and divides by a host float; every column it hands
    the callback is still the very float vector of the published [out, cols] formulation
    (e = (w - q) / d, w -= e h^T as a product then a subtraction, lazy block updates)."""
    w, gram = _layer(k=80)
    w = w.to(dtype)
    scale = (w.abs().amax(1) / 7).to(torch.float64)

    def rtn(wc):
        return (torch.round(wc / scale).clamp(-8, 7) * scale).to(wc.dtype)

    seen = []
    gptq_loop(w.clone(), None, lambda wc, c: (seen.append(wc.clone()), rtn(wc))[1],
              gram=gram, block_size=32)  # fmt: skip
    h = (2 * gram).to(dtype)
    h.diagonal().add_(0.01 * torch.mean(torch.diag(h)))
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    ref, wr = [], w.clone()
    for i1 in range(0, 80, 32):
        i2 = min(i1 + 32, 80)
        w1, h1 = wr[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        err1 = torch.zeros(48, i2 - i1, dtype=dtype)
        for i in range(i2 - i1):
            ref.append(w1[:, i].clone())
            e = (w1[:, i] - rtn(w1[:, i])) / h1[i, i]
            w1[:, i:] -= e[:, None] @ h1[i, i:][None]
            err1[:, i] = e
        wr[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    assert len(seen) == 80
    assert all(torch.equal(a, b) for a, b in zip(seen, ref, strict=True))


@pytest.mark.parametrize("act_order", [False, True])
def test_the_loop_agrees_with_the_published_algorithm(act_order):
    w, gram = _layer()
    ours = _loop_codes(w, gram, 4, act_order=act_order, block_size=32)
    ref = reference_gptq(w, gram, 4, act_order=act_order, block_size=32)
    assert (ours == ref).double().mean() >= 0.999  # float32 rounding may flip a rare tie


def test_act_order_changes_the_codes_and_lowers_the_proxy_loss():
    w, gram = _layer(seed=4)
    h = 2 * gram.float()

    def loss(q):
        scale = w.abs().amax(1) / 7
        d = w - q.float() * scale[:, None]
        return float(torch.einsum("ok,kl,ol->", d, h, d))

    plain, ordered = _loop_codes(w, gram, 4), _loop_codes(w, gram, 4, act_order=True)
    assert not torch.equal(plain, ordered)
    assert loss(ordered) < loss(plain)


def test_group_order_keeps_groups_whole_and_blocks_inside_them():
    diag = torch.tensor([1.0, 1, 1, 1, 5, 5, 5, 5, 9, 9])  # groups of 4: 4, 20, 18 (short last)
    order = group_order(diag, 4)
    assert order.tolist() == [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]
    w, gram = _layer(out=8, k=10)
    gram = gram * torch.outer(diag, diag).double()
    firsts = []

    def hook(w1, col0):
        firsts.append((col0, w1.shape[1]))

    gptq_loop(w.clone(), None, lambda wc, c: torch.round(wc), gram=gram, act_order=True,
              static_groups=4, block_size=4, block_hook=hook)  # fmt: skip
    assert firsts == [(4, 4), (8, 2), (0, 4)]  # a lazy block never straddles two groups
    with pytest.raises(ValueError, match="static_groups must be a positive int"):
        gptq_loop(w.clone(), None, lambda wc, c: wc, gram=gram, act_order=True, static_groups=0)
    with pytest.raises(ValueError, match="order must be a permutation"):
        gptq_loop(w.clone(), None, lambda wc, c: wc, gram=gram, order=torch.zeros(10))
