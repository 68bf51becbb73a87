"""Ward pseudo-attributes, cluster quality and the MAC label space, on generated embeddings."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from asdflow import cli
from asdflow.pseudolabel import (
    WardClustering,
    build_label_space,
    cluster_quality,
    machine_has_attributes,
    read_pseudo_labels,
)


def blobs(k: int, seed: int, n_per: int = 40, dim: int = 16, spread: float = 3.0):
    """k isotropic Gaussian blobs (unit variance) around random centres; (X (n, dim), y (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * spread
    y = np.repeat(np.arange(k), n_per)
    return centres[y] + rng.normal(size=(k * n_per, dim)), y


def one_blob(seed: int, n: int = 200, dim: int = 32):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) + 5.0  # away from the origin, as embeddings are


# --- WardClustering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [{"n_clusters": 4}, {"auto": "silhouette"}, {"auto": "gap"}],
    ids=["fixed", "silhouette", "gap"],
)
def test_recovers_separated_blobs(settings):
    X, y = blobs(4, seed=0)
    model = WardClustering(**settings).fit(X)
    assert model.n_clusters_ == 4
    assert adjusted_rand_score(y, model.labels_) > 0.95
    assert model.labels_.dtype == np.int64
    assert set(model.labels_) == set(range(4))
    assert model.linkage_.shape == (len(X) - 1, 4)
    assert np.all(np.diff(model.merge_heights_) >= 0)


