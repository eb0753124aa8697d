"""The preprocessor's fast paths against their references: the numpy indexed writer against
megatron-core's builder, the byte-level round-trip check against ``decode``, the block reader
against row-by-row reading, and the chunk encoder against per-row encoding."""
import json
import os
import pickle
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.paths import FIXTURES
from mindspeed_rl.data import PromptDataset
from mindspeed_rl.data.encoding import EncoderSpec, RowEncoder
from mindspeed_rl.data.indexed import IndexedFileWriter
from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
from mindspeed_rl.data.readers import RawRow, iter_blocks, iter_rows
from mindspeed_rl.data.templates import load_template
from mindspeed_rl.data.verify import ByteLevelChecker

TOK_DIR = str(FIXTURES / "qwen2_tokenizer")
DATA = FIXTURES / "data"


@pytest.fixture(scope="module")
def hf_tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOK_DIR)


@pytest.fixture(scope="module")
def backend(hf_tok):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())


@pytest.fixture(scope="module")
def checker(backend):
    c = ByteLevelChecker.for_tokenizer(backend)
    assert c is not None
    return c


# -- indexed files ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.uint8])
def test_indexed_writer_is_byte_identical_to_megatron_builder(tmp_path, dtype):
    from mindspeed_rl.data.indexed import _indexed_module

    IndexedDataset, IndexedDatasetBuilder = _indexed_module().IndexedDataset, _indexed_module().IndexedDatasetBuilder
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 200, size=n).astype(dtype) for n in (5, 0, 1, 17, 3, 0, 250)]
    ref = IndexedDatasetBuilder(str(tmp_path / "ref.bin"), dtype=dtype)
    for s in seqs:
        ref.add_document(s, [s.size])
    ref.finalize(str(tmp_path / "ref.idx"))
    ours = IndexedFileWriter(str(tmp_path / "ours.bin"), dtype=dtype)
    ours.add_many(np.concatenate(seqs[:3]), [s.size for s in seqs[:3]])  # two chunks
    ours.add_many(np.concatenate(seqs[3:]), [s.size for s in seqs[3:]])
    ours.finalize(str(tmp_path / "ours.idx"))
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"ref{ext}").read_bytes(), ext
    ds = IndexedDataset(str(tmp_path / "ours"), mmap=True)
    assert len(ds) == len(seqs) and ds.document_indices.tolist() == list(range(len(seqs) + 1))
    for i, s in enumerate(seqs):
        assert ds[i].dtype == dtype and ds[i].tolist() == s.tolist()


def test_indexed_writer_rejects_inconsistent_lengths(tmp_path):
    w = IndexedFileWriter(str(tmp_path / "x.bin"))
    with pytest.raises(ValueError, match="lengths sum to 4, values hold 3"):
        w.add_many(np.arange(3), [2, 2])
    w.close()


# -- round-trip check ---------------------------------------------------------------------------

def test_checker_bytes_decode_like_the_tokenizer_for_every_token(backend, checker):
    n = checker.lengths.size
    assert n == backend.get_vocab_size(with_added_tokens=True)
    decoded = backend.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
    for i in range(n):
        raw = checker.blob[checker.starts[i]:checker.starts[i] + checker.lengths[i]].tobytes()
        assert raw.decode("utf-8", errors="replace") == decoded[i], i


def _flat(backend, texts):
    enc = backend.encode_batch(texts, add_special_tokens=False)
    lengths = np.array([len(e.ids) for e in enc], dtype=np.int32)
    return [e.ids for e in enc], np.array([i for e in enc for i in e.ids], dtype=np.int32), lengths


def test_checker_is_exact(backend, checker):
    texts = ["<|im_start|>user\nhéllo wörld 你好 ∑ 🙂\n\n  x<|im_end|>\n", "", "a", "\\boxed{\\frac{1}{2}}"]
    _, ids, lengths = _flat(backend, texts)
    assert checker.matches(ids, lengths, texts)
    assert not checker.matches(ids, lengths, texts[:3] + ["\\boxed{\\frac{1}{3}}"])  # one byte differs
    # the same bytes split differently over rows is a mismatch too
    assert not checker.matches(ids, lengths, [texts[0][:-1], texts[0][-1:], "a", texts[3]])
    bad_ids = ids.copy()
    bad_ids[-1] = checker.lengths.size  # an id outside the vocabulary
    assert not checker.matches(bad_ids, lengths, texts)


def test_checker_only_for_byte_level_decoders():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    assert ByteLevelChecker.for_tokenizer(tok) is None


def _spec(hf_tok, **kw):
    return EncoderSpec(
        tokenizer_json=hf_tok.backend_tokenizer.to_str(), template=load_template("qwen_r1").to_dict(), handler="flat",
        map_keys={"prompt": "problem", "query": None, "response": "answer", "system": None}, handler_module=None,
        system_prompt=None, max_prompt_length=kw.pop("max_prompt_length", 0), verify_roundtrip=True,
        special_token_texts=["<|endoftext|>", "<|im_end|>", "<|im_start|>"], **kw)


