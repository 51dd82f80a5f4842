#!/usr/bin/python3
"""tools/export_sklearn_iforest.py — write a fitted sklearn IsolationForest as chainwatch-iforest/1 JSON.

Usage as a library:   from export_sklearn_iforest import export_iforest; doc = export_iforest(model)
Usage as a script:    export_sklearn_iforest.py MODEL.pickle OUT.json [--transform identity|log1p]
                      [--feature-names a,b,c]

The document follows docs/model-format.md: per-tree node arrays with feature indices mapped back
to the model's input columns (sklearn trees built with max_features < 1.0 see a column subset),
max_samples as the integer sample size, threshold = -offset_ (sklearn's score_samples is the
negated chainwatch score), and float32_inputs = true because sklearn rounds inputs to float32
before comparing them with the float64 split thresholds. `transform` only records what the
caller applied before fitting (sklearn itself never transforms); the default is identity.
"""
import argparse
import json
import pickle
import sys

FORMAT = "chainwatch-iforest/1"


def _number(x):
    """JSON-safe float: repr round-trips a float64 exactly."""
    return float(x)


def export_iforest(model, transform="identity", feature_names=None):
    """Return the chainwatch-iforest/1 document (a dict) for a fitted IsolationForest."""
    if not hasattr(model, "estimators_"):
        raise ValueError("the IsolationForest is not fitted")
    n_features = int(model.n_features_in_)
    if feature_names is None and hasattr(model, "feature_names_in_"):
        feature_names = [str(n) for n in model.feature_names_in_]
    trees = []
    for est, features in zip(model.estimators_, model.estimators_features_):
        t = est.tree_
        left = [int(v) for v in t.children_left]
        right = [int(v) for v in t.children_right]
        feature = []
        for node, f in enumerate(t.feature):
            # leaves carry sklearn's TREE_UNDEFINED (-2); map internal features to input columns
            feature.append(int(features[f]) if left[node] != -1 else -2)
        trees.append({
            "children_left": left,
            "children_right": right,
            "feature": feature,
            "threshold": [_number(v) for v in t.threshold],
            "n_node_samples": [int(v) for v in t.n_node_samples],
        })
    doc = {
        "format": FORMAT,
        "n_features": n_features,
        "transform": transform,
        "max_samples": int(model.max_samples_),
        "threshold": -float(model.offset_),
        "float32_inputs": True,
        "trees": trees,
    }
    if feature_names is not None:
        if len(feature_names) != n_features:
            raise ValueError("feature_names must have n_features entries")
        doc["feature_names"] = list(feature_names)
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="pickled fitted sklearn.ensemble.IsolationForest")
    ap.add_argument("out", help="output JSON file ('-' for stdout)")
    ap.add_argument("--transform", choices=["identity", "log1p"], default="identity",
                    help="transform applied to the features before fitting (recorded, not applied)")
    ap.add_argument("--feature-names", help="comma-separated column names")
    args = ap.parse_args(argv)
    with open(args.model, "rb") as fh:
        model = pickle.load(fh)
    names = args.feature_names.split(",") if args.feature_names else None
    doc = export_iforest(model, args.transform, names)
    text = json.dumps(doc, separators=(",", ":"))
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