@pytest.mark.parametrize("auto", ["silhouette", "gap"])
@pytest.mark.parametrize("k", [3, 4, 5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_auto_finds_planted_count(auto, k, seed):
    X, y = blobs(k, seed=seed)
    model = WardClustering(auto=auto).fit(X)
    assert model.n_clusters_ == k, model.selection_
    assert model.selection_["mode"] == auto
    assert model.selection_["k"] == k
    assert adjusted_rand_score(y, model.labels_) > 0.95


@pytest.mark.parametrize("auto", ["silhouette", "gap"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("l2", [True, False])
def test_single_blob_stays_one_cluster(auto, seed, l2):
    model = WardClustering(auto=auto, l2_normalize=l2).fit(one_blob(seed))
    assert model.n_clusters_ == 1, model.selection_
    assert np.all(model.labels_ == 0)
    assert model.selection_["k"] == 1
    assert "below min_" in model.selection_["reason"]
    assert model.selection_["scores"]  # the scores that led there are recorded


def test_one_cluster_rule_can_be_disabled():
    model = WardClustering(auto="silhouette", min_silhouette=-1.0).fit(one_blob(0))
    assert model.n_clusters_ >= 2
    model = WardClustering(auto="gap", min_relative_gap=0.0).fit(one_blob(0))
    assert model.n_clusters_ >= 2


def test_selection_is_json_serialisable():
    for auto in ("silhouette", "gap"):
        model = WardClustering(auto=auto).fit(blobs(3, seed=0)[0])
        json.dumps(model.selection_)


def test_fixed_count_and_distance_threshold():
    X, y = blobs(3, seed=4)
    for k in (1, 2, 3, 6):
        assert WardClustering(n_clusters=k).fit(X).n_clusters_ == k
    heights = WardClustering(n_clusters=3).fit(X).merge_heights_
    # Cut between the merges leaving 3 and 2 clusters: exactly 3 clusters, the planted ones.
    threshold = (heights[-3] + heights[-2]) / 2
    model = WardClustering(distance_threshold=threshold).fit(X)
    assert model.n_clusters_ == 3
    assert model.selection_["mode"] == "threshold"
    assert adjusted_rand_score(y, model.labels_) > 0.95
    assert WardClustering(distance_threshold=heights[-1] + 1).fit(X).n_clusters_ == 1
    assert WardClustering(distance_threshold=0.0).fit(X).n_clusters_ == len(X)


def test_deterministic_and_first_appearance_order():
    X, _ = blobs(4, seed=5)
    a = WardClustering().fit(X).labels_
    b = WardClustering().fit(X.copy()).labels_
    np.testing.assert_array_equal(a, b)
    first_seen = list(dict.fromkeys(a.tolist()))
    assert first_seen == list(range(len(first_seen)))


@pytest.mark.parametrize(
    "settings",
    [
        {"l2_normalize": False},
        {"pca_components": 5},
        {"pca_components": 0.9},
        # 3 blobs span 2 directions: whitening more components would level signal with noise.
        {"pca_components": 2, "whiten": True},
    ],
)
def test_preprocessing_options(settings):
    X, y = blobs(3, seed=6)
    model = WardClustering(n_clusters=3, **settings).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    if "pca_components" in settings:
        assert model.pca_ is not None
        if isinstance(settings["pca_components"], float):
            kept = model.pca_.explained_variance_ratio_.sum()
            assert kept >= settings["pca_components"]
            assert model.pca_.n_components_ < X.shape[1]
    else:
        assert model.pca_ is None
    assert model.n_features_in_ == X.shape[1]


def test_whitening_gives_unit_variance_components():
    X, _ = blobs(3, seed=6)
    model = WardClustering(n_clusters=3, pca_components=0.95, whiten=True).fit(X)
    whitened = model.pca_.transform(X / np.linalg.norm(X, axis=1, keepdims=True))
    np.testing.assert_allclose(whitened.var(axis=0, ddof=1), 1.0, rtol=1e-6)


def test_sklearn_conventions():
    model = WardClustering(n_clusters=3, pca_components=0.9)
    assert model.get_params()["pca_components"] == 0.9
    assert not hasattr(model, "labels_")
    X, _ = blobs(3, seed=7)
    assert model.fit(X) is model
    np.testing.assert_array_equal(model.fit_predict(X), model.labels_)


# --- bad input ----------------------------------------------------------------------------------


def test_fewer_clips_than_clusters():
    X, _ = blobs(2, seed=0, n_per=2)
    with pytest.raises(ValueError, match="asked for 5 clusters but got only 4 clips"):
        WardClustering(n_clusters=5).fit(X)
    # Auto caps k_max at n - 1; below 3 clips it gives one cluster.
    model = WardClustering(k_max=16).fit(X)
    assert model.selection_["k_max"] == 3
    for n in (1, 2):
        model = WardClustering().fit(X[:n])
        assert model.n_clusters_ == 1
        np.testing.assert_array_equal(model.labels_, np.zeros(n))


def test_non_finite_rows_named():
    X, _ = blobs(2, seed=0)
    X[3, 0] = np.nan
    X[7, 2] = np.inf
    X[7, 4] = np.nan
    with pytest.raises(ValueError, match=r"2 of 80 embedding rows contain NaN or inf.*\[3, 7\]"):
        WardClustering().fit(X)


def test_identical_embeddings_fall_back_to_one_cluster():
    X = np.tile(np.arange(8.0), (30, 1))
    for settings in ({}, {"auto": "gap"}, {"pca_components": 2}, {"distance_threshold": 0.0}):
        model = WardClustering(**settings).fit(X)
        assert model.n_clusters_ == 1
        assert model.selection_["reason"] == "identical embeddings"
    with pytest.warns(UserWarning, match="identical"):
        assert WardClustering(n_clusters=3).fit(X).n_clusters_ == 1
    # Rows differing only in scale are identical once l2-normalised, not without.
    scaled = X * np.arange(1, 31)[:, None]
    assert WardClustering().fit(scaled).selection_["reason"] == "identical embeddings"
    assert WardClustering(l2_normalize=False, n_clusters=2).fit(scaled).n_clusters_ == 2


def test_zero_and_one_row():
    with pytest.raises(ValueError, match="0 rows"):
        WardClustering().fit(np.zeros((0, 4)))
    model = WardClustering().fit(np.ones((1, 4)))
    assert model.n_clusters_ == 1 and model.labels_.tolist() == [0]
    assert WardClustering(n_clusters=1).fit(np.ones((1, 4))).n_clusters_ == 1
    with pytest.raises(ValueError, match="asked for 2 clusters"):
        WardClustering(n_clusters=2).fit(np.ones((1, 4)))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"n_clusters": 2, "distance_threshold": 1.0}, "not both"),
        ({"n_clusters": 0}, "at least 1"),
        ({"auto": "elbow"}, "Unsupported auto"),
        ({"k_min": 5, "k_max": 3}, "k_min <= k_max"),
        ({"pca_components": 1.5}, "variance share"),
        ({"pca_components": 50}, "exceeds"),
        ({"whiten": True}, "whiten needs"),
    ],
)
def test_bad_settings(settings, message):
    X, _ = blobs(2, seed=0)
    with pytest.raises(ValueError, match=message):
        WardClustering(**settings).fit(X)


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        WardClustering().fit(np.zeros(5))


