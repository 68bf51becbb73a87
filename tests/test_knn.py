"""k-NN scores against a brute-force reference."""

import numpy as np
import pytest

from asdflow import knn


def brute(queries, bank, k, exclude_self=False):
    out = []
    for i, q in enumerate(queries):
        d = [
            1 - q @ b / (np.linalg.norm(q) * np.linalg.norm(b))
            for j, b in enumerate(bank)
            if not (exclude_self and i == j)
        ]
        out.append(np.mean(sorted(d)[:k]))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("chunk", [2, 4096])
def test_matches_brute_force(k, chunk):
    rng = np.random.default_rng(k)
    q, b = rng.normal(size=(17, 8)), rng.normal(size=(23, 8))
    np.testing.assert_allclose(
        knn.cosine_knn_distance(q, b, k=k, chunk=chunk), brute(q, b, k), atol=1e-5
    )
    np.testing.assert_allclose(
        knn.cosine_knn_distance(b, b, k=k, exclude_self=True, chunk=chunk),
        brute(b, b, k, exclude_self=True),
        atol=1e-5,
    )


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        knn.cosine_knn_distance(np.full((2, 3), np.nan), np.ones((2, 3)))
    with pytest.raises(ValueError, match="needs at least"):
        knn.cosine_knn_distance(np.ones((2, 3)), np.ones((2, 3)), k=3)
    with pytest.raises(ValueError, match="expected"):
        knn.cosine_knn_distance(np.ones((2, 3)), np.ones((2, 4)))
