"""ListOps with the Long Range Arena grammar (Tay et al., ICLR 2021; Nangia & Bowman, 2018).

An expression is an operator applied to two or more arguments, each a digit 0..9 or a nested
expression, written ``[MAX 2 9 [MIN 4 7 ] 0 ]``. Its value, a digit, is the label (10 classes).

- ``MAX``, ``MIN``: largest and smallest argument.
- ``MED``: the *lower* median, ``sorted(args)[(len(args) - 1) // 2]``. For an even count this is the
  smaller of the two middle values (LRA's generator takes ``int(np.median(args))``, the floored mean of
  the two, which can differ: ``[MED 1 4 ]`` is 1 here and 2 there).
- ``SM``: sum modulo 10.

Token ids: 0 padding, digits ``'0'..'9'`` 1..10, ``[MAX [MIN [MED [SM`` 11..14, ``]`` 15 (16 in all).
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np

from ..errors import UserError
from .dataset import SeqDataset, TaskData
from .options import require_int


def _lower_median(args: list[int]) -> int:
    return sorted(args)[(len(args) - 1) // 2]


def _sum_mod_10(args: list[int]) -> int:
    return sum(args) % 10


OPERATORS: dict[str, Callable[[list[int]], int]] = {
    "[MAX": max,
    "[MIN": min,
    "[MED": _lower_median,
    "[SM": _sum_mod_10,
}
CLOSE = "]"
PAD_ID = 0
VOCAB: tuple[str, ...] = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, CLOSE)
TOKEN_IDS: dict[str, int] = {token: i for i, token in enumerate(VOCAB) if i != PAD_ID}
LISTOPS_VOCAB_SIZE = len(VOCAB)
LISTOPS_N_CLASSES = 10

_DIGIT_ID0 = TOKEN_IDS["0"]
_CLOSE_ID = TOKEN_IDS[CLOSE]
_OPERATOR_IDS = [TOKEN_IDS[op] for op in OPERATORS]
_OPERATOR_FNS = list(OPERATORS.values())
_SHORTEST_EXPRESSION = 4  # "[OP d d ]"

NESTED_ARGUMENT_PROB = 0.25
"""Chance that an argument is a nested expression while nesting is below ``max_depth`` (LRA's ``VALUE_P``)."""

MAX_DRAWS_WITHOUT_PROGRESS = 20_000
"""Give up when this many draws in a row are too short, too long or repeats."""

DEFAULT_MAX_DEPTH = 4
DEFAULT_MAX_ARGS = 5
DEFAULT_MIN_LENGTH = 16
DEFAULT_MAX_LENGTH = 128
DEFAULT_N_TRAIN = 2000
DEFAULT_N_TEST = 500
DEFAULT_SEED = 0

LISTOPS_SUMMARY = "ListOps (LRA grammar: MAX MIN MED SM, nested), token sequences, 10 classes"


def tokenize_listops(expr: str) -> list[int]:
    """Token ids of a whitespace-separated expression such as ``"[SM 3 [MAX 1 8 ] ]"``."""
    ids = []
    for token in expr.split():
        if token not in TOKEN_IDS:
            raise ValueError(f"unknown ListOps token {token!r}")
        ids.append(TOKEN_IDS[token])
    return ids


def decode_listops(ids: Sequence[int]) -> list[str]:
    """The tokens of a sequence of ids, without padding (pass only the first ``length`` ids)."""
    tokens = []
    for i in ids:
        if not PAD_ID < i < LISTOPS_VOCAB_SIZE:
            raise ValueError(f"{i} is not a ListOps token id (1..{LISTOPS_VOCAB_SIZE - 1})")
        tokens.append(VOCAB[i])
    return tokens


def evaluate_listops(tokens: list[str]) -> int:
    """The value of one expression given as tokens, e.g. ``["[MAX", "2", "[MIN", "4", "7", "]", "]"]``."""
    open_calls: list[tuple[str, list[int]]] = []
    result: int | None = None
    for position, token in enumerate(tokens):
        if token in OPERATORS:
            open_calls.append((token, []))
            continue
        if token == CLOSE:
            if not open_calls:
                raise ValueError(f"unmatched ']' at token {position}")
            op, args = open_calls.pop()
            if not args:
                raise ValueError(f"{op} at token {position} has no arguments")
            value = OPERATORS[op](args)
        elif token.isdigit() and len(token) == 1:
            value = int(token)
        else:
            raise ValueError(f"unknown ListOps token {token!r} at {position}")
        if open_calls:
            open_calls[-1][1].append(value)
        elif result is None:
            result = value
        else:
            raise ValueError(f"more than one top-level expression (token {position})")
    if open_calls:
        raise ValueError(f"{len(open_calls)} unclosed expression(s)")
    if result is None:
        raise ValueError("empty expression")
    return result


def _longest_expression(max_depth: int, max_args: int) -> int:
    length = 1  # a digit
    for _ in range(max_depth):
        length = 2 + max_args * length
    return length


def _check_options(n: int, max_depth: int, max_args: int, min_length: int, max_length: int) -> None:
    for name, value, least in (
        ("n", n, 0),
        ("max_depth", max_depth, 1),
        ("max_args", max_args, 2),
        ("min_length", min_length, 1),
        ("max_length", max_length, _SHORTEST_EXPRESSION),
    ):
        require_int("listops", name, value, least)
    if min_length > max_length:
        raise UserError(f"listops: min_length {min_length} is larger than max_length {max_length}")
    longest = _longest_expression(max_depth, max_args)
    if min_length > longest:
        raise UserError(
            f"listops: min_length {min_length} is unreachable: with max_depth {max_depth} and "
            f"max_args {max_args} the longest expression has {longest} tokens"
        )


def _sample_expression(
    rng: random.Random, ids: list[int], depth: int, max_depth: int, max_args: int, max_length: int
) -> int | None:
    """Append one random expression's ids and return its value; None once it cannot fit max_length.

    ``depth`` counts the open brackets including this one; each needs a closing token, so the
    sample is abandoned as soon as the ids so far plus the pending closes exceed ``max_length``.
    """
    op = rng.randrange(len(_OPERATOR_IDS))
    ids.append(_OPERATOR_IDS[op])
    args = []
    for _ in range(rng.randint(2, max_args)):
        if depth < max_depth and rng.random() < NESTED_ARGUMENT_PROB:
            value = _sample_expression(rng, ids, depth + 1, max_depth, max_args, max_length)
            if value is None:
                return None
        else:
            value = rng.randrange(10)
            ids.append(_DIGIT_ID0 + value)
        if len(ids) + depth > max_length:
            return None
        args.append(value)
    ids.append(_CLOSE_ID)
    return _OPERATOR_FNS[op](args)


def generate_listops(
    n: int,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_args: int = DEFAULT_MAX_ARGS,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = DEFAULT_SEED,
) -> SeqDataset:
    """``n`` distinct random expressions, as token ids right-padded with 0 to ``max_length``.

    Each expression has an operator at the root and 2..``max_args`` arguments per operator; below
    ``max_depth`` nested operators each argument is a nested expression with probability
    ``NESTED_ARGUMENT_PROB``, else a uniform digit (``max_depth=1`` gives flat lists). Expressions whose
    token count falls outside ``[min_length, max_length]`` or that repeat an earlier one are
    rejected and redrawn; after ``MAX_DRAWS_WITHOUT_PROGRESS`` rejections in a row it raises UserError
    (long expressions need room to branch: raise ``max_args`` or ``max_depth``). Labels are the
    expression values. The same arguments give the same data.
    """
    _check_options(n, max_depth, max_args, min_length, max_length)
    rng = random.Random(seed)
    seen: set[tuple[int, ...]] = set()
    sequences, labels = [], []
    draws_since_accept = 0
    while len(sequences) < n:
        if draws_since_accept == MAX_DRAWS_WITHOUT_PROGRESS:
            raise UserError(
                f"listops: found only {len(sequences)} of {n} distinct expressions with {min_length}..{max_length} "
                f"tokens ({draws_since_accept} draws in a row rejected); widen the length range or raise "
                "max_depth/max_args"
            )
        draws_since_accept += 1
        ids: list[int] = []
        value = _sample_expression(rng, ids, 1, max_depth, max_args, max_length)
        if value is None or len(ids) < min_length:
            continue
        key = tuple(ids)
        if key in seen:
            continue
        seen.add(key)
        draws_since_accept = 0
        sequences.append(ids)
        labels.append(value)

    x = np.full((n, max_length), PAD_ID, dtype=np.int64)
    for row, ids in zip(x, sequences):
        row[: len(ids)] = ids
    lengths = np.array([len(ids) for ids in sequences], dtype=np.int64)
    return SeqDataset.from_numpy(x, np.array(labels, dtype=np.int64), lengths)


def load_listops(
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_args: int = DEFAULT_MAX_ARGS,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = DEFAULT_SEED,
) -> TaskData:
    """Generated ListOps; no expression appears twice across train and test.

    The test split is drawn first, so it stays the same when only ``n_train`` changes.
    """
    require_int("listops", "n_train", n_train, 1)
    require_int("listops", "n_test", n_test, 1)
    data = generate_listops(
        n_test + n_train,
        max_depth=max_depth,
        max_args=max_args,
        min_length=min_length,
        max_length=max_length,
        seed=seed,
    )
    return TaskData(
        name="listops",
        train=data.select(slice(n_test, None)),
        test=data.select(slice(0, n_test)),
        n_classes=LISTOPS_N_CLASSES,
        input_kind="tokens",
        d_input=LISTOPS_VOCAB_SIZE,
        seq_len=max_length,
        description=(
            f"ListOps (LRA grammar), {min_length}..{max_length} tokens, depth <= {max_depth}, "
            f"<= {max_args} args, seed {seed}, 10 classes"
        ),
    )