# --- cluster quality ----------------------------------------------------------------------------


def test_cluster_quality_by_hand():
    truth = ["a", "a", "a", "b", "b", "c"]
    found = [0, 0, 1, 1, 1, 1]
    # Cluster 0: a, a -> majority a, 2 right. Cluster 1: a, b, b, c -> majority b, 2 right.
    quality = cluster_quality(truth, found)
    assert quality["purity"] == pytest.approx(4 / 6)
    assert quality["n_clusters"] == 2 and quality["n_true"] == 3
    perfect = cluster_quality(truth, [5, 5, 5, 2, 2, 9])
    assert perfect["nmi"] == pytest.approx(1.0)
    assert perfect["ari"] == pytest.approx(1.0)
    assert perfect["purity"] == 1.0
    one = cluster_quality(truth, [0] * 6)
    assert one["purity"] == pytest.approx(3 / 6)
    assert one["ari"] == pytest.approx(0.0)
    assert one["nmi"] == pytest.approx(0.0)


def test_cluster_quality_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one length"):
        cluster_quality([0, 1], [0, 1, 1])


# --- label space --------------------------------------------------------------------------------


def clip_table() -> pd.DataFrame:
    """fan with two attributes, valve with one, bearing and gearbox without attributes."""
    rows = []
    for i, (spd, mic) in enumerate([("28V", "1"), ("28V", "2"), ("31V", "1"), ("28V", "1")]):
        attributes = json.dumps({"spd": spd, "mic": mic}, sort_keys=True)
        rows.append((f"fan/train/f{i}.wav", "fan", attributes, True))
    for i, v in enumerate(["a", "b"]):
        rows.append((f"valve/train/v{i}.wav", "valve", json.dumps({"pat": v}), True))
    for i in range(3):
        rows.append((f"bearing/train/b{i}.wav", "bearing", "{}", False))
    for i in range(2):
        rows.append((f"gearbox/train/g{i}.wav", "gearbox", "{}", False))
    table = pd.DataFrame(rows, columns=["file", "machine_type", "attributes", "attributes_known"])
    table["dataset"] = "dev"
    return table


def pseudo_labels() -> dict[str, pd.Series]:
    return {
        "bearing": pd.Series([0, 1, 0], index=[f"bearing/train/b{i}.wav" for i in range(3)]),
        "gearbox": pd.Series([2, 2], index=["gearbox/train/g1.wav", "gearbox/train/g0.wav"]),
    }


def test_machine_has_attributes():
    assert machine_has_attributes(clip_table()) == {
        "bearing": False,
        "fan": True,
        "gearbox": False,
        "valve": True,
    }


def test_label_space_none_mode():
    space = build_label_space(clip_table(), None, "none")
    by_file = space.set_index("file")
    assert by_file.loc["fan/train/f0.wav", "class_name"] == "fan|mic=1;spd=28V"
    assert by_file.loc["fan/train/f3.wav", "class_name"] == "fan|mic=1;spd=28V"
    assert by_file.loc["valve/train/v1.wav", "class_name"] == "valve|pat=b"
    assert set(space.loc[space["machine_type"] == "bearing", "class_name"]) == {"bearing|all"}
    assert set(space.loc[space["machine_type"] == "gearbox", "class_name"]) == {"gearbox|all"}
    assert space.groupby("machine_type")["label_source"].unique().map(list).to_dict() == {
        "bearing": ["machine"],
        "fan": ["ground_truth"],
        "gearbox": ["machine"],
        "valve": ["ground_truth"],
    }
    # 3 fan + 2 valve + 1 bearing + 1 gearbox classes, indices over sorted names.
    classes = sorted(set(space["class_name"]))
    assert len(classes) == 7
    assert space["class_index"].tolist() == [classes.index(c) for c in space["class_name"]]
    assert list(space.columns[:5]) == list(clip_table().columns)