def test_chunk_encoder_matches_per_row_encoding_and_rejects_non_nfc(hf_tok):
    rows = [json.loads(line) for line in open(DATA / "math500_sample30.jsonl")]
    decomposed = unicodedata.normalize("NFD", "café")  # the NFC normalizer changes it: ids != text
    rows[4] = {"problem": f"Is {decomposed} a word?", "answer": "yes"}
    raw = [RawRow(i, "f", i, r) for i, r in enumerate(rows)]
    enc = RowEncoder(_spec(hf_tok, max_prompt_length=400))
    template = load_template("qwen_r1")
    for _ in range(2):  # the first chunk is cross-checked by decoding, later ones use the byte check
        out = enc.encode_chunk(raw)
        assert enc._checker is not None
        reasons = {r[0]: r[3] for r in out.rejects}
        too_long = {i for i, r in enumerate(rows) if len(hf_tok.encode(template.render(r["problem"]))) > 400}
        assert reasons == {4: "roundtrip_mismatch", **{i: "prompt_too_long" for i in too_long}}
        kept = [i for i in range(len(rows)) if i not in reasons]
        assert out.indices.tolist() == kept and out.rows == len(rows)
        assert out.lengths.sum() == out.ids.size and out.ids.dtype == np.int32
        for k, i in enumerate(kept):
            ref = hf_tok.encode(template.render(rows[i]["problem"]), add_special_tokens=False)
            assert out.prompt(k).tolist() == ref
            assert out.label(k) == rows[i]["answer"]


def test_pipeline_counts_roundtrip_mismatch_with_workers(tmp_path):
    rows = [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(40)]
    rows[7]["problem"] = unicodedata.normalize("NFD", "Résumé: what is 6+2?")
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = preprocess(PreprocessConfig(input=str(path), handler="flat", tokenizer_name_or_path=TOK_DIR,
                                       output_prefix=str(tmp_path / "out" / "ds"), workers=2, chunk_size=6,
                                       max_reject_fraction=0.05, progress=False), log=lambda *_: None)
    assert meta["rejects_by_reason"] == {"roundtrip_mismatch": 1} and meta["counts"]["rows_written"] == 39
    rejects = [json.loads(line) for line in open(tmp_path / "out" / "ds_rejects.jsonl")]
    assert [(r["index"], r["row_in_file"], r["reason"]) for r in rejects] == [(7, 7, "roundtrip_mismatch")]
    ds = PromptDataset(str(tmp_path / "out" / "ds"))
    assert [ds[i].label for i in range(39)] == [r["answer"] for k, r in enumerate(rows) if k != 7]
    # nothing but the dataset is left: no temp files, no worker spec file
    assert sorted(os.listdir(tmp_path / "out")) == ["ds_label.bin", "ds_label.idx", "ds_meta.json",
                                                     "ds_prompt.bin", "ds_prompt.idx", "ds_rejects.jsonl"]


def test_failed_run_with_workers_leaves_nothing(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"problem": "" if i % 2 else "q", "answer": "1"}) + "\n" for i in range(20)))
    with pytest.raises(Exception, match="10 of 20 rows rejected"):
        preprocess(PreprocessConfig(input=str(path), handler="flat", tokenizer_name_or_path=TOK_DIR,
                                    output_prefix=str(tmp_path / "out" / "ds"), workers=2, chunk_size=4,
                                    progress=False), log=lambda *_: None)
    assert sorted(os.listdir(tmp_path / "out")) == ["ds_rejects.jsonl"]


# -- block reader ---------------------------------------------------------------------------------

def test_blocks_give_the_same_rows_as_row_reading(tmp_path):
    lines = [json.dumps({"problem": f"p{i}", "answer": str(i), "x": i}) for i in range(11)]
    lines.insert(3, "")  # blank lines are not rows
    lines.insert(6, "{broken")
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.Table.from_pylist([{"problem": f"q{i}", "answer": str(i)} for i in range(9)]),
                   tmp_path / "b.parquet")
    (tmp_path / "c.json").write_text(json.dumps([{"problem": "r", "answer": "1"}, 5]))
    paths = [tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "c.json"]
    cols = {str(p): ["problem", "answer"] for p in paths}
    for limit in (None, 4, 14, 22, 100):
        rows = list(iter_rows(paths, columns=cols, limit=limit))
        blocks = list(iter_blocks(paths, columns=cols, limit=limit, block_size=4))
        assert all(0 < len(b) <= 4 for b in blocks)
        assert len({(b.file, b.index) for b in blocks}) == len(blocks)
        assert [r for b in blocks for r in b.rows()] == rows
        assert [r.index for r in rows] == list(range(len(rows)))
        assert len(rows) == min(limit or 10**9, 12 + 9 + 2)
    rows = list(iter_rows(paths, columns=cols))
    assert rows[5].data is None and "line 7" in rows[5].error  # line numbers count the blank line
    assert [r.row_in_file for r in rows if r.file.endswith("b.parquet")] == list(range(9))
    assert rows[-1].data is None and rows[-1].error == "row is not a JSON object"
    assert all(set(r.data) == {"problem", "answer"} for r in rows if r.data is not None)


def test_parquet_blocks_pickle_only_their_rows(tmp_path):
    table = pa.Table.from_pylist([{"problem": "x" * 1000, "answer": "1"}] * 2000)
    pq.write_table(table, tmp_path / "big.parquet")
    blocks = list(iter_blocks([Path(tmp_path / "big.parquet")], block_size=100))
    assert len(blocks) == 20
    assert max(len(pickle.dumps(b)) for b in blocks) < 3 * 100 * 1000
