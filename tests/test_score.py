"""Scoring stage: submission files from embeddings, and clear errors for unusable inputs."""

import numpy as np
import pandas as pd
import pytest

from asdflow import knn, metrics, score


def tables(n_train=12, n_test=6, label="normal"):
    train = pd.DataFrame(
        {
            "file": [f"m/train/c{i}.wav" for i in range(n_train)],
            "machine_type": "m",
            "domain": ["source"] * (n_train - 2) + ["target"] * 2,
            "label": label,
        }
    )
    test = pd.DataFrame({"file": [f"m/test/section_00_{i:04d}.wav" for i in range(n_test)]})
    return train, test


def test_scores_and_decisions_are_written(tmp_path):
    rng = np.random.default_rng(0)
    train, test = tables()
    train_emb, test_emb = rng.normal(size=(12, 8)), rng.normal(size=(6, 8))
    scores = score.score_machine(train, train_emb, test, test_emb, tmp_path, knn.KnnSettings())
    sub = metrics.read_submission(tmp_path, "m")
    np.testing.assert_allclose(sub["score"], scores)
    assert sub["file_name"].tolist() == [f"section_00_{i:04d}.wav" for i in range(6)]
    expected = knn.cosine_knn_distance(test_emb, train_emb, k=1)
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_no_normal_training_clips_is_an_error_naming_the_machine(tmp_path):
    train, test = tables(label="anomaly")
    with pytest.raises(ValueError, match="fan-features: no normal training clips"):
        score.score_machine(
            train,
            np.ones((12, 4)),
            test,
            np.ones((6, 4)),
            tmp_path,
            knn.KnnSettings(),
            name="fan-features",
        )


def test_nan_test_embeddings_are_an_error_naming_the_machine(tmp_path):
    rng = np.random.default_rng(1)
    train, test = tables()
    test_emb = rng.normal(size=(6, 4))
    test_emb[2, 1] = np.nan
    with pytest.raises(ValueError, match="fan-features: test embeddings contain NaN in 1 row"):
        score.score_machine(
            train,
            rng.normal(size=(12, 4)),
            test,
            test_emb,
            tmp_path,
            knn.KnnSettings(),
            name="fan-features",
        )