def test_label_space_pseudo_mode():
    clips = clip_table()
    none = build_label_space(clips, None, "none")
    space = build_label_space(clips, pseudo_labels(), "pseudo")
    by_file = space.set_index("file")
    assert by_file.loc["bearing/train/b1.wav", "class_name"] == "bearing|pseudo=1"
    assert by_file.loc["gearbox/train/g0.wav", "class_name"] == "gearbox|pseudo=2"
    assert set(space.loc[space["machine_type"].isin(["bearing", "gearbox"]), "label_source"]) == {
        "pseudo"
    }
    # Ground-truth classes kept as they were; pseudo classes added beside them.
    gt = space["label_source"] == "ground_truth"
    assert space.loc[gt, "class_name"].tolist() == none.loc[gt, "class_name"].tolist()
    assert space["class_name"].nunique() == 5 + 2 + 1
    assert sorted(space["class_index"].unique()) == list(range(8))
    assert space.groupby("class_name")["label_source"].nunique().max() == 1
    # Deterministic whatever the row order.
    shuffled = build_label_space(clips.sample(frac=1, random_state=0), pseudo_labels(), "pseudo")
    pairs = dict(zip(shuffled["class_name"], shuffled["class_index"], strict=True))
    assert pairs == dict(zip(space["class_name"], space["class_index"], strict=True))


def test_label_space_pseudo_for_ground_truth_machine_is_ignored():
    pseudo = {**pseudo_labels(), "fan": pd.Series([9] * 4, index=clip_table()["file"][:4])}
    space = build_label_space(clip_table(), pseudo, "pseudo")
    assert not space["class_name"].str.startswith("fan|pseudo").any()


def test_label_space_errors():
    clips = clip_table()
    with pytest.raises(ValueError, match=r"no pseudo-attributes for machine types \['gearbox'\]"):
        build_label_space(clips, {"bearing": pseudo_labels()["bearing"]}, "pseudo")
    partial = {**pseudo_labels(), "bearing": pseudo_labels()["bearing"].iloc[:2]}
    with pytest.raises(ValueError, match=r"1 clips of 'bearing'.*b2\.wav"):
        build_label_space(clips, partial, "pseudo")
    with pytest.raises(ValueError, match="needs pseudo"):
        build_label_space(clips, None, "pseudo")
    with pytest.raises(ValueError, match="Unsupported label mode"):
        build_label_space(clips, None, "cluster")
    mixed = clips.copy()
    mixed.loc[mixed["file"] == "fan/train/f2.wav", ["attributes", "attributes_known"]] = [
        "{}",
        False,
    ]
    with pytest.raises(ValueError, match=r"mixing known and unknown attributes: \['fan'\]"):
        build_label_space(mixed, None, "none")
    with pytest.raises(ValueError, match="lacks columns"):
        build_label_space(clips.drop(columns="attributes"), None, "none")


def test_label_space_reads_csv_booleans(tmp_path):
    path = tmp_path / "train.csv"
    clip_table().to_csv(path, index=False)
    clips = pd.read_csv(path, keep_default_na=False, dtype={"attributes_known": str})
    space = build_label_space(clips, None, "none")
    assert space["class_name"].nunique() == 7


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_round_trip(tmp_path):
    X_bearing, y_bearing = blobs(3, seed=8, n_per=20)
    X_gearbox, _ = blobs(2, seed=9, n_per=20)
    n_b, n_g = len(X_bearing), len(X_gearbox)
    files = [f"bearing/train/b{i}.wav" for i in range(n_b)]
    files += [f"gearbox/train/g{i}.wav" for i in range(n_g)]
    index = pd.DataFrame(
        {
            "file": files,
            "machine_type": ["bearing"] * n_b + ["gearbox"] * n_g,
            "attributes": "{}",
            "attributes_known": False,
        }
    )
    # Rows interleaved so that the CLI must follow the index, not assume grouped machines.
    order = np.random.default_rng(0).permutation(len(index))
    index = index.iloc[order].reset_index(drop=True)
    embeddings = np.concatenate([X_bearing, X_gearbox])[order]
    np.save(tmp_path / "emb.npy", embeddings)
    index.to_csv(tmp_path / "train.csv", index=False)
    truth = pd.DataFrame(
        {
            "file_name": [f"b{i}.wav" for i in range(n_b)] + [f"g{i}.wav" for i in range(n_g)],
            "attributes": [json.dumps({"load": int(v)}) for v in y_bearing] + ['{"load": 0}'] * n_g,
        }
    )
    truth.to_csv(tmp_path / "truth.csv", index=False)

    out = tmp_path / "pseudo" / "labels.csv"
    argv = ["cluster", "--job", str(tmp_path / "emb.npy"), str(tmp_path / "train.csv"), str(out)]
    argv += ["--quality-truth", str(tmp_path / "truth.csv")]
    settings = {"auto": "gap", "min_silhouette": 0.2, "min_relative_gap": 0.4}
    assert cli.main([*argv, "--settings", json.dumps(settings)]) == 0

    labels = pd.read_csv(out)
    assert list(labels.columns) == ["file", "pseudo_attribute"]
    assert labels["file"].tolist() == index["file"].tolist()
    report = json.loads(out.with_name("labels.csv.json").read_text())
    assert report["settings"]["auto"] == "gap"
    assert report["settings"]["min_relative_gap"] == 0.4
    assert report["machine_types"]["bearing"]["n_clusters"] == 3
    assert report["machine_types"]["gearbox"]["n_clusters"] == 2
    assert report["machine_types"]["bearing"]["quality"]["ari"] > 0.95

    pseudo = read_pseudo_labels(out, index)
    space = build_label_space(index, pseudo, "pseudo")
    assert space["class_name"].nunique() == 5
    bearing = space[space["machine_type"] == "bearing"]
    true_load = (
        bearing["file"].str.extract(r"b(\d+)\.wav")[0].astype(int).map(lambda i: y_bearing[i])
    )
    assert adjusted_rand_score(true_load, bearing["class_index"]) > 0.95


