"""Multiple-choice datasets: GPQA Diamond, read from a file the user provides.

GPQA is gated by its authors (they ask that it is not redistributed, to keep it out of training
data), so this suite never ships or downloads it: ``dataset.path`` (or
``$MINDSPEED_RL_DATA_DIR/gpqa/gpqa_diamond.csv``) must point at the file you downloaded.

Each row has the question, the correct answer and three incorrect ones. The four answers are
shuffled per problem with a generator seeded by ``(dataset.choice_seed, record id)``: the same
problem gets the same order in every run and on every machine, whatever the file order, and the
correct answer lands on each letter equally often over many problems. The letter it lands on is
the problem's gold answer (recorded in samples.jsonl as ``gold``).

The problem text given to the chat template (``PROMPT_TEMPLATE``)::

    {question}

    A) {choice A}
    B) {choice B}
    C) {choice C}
    D) {choice D}

    Answer with the letter of the correct choice (A, B, C or D).

With the R1-Zero template (``qwen_r1``) the model then reasons in <think> and answers in
<answer>; ``choice.extract_choice`` reads the letter from the box, the answer tag or an answer
phrase.
"""
from __future__ import annotations

import csv
import hashlib
import random
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from mindspeed_rl.data.readers import InputError, iter_rows

LETTERS = "ABCD"
GPQA_SOURCE = ("https://huggingface.co/datasets/Idavidrein/gpqa (gated: log in, accept the authors' terms, "
               "then download gpqa_diamond.csv, 198 questions; also in the zip at https://github.com/idavidrein/gpqa)")
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
PROMPT_TEMPLATE = ("{question}\n\n" + "\n".join(f"{x}) {{{x}}}" for x in LETTERS)
                   + "\n\nAnswer with the letter of the correct choice (A, B, C or D).")


def shuffle_choices(correct: str, wrong: Sequence[str], seed: int, key: str) -> Tuple[List[str], str]:
    """(the four answers in shuffled order, the letter of the correct one); deterministic in (seed, key)."""
    digest = hashlib.blake2b(f"{int(seed)}:{key}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "little"))
    options = [correct, *wrong]
    order = list(range(len(options)))
    rng.shuffle(order)
    shuffled = [options[i] for i in order]
    return shuffled, LETTERS[order.index(0)]


def format_question(question: str, options: Sequence[str]) -> str:
    return PROMPT_TEMPLATE.format(question=question.strip(), **{x: o.strip() for x, o in zip(LETTERS, options)})


def _rows(path: Path) -> Iterator[Tuple[int, str, Dict[str, Any]]]:
    """(row index, where, row) for a CSV (GPQA's own format) or any json/jsonl/parquet file."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for i, row in enumerate(reader):
                yield i, f"{path} row {i + 2}", row  # +2: the header is line 1
        return
    for row in iter_rows([path]):
        if row.data is None:
            raise InputError(f"{row.file} row {row.row_in_file}: {row.error}")
        yield row.index, f"{row.file} row {row.row_in_file}", row.data


def missing_file_message(name: str, path: str) -> str:
    return (f"dataset {name}: {path} not found. GPQA is gated and never shipped or downloaded by this suite; get it "
            f"from {GPQA_SOURCE} and pass dataset.path=<gpqa_diamond.csv> (a CSV, jsonl or parquet file with the "
            f"columns {list(GPQA_COLUMNS)}; optional 'Record ID' and 'High-level domain')")


def read_choice_rows(path: Path, id_key: str, subject_key: str, seed: int) -> Iterator[Dict[str, Any]]:
    """One dict per problem: index, id, problem (formatted), answer (letter), groups, choices."""
    header_checked = False
    for index, where, row in _rows(path):
        if not header_checked:
            absent = [c for c in GPQA_COLUMNS if c not in row]
            if absent:
                raise InputError(f"{where}: columns {absent} missing (have {sorted(row)}); a GPQA file needs "
                                 f"{list(GPQA_COLUMNS)} - see {GPQA_SOURCE}")
            header_checked = True
        values = [row.get(c) for c in GPQA_COLUMNS]
        empty = [c for c, v in zip(GPQA_COLUMNS, values) if not isinstance(v, str) or not v.strip()]
        if empty:
            raise InputError(f"{where}: empty {empty}; fix or remove the row")
        pid = row.get(id_key)
        pid = str(pid).strip() if isinstance(pid, (str, int)) and str(pid).strip() else str(index)
        options, letter = shuffle_choices(values[1].strip(), [v.strip() for v in values[2:]], seed, pid)
        groups = {}
        subject = row.get(subject_key) if subject_key else None
        if isinstance(subject, str) and subject.strip():
            groups["subject"] = subject.strip()
        yield {"index": index, "id": pid, "problem": format_question(values[0], options), "answer": letter,
               "groups": groups, "choices": options}
