# tests/integration/test_sklearn_agreement.py — acceptance: chainwatch scores sklearn IsolationForests exactly
#
# For each data shape an sklearn IsolationForest is fitted, exported with tools/export_sklearn_iforest.py,
# imported with chainwatch.import_model(), and every training row plus a set of fresh rows (out-of-range values,
# values sitting exactly on split thresholds) is scored in SQL. Acceptance: |score - (-score_samples)| <= 1e-12
# and is_anomaly == (predict == -1) on every row, score_batch(float8[][]) agrees with score_vector, and
# import_model(export_model(id)) scores bit for bit identically. A last test checks that native training through
# SQL is a pure function of the seed. The module works in a database of its own on the session stack.
import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from conftest import REPO_ROOT, pg_connect

sys.path.insert(0, str(REPO_ROOT / "tools"))
from export_sklearn_iforest import export_iforest  # noqa: E402

import psycopg2.extras  # noqa: E402
from psycopg2.extras import Json  # noqa: E402

TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def db(stack):
    """db — an autocommit connection to a fresh database with the extension; dropped after the module."""
    name = f"cw_sklearn_{uuid.uuid4().hex[:10]}"
    admin = pg_connect(stack)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn = pg_connect(stack, dbname=name)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION chainwatch")
            cur.execute("CREATE TABLE rows (shape text, i int, x float8[], PRIMARY KEY (shape, i))")
        yield conn
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# ---- data shapes -------------------------------------------------------------------------------------------

def wei_like(rng, n):
    """wei_like — (value, gas, gas_price): lognormal wei amounts, gas 21000 or 50k-1M, 10-100 gwei prices."""
    value = np.floor(rng.lognormal(mean=40.0, sigma=3.0, size=n))
    value[rng.random(n) < 0.2] = 0.0
    gas = np.where(rng.random(n) < 0.6, 21000.0, np.floor(rng.uniform(50_000, 1_000_000, n)))
    gas_price = np.floor(rng.uniform(10e9, 100e9, n))
    return np.column_stack([value, gas, gas_price])


def outliers_signed(rng, nf):
    """outliers_signed — fresh rows far outside any training range (within float32, as sklearn requires), both signs."""
    return np.array([[s * 10.0 ** e] * nf for e in (3, 6, 12, 30) for s in (1, -1)] + [[0.0] * nf])


def outliers_wei(rng, nf):
    """outliers_wei — non-negative extremes for models whose transform is log1p."""
    return np.array([[0.0] * nf, [1.0] * nf, [1e30] * nf, [1e77, 21000.0, 1e9][:nf], [5e20, 1e7, 5e12][:nf]])


SHAPES = {
    # name: (train maker, fresh maker, IsolationForest kwargs, transform applied before fitting)
    "gaussian3": (lambda r: r.normal(size=(3000, 3)), lambda r: r.normal(scale=3.0, size=(400, 3)),
                  {}, "identity"),
    "gaussian3_c005": (lambda r: r.normal(size=(3000, 3)), lambda r: r.normal(scale=2.0, size=(400, 3)),
                       {"contamination": 0.05}, "identity"),
    "wei_raw": (lambda r: wei_like(r, 3000), lambda r: wei_like(r, 400), {"contamination": 0.01}, "identity"),
    "wei_log1p": (lambda r: wei_like(r, 3000), lambda r: wei_like(r, 400), {"contamination": 0.02}, "log1p"),
    "seven_cols_maxfeat_bootstrap": (lambda r: r.standard_t(df=3, size=(3000, 7)),
                                     lambda r: r.standard_t(df=3, size=(400, 7)),
                                     {"max_features": 0.5, "bootstrap": True, "contamination": 0.05},
                                     "identity"),
    "discrete_duplicates": (lambda r: r.integers(0, 4, size=(3000, 3)).astype(float),
                            lambda r: r.integers(-1, 6, size=(400, 3)).astype(float),
                            {"contamination": 0.1}, "identity"),
    "max_samples_64": (lambda r: r.normal(size=(2000, 3)), lambda r: r.normal(scale=3.0, size=(300, 3)),
                       {"max_samples": 64, "contamination": 0.03}, "identity"),
    "max_samples_2048_deep": (lambda r: r.normal(size=(6000, 3)), lambda r: r.normal(scale=3.0, size=(400, 3)),
                              {"max_samples": 2048, "contamination": "auto"}, "identity"),
    "single_feature": (lambda r: r.exponential(size=(2000, 1)), lambda r: r.exponential(scale=4.0, size=(300, 1)),
                       {"contamination": 0.05}, "identity"),
}


