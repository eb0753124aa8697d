"""engine.response_logits: the output layer projects only the rows that predict a response token,
for megatron's [s, b, h] hidden states and for packed [T, 1, h] ones, in the engine's [b, R] order;
values and gradients equal the full projection picked afterwards. The engine-level equality (an
update and a log-prob pass with it vs megatron's full logits, TP1/DP2/TP2/TP2 with sequence
parallelism/PP2) is in test_fast_paths.py."""
import torch

from mindspeed_rl.engine import packing
from mindspeed_rl.engine.batch import response_positions
from mindspeed_rl.engine.megatron_engine import MegatronEngine
from mindspeed_rl.engine.response_logits import ResponseLogits


def _rows():
    lengths, responses = [5, 9, 7], [2, 4, 3]
    att = torch.zeros(3, 9, dtype=torch.long)
    resp = torch.zeros(3, 4, dtype=torch.long)
    for i, (n, r) in enumerate(zip(lengths, responses)):
        att[i, :n], resp[i, :r] = 1, 1
    ids = torch.randint(1, 11, (3, 9), generator=torch.Generator().manual_seed(1)) * att
    return {"input_ids": ids, "attention_mask": att, "response_mask": resp}


def _picked_and_grads(layer, hidden, out_rows, weights):
    """[b, R, V] outputs from rows already picked ([b*R, 1, V]) and the grads of a weighted sum."""
    layer.zero_grad()
    hidden.grad = None
    (out_rows * weights).sum().backward()
    return out_rows.detach(), hidden.grad.clone(), layer.weight.grad.clone()


def test_output_layer_projects_only_response_rows_bshd_and_packed():
    torch.manual_seed(0)
    mb = _rows()
    b, s = mb["input_ids"].shape
    layer = torch.nn.Linear(8, 11, bias=False)
    hook = ResponseLogits(layer)
    hidden = torch.randn(s, b, 8, requires_grad=True)
    pos = response_positions(mb["attention_mask"], mb["response_mask"])  # [b, R]
    weights = torch.randn(*pos.shape, 11)

    # megatron's way: every position projected, then the response positions picked
    full = layer(hidden).transpose(0, 1)  # [b, s, V]
    ref = full.gather(1, pos.unsqueeze(-1).expand(-1, -1, 11))
    ref_out, ref_hidden_grad, ref_w_grad = _picked_and_grads(layer, hidden, ref, weights)

    hook.select(MegatronEngine._response_rows(mb))
    rows = layer(hidden)
    assert rows.shape == (pos.numel(), 1, 11) and hook.calls == 1
    out, hidden_grad, w_grad = _picked_and_grads(layer, hidden, rows.transpose(0, 1).view(*pos.shape, 11), weights)
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert torch.allclose(hidden_grad, ref_hidden_grad, atol=1e-6) and torch.allclose(w_grad, ref_w_grad, atol=1e-6)
    assert ref_hidden_grad.abs().sum() > 0.1

    # one-shot: a forward nobody asked for sees every row
    assert layer(hidden).shape == (s, b, 11) and hook.calls == 1

    # packed (THD): the same tokens end to end; the picked rows are the same positions of each row
    packed = packing.pack(mb["input_ids"], mb["attention_mask"])
    keep = mb["attention_mask"].bool()
    packed_hidden = hidden.detach().transpose(0, 1)[keep].unsqueeze(1).requires_grad_(True)  # [T, 1, h]
    hook.select(MegatronEngine._response_rows(dict(mb, packed_rows=packed)))
    rows = layer(packed_hidden)
    out_packed = rows.transpose(0, 1).view(*pos.shape, 11)
    mask = mb["response_mask"].bool()  # masked entries are clamped differently (never read)
    assert torch.allclose(out_packed.detach()[mask], ref_out[mask], atol=1e-6) and hook.calls == 2
    hook.remove()
    assert layer(hidden).shape == (s, b, 11) and hook.calls == 2
