"""Shard layouts against Megatron's documented order, written out by hand."""
import pytest
import torch

from mindspeed_rl.models import ParallelismError, UnsupportedModelError, get_bridge, layouts as L, naming
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config


def labelled(rows, tag):
    # row i of tensor `tag` holds tag*1000 + i everywhere: any misplaced row is visible
    return (tag * 1000 + torch.arange(rows, dtype=torch.float32)).unsqueeze(1).expand(rows, 3).clone()


def test_qkv_groups_query_heads_with_their_kv_head():
    heads, groups, d, tp = 8, 4, 2, 2
    q, k, v = labelled(heads * d, 1), labelled(groups * d, 2), labelled(groups * d, 3)
    shards = L.QKV(heads, groups, d).split([q, k, v], tp)
    # Megatron: per query group g: [q heads 2g, 2g+1 ; k_g ; v_g]; TP rank 1 owns groups 2, 3
    expected_rank1 = torch.cat([q[8:12], k[4:6], v[4:6], q[12:16], k[6:8], v[6:8]])
    assert torch.equal(shards[1], expected_rank1)
    assert torch.equal(shards[0][:4], q[0:4]) and torch.equal(shards[0][4:6], k[0:2])
    back = L.QKV(heads, groups, d).to_hf(shards)
    assert all(torch.equal(a, b) for a, b in zip(back, [q, k, v]))


def test_qkv_bias_is_grouped_like_the_weight():
    layout = L.QKV(4, 2, 3)
    q, k, v = torch.arange(12.0), 100 + torch.arange(6.0), 200 + torch.arange(6.0)
    (fused,) = layout.split([q, k, v], 1)
    assert fused.tolist() == [0, 1, 2, 3, 4, 5, 100, 101, 102, 200, 201, 202,
                              6, 7, 8, 9, 10, 11, 103, 104, 105, 203, 204, 205]


def test_gate_up_per_rank_and_row_parallel():
    gate, up = labelled(8, 1), labelled(8, 2)
    s = L.GateUp(8).split([gate, up], 4)
    assert torch.equal(s[2], torch.cat([gate[4:6], up[4:6]]))
    assert all(torch.equal(a, b) for a, b in zip(L.GateUp(8).to_hf(s), [gate, up]))
    w = torch.arange(24.0).reshape(3, 8)
    r = L.RowParallel().split([w], 2)
    assert torch.equal(r[1], w[:, 4:]) and torch.equal(L.RowParallel().to_hf(r)[0], w)


def test_vocab_padding_and_unpadding():
    emb = labelled(10, 1)
    layout = L.VocabParallel(10, 12)
    s = layout.split([emb], 4)
    assert [t.shape[0] for t in s] == [3, 3, 3, 3]
    assert torch.equal(s[3][0], emb[9]) and not s[3][1:].any()
    assert torch.equal(layout.to_hf(s)[0], emb)


def test_stage_params_local_vs_global_numbering_uneven():
    b = get_bridge(tiny_qwen2_config(num_hidden_layers=6, tie_word_embeddings=True))
    assert list(b.layers_for_stage(1, 3, [1, 3, 2])) == [1, 2, 3]
    stage1 = b.stage_params(1, 3, 256, [1, 3, 2])
    names = [s.mcore_name for s in stage1]
    assert "decoder.layers.0.input_layernorm.weight" in names and "decoder.layers.3.input_layernorm.weight" not in names
    spec = next(s for s in stage1 if s.mcore_name == "decoder.layers.2.mlp.linear_fc2.weight")
    assert spec.global_name == "decoder.layers.3.mlp.linear_fc2.weight"
    assert spec.hf_names == ("model.layers.3.mlp.down_proj.weight",)
    last = b.stage_params(2, 3, 256, [1, 3, 2])
    assert last[-1].mcore_name == "output_layer.weight" and last[-1].is_tied_copy
    assert not get_bridge(tiny_qwen2_config()).stage_params(0, 1, 256)[-1].is_tied_copy
    assert not any(s.mcore_name == "output_layer.weight" for s in b.stage_params(0, 1, 256))  # tied, PP1


def test_te_names_and_layer_shift():
    n = "decoder.layers.3.input_layernorm.weight"
    assert naming.to_te_name(n) == "decoder.layers.3.self_attention.linear_qkv.layer_norm_weight"
    assert naming.from_te_name("module.decoder.layers.1.mlp.linear_fc1.layer_norm_weight") == \
        "module.decoder.layers.1.pre_mlp_layernorm.weight"
    assert naming.from_te_name("decoder.final_layernorm.weight") == "decoder.final_layernorm.weight"
    assert naming.shift_layer_index(n, 5) == "decoder.layers.8.input_layernorm.weight"


def test_padded_vocab_and_validation():
    b = get_bridge(tiny_qwen2_config())
    assert b.padded_vocab_size(1) == 256 and b.padded_vocab_size(4, 1) == 252 and b.padded_vocab_size(3, 128) == 384
    with pytest.raises(ParallelismError, match="tp=16"):
        b.validate_parallelism(16, 1)
    with pytest.raises(UnsupportedModelError, match="yarn"):
        get_bridge(tiny_qwen2_config(rope_scaling={"rope_type": "yarn", "factor": 4.0}))
    with pytest.raises(UnsupportedModelError, match="use_sliding_window"):
        get_bridge(tiny_qwen2_config(use_sliding_window=True))


def test_llama_needs_only_its_mapping_file():
    cfg = tiny_qwen2_config(architectures=["LlamaForCausalLM"], model_type="llama")
    b = get_bridge(cfg)
    assert not b.add_qkv_bias and "model.layers.0.self_attn.q_proj.bias" not in b.hf_param_names()


def test_transformer_config_matches_hf():
    pytest.importorskip("megatron.core")
    b = get_bridge(tiny_qwen2_config(rope_theta=1e6))
    c = b.transformer_config(2, 2, num_layer_list=[1, 3])
    assert (c.num_query_groups, c.kv_channels, c.ffn_hidden_size, c.add_qkv_bias) == (4, 8, 96, True)
    assert c.normalization == "RMSNorm" and c.gated_linear_unit and not c.add_bias_linear
    assert c.pipeline_model_parallel_layout is not None
    assert b.gpt_model_kwargs(2)["rotary_base"] == 1000000 and b.gpt_model_kwargs(2)["vocab_size"] == 256


@pytest.mark.parametrize("layout,shapes,tp", [
    (L.QKV(8, 4, 2), [(16, 3), (8, 3), (8, 3)], 2),
    (L.QKV(8, 2, 2), [(16,), (4,), (4,)], 2),
    (L.GateUp(8), [(8, 5), (8, 5)], 4),
    (L.VocabParallel(10, 12), [(10, 3)], 4),
    (L.VocabParallel(10, 16), [(10, 3)], 2),
    (L.RowParallel(), [(3, 8)], 2),
    (L.ColumnParallel(8), [(8, 3)], 2),
    (L.Replicated(), [(5,)], 2),
])
def test_streaming_pieces_equal_whole_tensors(layout, shapes, tp):
    hf = [torch.randn(s) for s in shapes]
    shards = layout.split(hf, tp)
    for r in range(tp):
        parts = [t if rows is None else t[rows[0]:rows[1]] for t, rows in zip(hf, layout.hf_rows(tp, r))]
        flat = torch.cat([p.reshape(-1) for p in layout.local_pieces(parts, tp, r)])
        assert torch.equal(flat, shards[r].reshape(-1))
    for full, pieces in zip(hf, layout.hf_pieces(shards)):
        assert torch.equal(torch.cat([p.reshape(-1) for p in pieces]), full.reshape(-1))