def threshold_rows(model, nf, limit=200):
    """threshold_rows — rows whose values sit exactly on split thresholds (and one ulp either side)."""
    out = []
    for est, feats in zip(model.estimators_[:5], model.estimators_features_[:5]):
        t = est.tree_
        for node in np.nonzero(t.children_left != -1)[0][:limit // 15]:
            thr = float(t.threshold[node])
            for v in (thr, np.nextafter(thr, -np.inf), np.nextafter(thr, np.inf)):
                row = [0.0] * nf
                row[int(feats[t.feature[node]])] = float(v)
                out.append(row)
    return np.array(out, dtype=float).reshape(-1, nf)


def load_rows(db, shape, X):
    """load_rows — store X as rows (shape, i, x float8[]); floats travel as repr(), which is exact."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM rows WHERE shape = %s", (shape,))
        psycopg2.extras.execute_values(
            cur, "INSERT INTO rows (shape, i, x) VALUES %s",
            [(shape, i, [float(v) for v in row]) for i, row in enumerate(X)], page_size=2000)


def sql_scores(db, shape, model_id):
    """sql_scores — (scores, is_anomaly) arrays from score_vector/is_anomaly over the stored rows, in order."""
    with db.cursor() as cur:
        cur.execute("SELECT chainwatch.score_vector(x, %s), chainwatch.is_anomaly(x, %s) FROM rows "
                    "WHERE shape = %s ORDER BY i", (model_id, model_id, shape))
        got = cur.fetchall()
    return np.array([g[0] for g in got]), np.array([g[1] for g in got])


def describe_mismatch(X, want, got, bad, label):
    """describe_mismatch — a readable report of the first disagreeing rows."""
    lines = [f"{label}: {int(bad.sum())} of {len(bad)} rows disagree; first ones:"]
    for i in np.nonzero(bad)[0][:8]:
        lines.append(f"  row {i} x={X[i].tolist()!r}: sklearn {want[i]!r}, chainwatch {got[i]!r}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fitted(db):
    """fitted — per shape, fitted lazily: (model, X rows scored, sklearn scores, sklearn predict, model id)."""
    cache = {}

    def get(shape):
        if shape not in cache:
            make_train, make_fresh, kwargs, transform = SHAPES[shape]
            rng = np.random.default_rng(sum(map(ord, shape)))  # stable per shape (hash() is salted)
            X_train = make_train(rng)
            nf = X_train.shape[1]
            pre = np.log1p if transform == "log1p" else (lambda a: a)
            model = IsolationForest(n_estimators=100, random_state=7, **kwargs).fit(pre(X_train))
            fresh = make_fresh(rng)
            extremes = outliers_wei(rng, nf) if transform == "log1p" else outliers_signed(rng, nf)
            parts = [X_train, fresh, extremes]
            if transform == "identity":
                parts.append(threshold_rows(model, nf))
            X = np.vstack(parts)
            want = -model.score_samples(pre(X))
            pred = model.predict(pre(X)) == -1
            doc = export_iforest(model, transform=transform)
            with db.cursor() as cur:
                cur.execute("SELECT chainwatch.import_model(%s, %s::jsonb)", (f"sk_{shape}", Json(doc)))
                model_id = cur.fetchone()[0]
            load_rows(db, shape, X)
            cache[shape] = (model, X, want, pred, model_id)
        return cache[shape]

    return get


@pytest.mark.parametrize("shape", list(SHAPES))
def test_scores_match_sklearn(fitted, db, shape):
    """Every row: |chainwatch score - (-score_samples)| <= 1e-12, and is_anomaly == (predict == -1) except on ties
    (rows scoring within 1e-12 of the threshold)."""
    model, X, want, pred, model_id = fitted(shape)
    got, anomaly = sql_scores(db, shape, model_id)
    assert len(got) == len(X)
    bad = ~(np.abs(got - want) <= TOLERANCE)
    assert not bad.any(), describe_mismatch(X, want, got, bad, f"{shape} scores")
    # a row scoring within TOLERANCE of the threshold is a tie: the two sides agree on its score to the last
    # few ulps, and which side of the threshold it falls is decided by those ulps (numpy's AVX-512 exp/log
    # round differently from glibc's on some hosts; discrete data puts whole groups of duplicates exactly on
    # the threshold). Every other row must be classified alike.
    tie = np.abs(want + model.offset_) <= TOLERANCE
    bad = (anomaly != pred) & ~tie
    assert not bad.any(), describe_mismatch(X, pred, anomaly, bad, f"{shape} is_anomaly")
    assert tie.sum() < len(X) // 10, f"{shape}: {int(tie.sum())} rows tie with the threshold"
    with db.cursor() as cur:
        cur.execute("SELECT threshold, n_trees, sample_size, n_features FROM chainwatch.models WHERE id = %s",
                    (model_id,))
        threshold, n_trees, sample_size, n_features = cur.fetchone()
    assert threshold == -model.offset_
    assert (n_trees, sample_size, n_features) == (100, model.max_samples_, X.shape[1])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_score_batch_matches(fitted, db, shape):
    """score_batch(float8[][]) returns score_vector's values, in row order."""
    model, X, want, pred, model_id = fitted(shape)
    got, _ = sql_scores(db, shape, model_id)
    with db.cursor() as cur:
        cur.execute("SELECT s FROM chainwatch.score_batch(%s::float8[][], %s) WITH ORDINALITY AS t(s, n) "
                    "ORDER BY n", ([[float(v) for v in row] for row in X], model_id))
        batch = np.array([r[0] for r in cur.fetchall()])
    assert len(batch) == len(X)
    bad = batch != got
    assert not bad.any(), describe_mismatch(X, got, batch, bad, f"{shape} score_batch vs score_vector")
    bad = ~(np.abs(batch - want) <= TOLERANCE)
    assert not bad.any(), describe_mismatch(X, want, batch, bad, f"{shape} score_batch vs sklearn")


@pytest.mark.parametrize("shape", ["gaussian3", "wei_log1p", "seven_cols_maxfeat_bootstrap",
                                   "max_samples_2048_deep"])
def test_export_import_round_trip(fitted, db, shape):
    """import_model(export_model(id)) stores the same forest and scores bit for bit identically."""
    model, X, want, pred, model_id = fitted(shape)
    with db.cursor() as cur:
        cur.execute("SELECT chainwatch.import_model(%s, chainwatch.export_model(%s))",
                    (f"again_{shape}", model_id))
        again = cur.fetchone()[0]
        cur.execute("SELECT chainwatch.score_vector(x, %s), chainwatch.score_vector(x, %s), "
                    "chainwatch.is_anomaly(x, %s) = chainwatch.is_anomaly(x, %s) "
                    "FROM rows WHERE shape = %s ORDER BY i", (model_id, again, model_id, again, shape))
        rows = cur.fetchall()
        cur.execute("SELECT a.forest = b.forest, a.threshold = b.threshold, a.transform = b.transform "
                    "FROM chainwatch.models a, chainwatch.models b WHERE a.id = %s AND b.id = %s",
                    (model_id, again))
        same_forest, same_threshold, same_transform = cur.fetchone()
    first = np.array([r[0] for r in rows])
    second = np.array([r[1] for r in rows])
    bad = first.view(np.uint64) != second.view(np.uint64)
    assert not bad.any(), describe_mismatch(X, first, second, bad, f"{shape} re-imported model")
    assert all(r[2] for r in rows)
    assert same_threshold and same_transform
    assert same_forest, "export/import changed the stored forest bytes"


def test_native_training_deterministic_by_seed(db):
    """train_model twice with one seed gives identical forest bytes; another seed gives different ones."""
    rng = np.random.default_rng(3)
    X = wei_like(rng, 800)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE train_small (value numeric(78,0), gas numeric(78,0), gas_price numeric(78,0))")
        psycopg2.extras.execute_values(cur, "INSERT INTO train_small VALUES %s",
                                       [tuple(str(int(v)) for v in row) for row in X])
        ids = []
        for seed in (11, 11, 12):
            cur.execute("SELECT chainwatch.train_model(%s, 'SELECT value, gas, gas_price FROM train_small', "
                        "25, 128, 0.02, %s, 'log1p')", (f"native_{len(ids)}", seed))
            ids.append(cur.fetchone()[0])
        cur.execute("SELECT id, forest, checksum, threshold FROM chainwatch.models WHERE id = ANY(%s) ORDER BY id",
                    (ids,))
        got = {r[0]: r[1:] for r in cur.fetchall()}
    a, b, c = (got[i] for i in ids)
    assert bytes(a[0]) == bytes(b[0]), "same seed, different forests"
    assert a[1:] == b[1:]
    assert bytes(a[0]) != bytes(c[0]), "different seeds, identical forests"
    assert math.isfinite(a[2])
