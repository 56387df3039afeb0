"""Datasets: embedded digits, the ListOps generator, MNIST IDX loading, and the task registry."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from pspike_neuro.data import (
    PSDIGITS_PERMUTATION,
    TASKS,
    SeqDataset,
    TaskData,
    bitreversal_permutation,
    decode_listops,
    evaluate_listops,
    generate_listops,
    load_task,
    read_idx,
    tokenize_listops,
)
from pspike_neuro.errors import UserError

# ---------------------------------------------------------------------------------------------
# sdigits / psdigits


@pytest.fixture(scope="module")
def sdigits() -> TaskData:
    return load_task("sdigits")


def test_sdigits_shapes_dtypes_and_metadata(sdigits):
    assert sdigits.train.x.shape == (1437, 64, 1) and sdigits.test.x.shape == (360, 64, 1)
    assert len(sdigits.train) == 1437 and len(sdigits.test) == 360
    assert sdigits.train.x.dtype == torch.float32 and sdigits.train.y.dtype == torch.int64
    assert torch.all(sdigits.train.lengths == 64) and torch.all(sdigits.test.lengths == 64)
    assert (sdigits.n_classes, sdigits.input_kind, sdigits.d_input, sdigits.seq_len) == (10, "real", 1, 64)
    assert "\n" not in sdigits.description and "8x8" in sdigits.description


def test_sdigits_values_are_pixels_over_16(sdigits):
    for split in (sdigits.train, sdigits.test):
        assert split.x.min() == 0.0 and split.x.max() == 1.0
        sixteenths = split.x * 16
        assert torch.equal(sixteenths, sixteenths.round())


def test_sdigits_test_split_is_stratified(sdigits):
    all_counts = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(sdigits.test.y.numpy(), minlength=10)
    train_counts = np.bincount(sdigits.train.y.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 36) <= 1)
    np.testing.assert_array_equal(train_counts + test_counts, all_counts)
    # the documented split (stratified, 20 % test, random_state 0) as scikit-learn makes it, sample for sample
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.2, random_state=0,
                                                        stratify=digits.target)
    np.testing.assert_array_equal(sdigits.test.y.numpy(), y_test)
    np.testing.assert_array_equal(sdigits.train.y.numpy(), y_train)
    np.testing.assert_array_equal(sdigits.test.x[:, :, 0].double().numpy(), x_test / 16)
    np.testing.assert_array_equal(sdigits.train.x[:, :, 0].double().numpy(), x_train / 16)


def test_sdigits_splits_partition_the_sklearn_set(sdigits):
    digits = load_digits()
    expected = sorted(map(tuple, np.column_stack([digits.data / 16, digits.target]).tolist()))
    got = [
        tuple(row)
        for split in (sdigits.train, sdigits.test)
        for row in np.column_stack([split.x[:, :, 0].double().numpy(), split.y.numpy()]).tolist()
    ]
    assert sorted(got) == expected


def test_sdigits_first_train_sample_is_a_flattened_sklearn_image(sdigits):
    digits = load_digits()
    first = sdigits.train.x[0, :, 0].numpy()
    matches = [i for i, image in enumerate(digits.images) if np.array_equal(image.reshape(-1) / 16, first)]
    assert matches, "train sample 0 is not any sklearn image, row-major, over 16"
    assert all(digits.target[i] == sdigits.train.y[0].item() for i in matches)


def test_sdigits_is_deterministic(sdigits):
    again = load_task("sdigits")
    for a, b in ((sdigits.train, again.train), (sdigits.test, again.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_psdigits_is_sdigits_with_the_fixed_permutation(sdigits):
    permuted = load_task("psdigits")
    assert permuted.name == "psdigits" and permuted.seq_len == 64
    for plain, perm in ((sdigits.train, permuted.train), (sdigits.test, permuted.test)):
        assert torch.equal(perm.x, plain.x[:, torch.from_numpy(PSDIGITS_PERMUTATION)])
        assert torch.equal(perm.y, plain.y)
    assert torch.equal(permuted.train.x[:, 5, 0], sdigits.train.x[:, PSDIGITS_PERMUTATION[5], 0])


def test_psdigits_permutation_is_a_seeded_true_permutation():
    assert isinstance(PSDIGITS_PERMUTATION, np.ndarray)
    np.testing.assert_array_equal(np.sort(PSDIGITS_PERMUTATION), np.arange(64))
    np.testing.assert_array_equal(PSDIGITS_PERMUTATION, np.random.default_rng(20250417).permutation(64))
    assert not np.array_equal(PSDIGITS_PERMUTATION, np.arange(64))


# ---------------------------------------------------------------------------------------------
# ListOps


@pytest.mark.parametrize(
    "expr, value",
    [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN 5 3 8 ]", 3),
        ("[MED 5 2 8 ]", 5),
        ("[MED 1 4 ]", 1),  # lower median; LRA's int(np.median) would give 2
        ("[MED 7 1 9 3 ]", 3),  # sorted 1 3 7 9 -> the lower of 3 and 7
        ("[SM 9 8 7 ]", 4),  # 24 mod 10
        ("[SM [MAX 3 8 ] [MIN 9 6 ] ]", 4),  # 8 + 6 = 14
        ("[MED [SM 5 5 ] [MAX 1 [MIN 7 3 ] ] 6 9 ]", 3),  # args 0 3 6 9
        ("[MIN [MAX 0 0 ] 1 ]", 0),
        ("7", 7),
    ],
)
def test_evaluate_listops_hand_computed(expr, value):
    assert evaluate_listops(expr.split()) == value


@pytest.mark.parametrize("expr", ["[MAX 1 2", "1 2 ]", "[MAX ]", "[MAX 1 2 ] 3", "[AVG 1 2 ]", ""])
def test_evaluate_listops_rejects_malformed_expressions(expr):
    with pytest.raises(ValueError):
        evaluate_listops(expr.split())


def test_tokenize_listops_ids_and_round_trip():
    expr = "[MAX 2 9 [MIN 4 7 ] 0 ]"
    ids = tokenize_listops(expr)
    assert ids == [11, 3, 10, 12, 5, 8, 15, 1, 15]
    assert tokenize_listops("[MED 0 [SM 9 ] ]") == [13, 1, 14, 10, 15, 15]
    assert " ".join(decode_listops(ids)) == expr
    with pytest.raises(ValueError):
        tokenize_listops("[MAX 2 9]")
    with pytest.raises(ValueError):
        decode_listops([11, 3, 0])


@pytest.fixture(scope="module")
def listops() -> TaskData:
    return load_task("listops")


def _max_nesting(tokens: list[str]) -> int:
    depth = deepest = 0
    for token in tokens:
        depth += token.startswith("[")
        depth -= token == "]"
        deepest = max(deepest, depth)
    return deepest


def test_listops_defaults_and_metadata(listops):
    assert len(listops.train) == 2000 and len(listops.test) == 500
    assert listops.train.x.shape == (2000, 128) and listops.train.x.dtype == torch.int64
    assert (listops.n_classes, listops.input_kind, listops.d_input, listops.seq_len) == (10, "tokens", 16, 128)
    assert int(listops.train.x.max()) <= 15 and int(listops.train.x.min()) == 0


def test_listops_labels_equal_reevaluation_of_every_sequence(listops):
    for split in (listops.train, listops.test):
        for ids, label, length in zip(split.x.tolist(), split.y.tolist(), split.lengths.tolist()):
            tokens = decode_listops(ids[:length])
            assert evaluate_listops(tokens) == label
            assert 1 <= _max_nesting(tokens) <= 4


def test_listops_lengths_and_padding(listops):
    for split in (listops.train, listops.test):
        assert int(split.lengths.min()) >= 16 and int(split.lengths.max()) <= 128
        positions = torch.arange(128)[None, :]
        padded = positions >= split.lengths[:, None]
        assert torch.all(split.x[padded] == 0)
        assert torch.all(split.x[~padded] != 0)


def test_listops_labels_cover_all_classes_and_splits_do_not_overlap(listops):
    assert set(listops.train.y.tolist()) == set(range(10))
    train_rows = set(map(tuple, listops.train.x.tolist()))
    assert len(train_rows) == 2000
    assert not train_rows & set(map(tuple, listops.test.x.tolist()))


def test_generate_listops_is_seeded():
    a = generate_listops(200, seed=3)
    b = generate_listops(200, seed=3)
    c = generate_listops(200, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.lengths, b.lengths)
    assert not torch.equal(a.x, c.x)


def test_generate_listops_respects_depth_args_and_length_options():
    data = generate_listops(300, max_depth=2, max_args=3, min_length=6, max_length=20, seed=1)
    assert isinstance(data, SeqDataset) and data.x.shape == (300, 20)
    assert int(data.lengths.min()) >= 6 and int(data.lengths.max()) <= 20
    for ids, length in zip(data.x.tolist(), data.lengths.tolist()):
        tokens = decode_listops(ids[:length])
        assert _max_nesting(tokens) <= 2
        open_args: list[int] = []
        for token in tokens:
            if token.startswith("["):
                if open_args:
                    open_args[-1] += 1
                open_args.append(0)
            elif token == "]":
                assert 2 <= open_args.pop() <= 3
            else:
                open_args[-1] += 1


def test_generate_listops_is_fast():
    start = time.perf_counter()
    generate_listops(2500, seed=7)
    assert time.perf_counter() - start < 2.0


def test_listops_options_through_load_task():
    task = load_task("listops", n_train=50, n_test=20, max_length=40, min_length=10, seed=5)
    assert len(task.train) == 50 and len(task.test) == 20 and task.seq_len == 40
    same_test = load_task("listops", n_train=80, n_test=20, max_length=40, min_length=10, seed=5)
    assert torch.equal(task.test.x, same_test.test.x)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"min_length": 50, "max_length": 40}, "min_length 50 is larger than max_length 40"),
        ({"max_depth": 1, "max_args": 3, "min_length": 10}, "unreachable"),
        ({"max_args": 1}, "max_args must be an integer >= 2"),
        ({"n_train": 0}, "n_train must be an integer >= 1"),
        ({"n_train": 100, "max_depth": 1, "max_args": 2, "min_length": 4, "max_length": 4}, "distinct expressions"),
        ({"depth": 3}, "no option depth"),
    ],
)
def test_listops_bad_options_raise_user_error(options, fragment):
    with pytest.raises(UserError, match=fragment):
        load_task("listops", **options)


# ---------------------------------------------------------------------------------------------
# bit-reversal permutation


def test_bitreversal_permutation_small_cases():
    np.testing.assert_array_equal(bitreversal_permutation(8), [0, 4, 2, 6, 1, 5, 3, 7])
    np.testing.assert_array_equal(bitreversal_permutation(6), [0, 4, 2, 1, 5, 3])
    np.testing.assert_array_equal(bitreversal_permutation(1), [0])


def test_bitreversal_permutation_784_drops_indices_past_784_of_the_1024_one():
    perm = bitreversal_permutation(784)
    np.testing.assert_array_equal(np.sort(perm), np.arange(784))
    full = bitreversal_permutation(1024)
    np.testing.assert_array_equal(full[full], np.arange(1024))  # bit reversal is an involution
    np.testing.assert_array_equal(perm, full[full < 784])
    np.testing.assert_array_equal(perm[:6], [0, 512, 256, 768, 128, 640])


# ---------------------------------------------------------------------------------------------
# MNIST from IDX files


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    """Write ``array`` (uint8) in IDX format by hand, gzipped when the name ends in .gz."""
    if magic is None:
        magic = 0x0800 | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_mnist(folder: Path) -> dict[str, np.ndarray]:
    """5 train and 3 test images; train images and test labels gzipped, the others plain."""
    rng = np.random.default_rng(11)
    arrays = {
        "train_images": rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
        "train_labels": np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8),
        "test_labels": np.array([9, 2, 6], dtype=np.uint8),
    }
    arrays["train_images"][0, 0, 0] = 255
    write_idx(folder / "train-images-idx3-ubyte.gz", arrays["train_images"])
    write_idx(folder / "train-labels-idx1-ubyte", arrays["train_labels"])
    write_idx(folder / "t10k-images-idx3-ubyte", arrays["test_images"])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", arrays["test_labels"])
    return arrays


def test_smnist_reads_plain_and_gzipped_idx_files(tmp_path):
    arrays = write_mnist(tmp_path)
    task = load_task("smnist", str(tmp_path))
    assert (task.n_classes, task.input_kind, task.d_input, task.seq_len) == (10, "real", 1, 784)
    for split, prefix in ((task.train, "train"), (task.test, "test")):
        images = arrays[f"{prefix}_images"]
        assert split.x.shape == (len(images), 784, 1) and split.x.dtype == torch.float32
        np.testing.assert_allclose(split.x[:, :, 0].numpy(), images.reshape(len(images), 784) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(split.y.numpy(), arrays[f"{prefix}_labels"])
        assert torch.all(split.lengths == 784)
    # row-major: step 28 * r + c is pixel (r, c)
    assert task.train.x[2, 28 * 3 + 7, 0].item() == pytest.approx(arrays["train_images"][2, 3, 7] / 255.0)
    assert task.train.x[0, 0, 0].item() == 1.0


def test_psmnist_applies_the_bitreversal_permutation(tmp_path):
    arrays = write_mnist(tmp_path)
    plain = load_task("smnist", tmp_path)
    permuted = load_task("psmnist", tmp_path)
    perm = bitreversal_permutation(784)
    assert torch.equal(permuted.train.x, plain.train.x[:, torch.from_numpy(perm)])
    assert torch.equal(permuted.test.y, plain.test.y)
    # step 1 holds pixel 512 = row 18, column 8
    assert permuted.train.x[4, 1, 0].item() == pytest.approx(arrays["train_images"][4, 18, 8] / 255.0)


def test_mnist_limits_keep_the_first_examples(tmp_path):
    arrays = write_mnist(tmp_path)
    task = load_task("smnist", tmp_path, limit_train=2, limit_test=1)
    assert len(task.train) == 2 and len(task.test) == 1
    np.testing.assert_array_equal(task.train.y.numpy(), arrays["train_labels"][:2])
    assert len(load_task("smnist", tmp_path, limit_train=None).train) == 5
    with pytest.raises(UserError, match="limit_train must be an integer >= 1"):
        load_task("smnist", tmp_path, limit_train=0)


def test_read_idx_returns_any_ubyte_array(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), array)
    write_idx(tmp_path / "b.idx", array[0])
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), array[0])


def test_mnist_without_data_dir_names_the_files_it_needs():
    with pytest.raises(UserError, match="needs data_dir") as info:
        load_task("psmnist")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in str(info.value)


def test_mnist_data_dir_that_is_not_a_folder(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        load_task("smnist", tmp_path / "nowhere")


def test_mnist_missing_file_is_named(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\) not found"):
        load_task("smnist", tmp_path)


def test_mnist_truncated_file_is_refused(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte: truncated: header declares shape \(3, 28, 28\)"):
        load_task("smnist", tmp_path)


def test_mnist_truncated_header_is_refused(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">II", 0x0803, 3))
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte: truncated"):
        load_task("smnist", tmp_path)


def test_mnist_cut_gzip_stream_is_refused(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz: cannot read"):
        load_task("smnist", tmp_path)


def test_mnist_wrong_magic_number_is_refused(tmp_path):
    arrays = write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["train_labels"], magic=0x0D01)
    with pytest.raises(UserError, match="train-labels-idx1-ubyte: bad magic number 0x00000d01, expected 0x00000801"):
        load_task("smnist", tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["train_images"])
    with pytest.raises(UserError, match="bad magic number 0x00000803, expected 0x00000801"):
        load_task("smnist", tmp_path)


def test_mnist_wrong_item_count_is_refused(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x07")
    with pytest.raises(UserError, match="train-labels-idx1-ubyte: wrong item count"):
        load_task("smnist", tmp_path)


def test_mnist_label_and_image_count_mismatch_is_refused(tmp_path):
    arrays = write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["train_labels"][:4])
    with pytest.raises(UserError, match="has 5 images but .*train-labels-idx1-ubyte has 4 labels"):
        load_task("smnist", tmp_path)


def test_mnist_bad_image_size_and_label_value_are_refused(tmp_path):
    arrays = write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([9, 12, 6], dtype=np.uint8))
    with pytest.raises(UserError, match="label 12 is outside 0..9"):
        load_task("smnist", tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", arrays["train_images"][:, :20, :20])
    with pytest.raises(UserError, match="images are 20x20, MNIST needs 28x28"):
        load_task("smnist", tmp_path)


# ---------------------------------------------------------------------------------------------
# registry


def test_tasks_lists_every_task_with_a_one_line_description():
    assert set(TASKS) == {"sdigits", "psdigits", "listops", "smnist", "psmnist", "sdigits-spikes", "shd", "ssc"}
    for description in TASKS.values():
        assert description and "\n" not in description


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown task 'mnist'") as info:
        load_task("mnist")
    for name in TASKS:
        assert name in str(info.value)


def test_unknown_option_names_the_task_options():
    with pytest.raises(UserError, match="task 'sdigits' has no option n_train; its options: none"):
        load_task("sdigits", n_train=10)
    with pytest.raises(UserError, match="its options: limit_train, limit_test"):
        load_task("smnist", "/tmp", seed=1)
