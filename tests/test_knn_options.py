"""Memory-bank options of the k-NN back end against a brute-force reference."""

import math

import numpy as np
import pytest
from sklearn.cluster import KMeans

from asdflow import knn


def cosine_distance(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def brute_knn(query, bank, k):
    """Mean of the k smallest cosine distances from one query to the rows of bank."""
    return float(np.mean(sorted(cosine_distance(query, row) for row in bank)[:k]))


def centred(train, *others):
    """`train` and `others` minus the mean row of `train` (KnnSettings.center)."""
    mean = np.mean(train, axis=0)
    return [np.asarray(x, dtype=np.float64) - mean for x in (train, *others)]


def brute_scores(train, domains, test, settings, centres=None):
    """Test scores by plain loops, bank built as KnnSettings.bank describes (`centres` are the
    k-means centres, computed on centred rows when settings.center)."""
    if settings.center:
        train, test = centred(train, test)
    source = [row for row, d in zip(train, domains, strict=True) if d == "source"]
    target = [row for row, d in zip(train, domains, strict=True) if d == "target"]
    if settings.bank == "joint":
        banks = [list(train)]
    elif settings.bank == "per_domain":
        banks = [b for b in (source, target) if b]
    else:
        banks = [list(centres) + target]
    return np.array([min(brute_knn(q, bank, settings.k) for bank in banks) for q in test])


def brute_leave_one_out(train, k, center=False):
    if center:
        (train,) = centred(train)
    return np.array(
        [brute_knn(q, [r for j, r in enumerate(train) if j != i], k) for i, q in enumerate(train)]
    )


def make_data(seed=0, n_source=30, n_target=6, n_test=11, dim=8):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(n_source + n_target, dim)).astype(np.float32)
    domains = np.array(["source"] * n_source + ["target"] * n_target)
    order = rng.permutation(len(train))  # domains interleaved, as in a real clip table
    test = rng.normal(size=(n_test, dim)).astype(np.float32)
    return train[order], domains[order], test


