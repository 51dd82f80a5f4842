"""tests/integration/test_features.py — the behavioural features end to end: Kafka -> ingestor -> Postgres.

The ingestor computes every row's behaviour/1 feature vector (common/src/txfeatures.c) from the address profiles
its batch reads at the start of its own transaction, folding the batch's earlier messages in, and stores it in
transactions.features. On a one-partition topic the rows a batch saw are exactly those at lower offsets, so
chainwatch.replay_features() — the same C code run over the stored rows from an empty history — must give every
stored row's vector bit for bit, however the stream was cut into batches, and after kill -9 in the middle of
batches (a killed batch leaves nothing: its retry reads the profiles again). The profiles themselves must equal a
recomputation from the stored rows (verify_address_profiles()).

Then a model over the features (train_model(feature_set => 'behaviour/1')) is activated and more of the stream is
drained (the model takes some of the features, as automatic training's do): every score the ingestor stored
equals chainwatch.score_vector() of the stored vector under that model,
the anomalies are exactly the rows above its threshold, and each carries its features and an explanation in
their names.
"""
import signal
import time

from test_ingestor import assert_exactly_once, harness, read_topic, scaled, wait_for  # noqa: F401 (fixture)


def replay_mismatches(h):
    """replay_mismatches — (rows compared, rows whose stored features differ from replay_features())"""
    (compared, differ), = h.sql(
        "SELECT count(*), count(*) FILTER (WHERE r.features IS DISTINCT FROM t.features) "
        "  FROM chainwatch.replay_features(format('SELECT * FROM chainwatch.transactions WHERE kafka_topic = %%L "
        "                                         ORDER BY kafka_partition, kafka_offset', %s::text)) r "
        "  JOIN chainwatch.transactions t USING (hash)", h.topic)
    return compared, differ


def test_stored_features_equal_replay_after_kill_9_and_behaviour_model_scores_match_sql(harness):
    h = harness(partitions=1)
    first = scaled(30000, minimum=6000)
    h.txgen(first, seed=41)
    # small batches: the stream is cut into many; each batch's profiles are read after the previous committed
    for round_ in range(2):
        ing = h.ingestor(name="victim", metrics=False, BATCH_SIZE=300, KAFKA_MAX_QUEUE_SIZE=2000)
        target = (round_ + 1) * first // 4
        wait_for(f"round {round_}: {target} rows stored", lambda: h.table_count() >= target or not ing.alive(), 120,
                 on_timeout=ing.tail)
        assert ing.alive(), f"the ingestor died by itself\n{ing.tail(40)}"
        ing.signal(signal.SIGKILL)
        ing.wait(10)
    h.drain(timeout=180, BATCH_SIZE=700)
    assert_exactly_once(h, read_topic(h))

    (rows, with_features, wrong_width), = h.sql(
        "SELECT count(*), count(features), count(*) FILTER (WHERE cardinality(features) <> 12) "
        "FROM chainwatch.transactions WHERE kafka_topic = %s", h.topic)
    assert rows == first and with_features == rows and wrong_width == 0, (rows, with_features, wrong_width)
    compared, differ = replay_mismatches(h)
    assert compared == rows and differ == 0, f"{differ} of {compared} stored feature vectors differ from the replay"
    sample = h.sql("SELECT r.hash, r.features, t.features FROM chainwatch.replay_features("
                   "'SELECT * FROM chainwatch.transactions ORDER BY kafka_offset') r JOIN chainwatch.transactions t "
                   "USING (hash) WHERE r.features IS DISTINCT FROM t.features LIMIT 3")
    assert not sample, sample
    profiles_differ = h.sql("SELECT address FROM chainwatch.verify_address_profiles() LIMIT 5")
    assert not profiles_differ, f"profiles differ from a recomputation: {profiles_differ}"
    # history shows: repeat counterparties, recent activity, senders seen before
    (repeat, busy, known), = h.sql(
        "SELECT avg((features[9] = 0)::int), avg((features[8] > 0)::int), avg((features[5] > 0)::int) "
        "FROM chainwatch.transactions")
    assert repeat > 0.2 and busy > 0.2 and known > 0.5, (repeat, busy, known)

    # a model over the stored vectors, taking the features automatic training gives a model (some of the
    # vector, in their order); the ingestor scores new rows with it exactly as SQL does
    h.sql("SELECT chainwatch._load()")  # the chainwatch.* settings are defined once the library is loaded
    (model_id,), = h.sql("SELECT chainwatch.train_model('behaviour-test', 'SELECT features FROM "
                         "chainwatch.transactions', transform => 'identity', feature_set => 'behaviour/1', "
                         "feature_names => string_to_array(current_setting('chainwatch.model_features'), ','))")
    (model_names, set_), = h.sql("SELECT feature_names, feature_set FROM chainwatch.models WHERE id = %s", model_id)
    assert set_ == "behaviour/1" and 0 < len(model_names) < 12, (set_, model_names)
    h.sql("SELECT chainwatch.activate_model(%s)", model_id)
    more = scaled(6000, minimum=2000)
    h.txgen(more, seed=42)
    h.drain(timeout=180, BATCH_SIZE=500)
    assert_exactly_once(h, read_topic(h))
    (scored,), = h.sql("SELECT count(*) FROM chainwatch.transactions WHERE model_id = %s", model_id)
    assert scored == more, f"{scored} of {more} new rows scored with the behaviour model\n{h.logs()}"
    mismatches = h.sql("SELECT hash, score, chainwatch.score_vector(features, model_id) FROM chainwatch.transactions "
                       "WHERE model_id = %s AND score IS DISTINCT FROM chainwatch.score_vector(features, model_id) "
                       "LIMIT 5", model_id)
    assert not mismatches, f"ingestor scores differ from score_vector() (hash, ingestor, SQL): {mismatches}"
    compared, differ = replay_mismatches(h)
    assert compared == first + more and differ == 0, f"{differ} of {compared} vectors differ from the replay"

    want = {r[0] for r in h.sql("SELECT t.hash FROM chainwatch.transactions t JOIN chainwatch.models m "
                                "ON m.id = t.model_id WHERE t.model_id = %s AND t.score > m.threshold", model_id)}
    got = h.sql("SELECT a.hash, a.features = t.features, a.explanation, a.document::jsonb -> 'explanation' "
                "FROM chainwatch.anomalies a JOIN chainwatch.transactions t USING (hash) WHERE a.model_id = %s",
                model_id)
    assert want, "the behaviour model flagged nothing"
    assert {r[0] for r in got} == want, f"anomalies differ from rows above the threshold: {len(want)} vs {len(got)}"
    names = model_names
    for hash_, same_features, why, in_document in got:
        assert same_features, f"anomaly {hash_} carries other features than its transaction"
        assert why and {e["feature"] for e in why} == set(names), f"anomaly {hash_}: explanation {why}"
        assert in_document == why, f"anomaly {hash_}: the document's explanation differs"