def test_cli_fixed_count_and_bad_rows(tmp_path, capsys):
    X, _ = blobs(2, seed=10, n_per=10)
    index = pd.DataFrame(
        {
            "file": [f"m/{i}.wav" for i in range(len(X))],
            "machine_type": "m",
            "attributes": "{}",
            "attributes_known": False,
        }
    )
    index.to_csv(tmp_path / "train.csv", index=False)
    np.save(tmp_path / "emb.npy", X)
    out = tmp_path / "labels.csv"
    base = ["cluster", "--job", str(tmp_path / "emb.npy"), str(tmp_path / "train.csv"), str(out)]
    settings = {"n_clusters": 4, "pca_components": 0.9}
    assert cli.main([*base, "--settings", json.dumps(settings)]) == 0
    assert pd.read_csv(out)["pseudo_attribute"].nunique() == 4
    report = json.loads((tmp_path / "labels.csv.json").read_text())
    assert report["settings"]["pca_components"] == 0.9
    np.save(tmp_path / "emb.npy", X[:-1])
    assert cli.main(base) == 1
    assert "does not match the 20 rows" in capsys.readouterr().err
    assert cli.main([*base, "--settings", '{"n_cluster": 4}']) == 1
    assert "unknown ClusterSettings setting(s) ['n_cluster']" in capsys.readouterr().err


def test_labels_cli(tmp_path):
    clips = clip_table()
    for machine_type, rows in clips.groupby("machine_type"):
        rows.to_csv(tmp_path / f"{machine_type}.csv", index=False)
    indexes = [str(tmp_path / f"{m}.csv") for m in ("fan", "valve", "bearing", "gearbox")]
    for machine_type, labels in pseudo_labels().items():
        table = pd.DataFrame({"file": labels.index, "pseudo_attribute": labels.to_numpy()})
        table.to_csv(tmp_path / f"pseudo_{machine_type}.csv", index=False)
    pseudo = [str(tmp_path / f"pseudo_{m}.csv") for m in ("bearing", "gearbox")]
    assert cli.main(["labels", "--index", *indexes, "--out", str(tmp_path / "none.csv")]) == 0
    none = pd.read_csv(tmp_path / "none.csv")
    assert none["class_name"].nunique() == 7
    out = tmp_path / "pseudo.csv"
    assert cli.main(["labels", "--index", *indexes, "--pseudo", *pseudo, "--out", str(out)]) == 0
    space = pd.read_csv(out)
    expected = build_label_space(clips, pseudo_labels(), "pseudo")
    assert dict(zip(space["file"], space["class_name"], strict=True)) == dict(
        zip(expected["file"], expected["class_name"], strict=True)
    )
    assert sorted(space["class_index"].unique()) == list(range(8))