@pytest.mark.parametrize("bank", ["joint", "per_domain", "kmeans_source"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("center", [True, False])
def test_matches_brute_force(bank, k, center):
    train, domains, test = make_data(seed=k)
    settings = knn.KnnSettings(k=k, bank=bank, kmeans_centers=5, seed=3, center=center)
    rows = centred(train)[0] if center else train
    centres = knn.kmeans_bank(rows[domains == "source"], settings)
    test_scores, train_scores = knn.anomaly_scores(train, domains, test, settings, name="fan")
    np.testing.assert_allclose(
        test_scores, brute_scores(train, domains, test, settings, centres), atol=1e-5
    )
    np.testing.assert_allclose(train_scores, brute_leave_one_out(train, k, center), atol=1e-5)
    assert test_scores.shape == (len(test),) and train_scores.shape == (len(train),)


def test_kmeans_bank_is_sklearn_kmeans_on_unit_rows():
    train, domains, _ = make_data()
    source = train[domains == "source"]
    settings = knn.KnnSettings(bank="kmeans_source", kmeans_centers=4, seed=7)
    unit = source / np.linalg.norm(source, axis=1, keepdims=True)
    expected = KMeans(4, n_init=4, random_state=7).fit(unit).cluster_centers_
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    centres = knn.kmeans_bank(source, settings)
    np.testing.assert_allclose(centres, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-6)
    # Capped at the number of source clips.
    capped = knn.kmeans_bank(source[:3], knn.KnnSettings(kmeans_centers=16))
    assert capped.shape == (3, source.shape[1])


def test_per_domain_with_k1_equals_joint():
    train, domains, test = make_data(seed=5)
    joint, _ = knn.anomaly_scores(train, domains, test, knn.KnnSettings(k=1, bank="joint"))
    split, _ = knn.anomaly_scores(train, domains, test, knn.KnnSettings(k=1, bank="per_domain"))
    np.testing.assert_allclose(split, joint, atol=1e-6)


def test_missing_domain_falls_back():
    train, domains, test = make_data(seed=2)
    source_only = domains == "source"
    train, domains = train[source_only], domains[source_only]
    per_domain = knn.KnnSettings(k=3, bank="per_domain")
    got, _ = knn.anomaly_scores(train, domains, test, per_domain)
    np.testing.assert_allclose(got, brute_scores(train, domains, test, per_domain), atol=1e-5)
    # kmeans_source without source clips: the target clips alone.
    kmeans = knn.KnnSettings(k=1, bank="kmeans_source")
    got, _ = knn.anomaly_scores(train, np.full(len(train), "target"), test, kmeans)
    np.testing.assert_allclose(got, [brute_knn(q, train, 1) for q in test], atol=1e-5)


@pytest.mark.parametrize("bank", ["joint", "per_domain", "kmeans_source"])
def test_chunking_does_not_change_results(bank):
    train, domains, test = make_data(seed=4)
    whole = knn.anomaly_scores(train, domains, test, knn.KnnSettings(k=3, bank=bank))
    chunked = knn.anomaly_scores(train, domains, test, knn.KnnSettings(k=3, bank=bank, chunk=2))
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_leave_one_out_excludes_the_clip_itself():
    train, domains, _ = make_data(seed=6)
    # A test set equal to the training set scores 0 (each clip finds itself) ...
    test_scores, train_scores = knn.anomaly_scores(train, domains, train, knn.KnnSettings(k=1))
    np.testing.assert_allclose(test_scores, 0.0, atol=1e-6)
    # ... while leave-one-out training scores do not, and match the nearest *other* clip.
    assert (train_scores > 1e-3).all()
    np.testing.assert_allclose(train_scores, brute_leave_one_out(train, 1), atol=1e-5)
    # A duplicated clip has a true neighbour at distance 0 (only its copy, not itself).
    twin = np.concatenate([train, train[:1]])
    _, twin_scores = knn.anomaly_scores(
        twin, np.append(domains, domains[0]), train, knn.KnnSettings(k=1)
    )
    np.testing.assert_allclose(twin_scores[[0, -1]], 0.0, atol=1e-6)
    assert (twin_scores[1:-1] > 1e-3).all()


def test_settings_validation():
    with pytest.raises(ValueError, match="Unsupported bank 'nearest'.*joint, per_domain"):
        knn.KnnSettings(bank="nearest")
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn.KnnSettings(k=0)


def test_errors_name_the_machine():
    train, domains, test = make_data(n_source=4, n_target=2)
    settings = knn.KnnSettings()
    bad = test.copy()
    bad[[1, 4], 0] = np.nan
    with pytest.raises(ValueError, match="valve: test embeddings contain NaN in 2 rows"):
        knn.anomaly_scores(train, domains, bad, settings, name="valve")
    bad = train.copy()
    bad[0, 2] = np.inf
    with pytest.raises(ValueError, match="valve: train embeddings contain inf in 1 rows"):
        knn.anomaly_scores(bad, domains, test, settings, name="valve")
    # per_domain: the target bank has 2 rows, too few for k=3.
    with pytest.raises(ValueError, match="valve: k=3 needs at least 3 rows in the target bank"):
        knn.anomaly_scores(
            train, domains, test, knn.KnnSettings(k=3, bank="per_domain"), name="valve"
        )
    with pytest.raises(ValueError, match="k=4 needs at least 4 rows in the kmeans_source bank"):
        knn.anomaly_scores(
            train, domains, test, knn.KnnSettings(k=4, bank="kmeans_source", kmeans_centers=1)
        )
    with pytest.raises(ValueError, match="valve: k=6 needs at least 7 training clips"):
        knn.anomaly_scores(train, domains, test, knn.KnnSettings(k=6), name="valve")
    with pytest.raises(ValueError, match="valve: unknown domains"):
        knn.anomaly_scores(train, np.full(len(train), "other"), test, settings, name="valve")
    with pytest.raises(ValueError, match="valve: expected"):
        knn.anomaly_scores(train, domains, test[:, :3], settings, name="valve")


def shared_direction_data(seed=0, n_train=40, dim=16, offset=1e4):
    """Embeddings as a mean-pooled post-LayerNorm encoder gives them: one large shared direction
    plus small clip-specific parts (relative size about 1 / offset), in float32; also the shared
    vector and the parts in float64. Test clips 0-9
    are training clips plus a little noise, test clips 10-29 new random parts."""
    rng = np.random.default_rng(seed)
    shared = np.full(dim, offset / np.sqrt(dim))
    train = rng.normal(size=(n_train, dim))
    near = train[:10] + 0.05 * rng.normal(size=(10, dim))
    test = np.concatenate([near, rng.normal(size=(20, dim))])
    return (
        (shared + train).astype(np.float32),
        (shared + test).astype(np.float32),
        shared,
        train,
        test,
    )


@pytest.mark.parametrize("center", [True, False])
def test_distances_under_a_shared_direction_are_resolved(center):
    train, test, shared, train_parts, test_parts = shared_direction_data()
    domains = np.array(["source"] * len(train))
    settings = knn.KnnSettings(center=center)
    with pytest.warns(UserWarning, match="pump: the training embeddings hardly spread"):
        scores, _ = knn.anomaly_scores(train, domains, test, settings, name="pump")
    # The clip-specific parts decide: near test clips score below new ones ...
    assert scores[:10].max() < scores[10:].min()
    # ... in the order exact arithmetic gives them (the same embeddings without float32
    # rounding); centred, the distances are those between the parts themselves
    exact, _ = knn.anomaly_scores(shared + train_parts, domains, shared + test_parts, settings)
    assert np.corrcoef(scores, exact)[0, 1] > 0.999
    if center:
        parts, _ = knn.anomaly_scores(train_parts, domains, test_parts, settings)
        np.testing.assert_allclose(scores, parts, atol=1e-3)


def test_distances_below_float32_resolution_are_resolved():
    # Two directions 1e-5 rad apart: 1 - cos = 5e-11, far below float32's 6e-8 resolution.
    angle = 1e-5
    bank = np.array([[1.0, 0.0]])
    query = np.array([[np.cos(angle), np.sin(angle)]])
    got = knn.cosine_knn_distance(query, bank)[0]
    np.testing.assert_allclose(got, 1 - np.cos(angle), rtol=1e-4)


def test_no_warning_for_well_spread_embeddings():
    train, domains, test = make_data()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        knn.anomaly_scores(train, domains, test, knn.KnnSettings(), name="fan")
