/* apiserver/src/sql.c — the text of every statement chainwatch-api prepares; JSON is built by
 * Postgres
 *
 * Rules for this file: user input only ever arrives as a $n parameter (never spliced into the
 * text); lists read chainwatch.recent_anomalies / recent_transactions (the TTL-filtered views),
 * never the tables, so no row older than the TTL is ever returned; times are RFC 3339 UTC with
 * microseconds (the connections run with TimeZone=UTC); amounts in wei are JSON strings (exact
 * numeric text). Timestamps travel as microseconds since the epoch (bigint), converted without
 * floating point.
 */
#include "sql.h"

/* RFC 3339 UTC text of a timestamptz expression (NULL stays NULL) */
#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
/* a timestamptz from microseconds since the epoch, exactly (both products are exact in float8) */
#define US_TS(p)                                                                                   \
    "(timestamptz 'epoch' + (" p "::bigint / 1000000) * interval '1 second' + (" p                 \
    "::bigint % 1000000) * interval '1 microsecond')"
#define ANOMALY_TTL                                                                                \
    "(SELECT r.ttl FROM chainwatch.retention_policies r WHERE r.table_name = 'anomalies')"

#define CW_INT64_MAX_SQL "9223372036854775807"

/*
 * KEYSET_PAGE(a, from, us, id, limit): the JSON documents (anomalies.document), with the keyset
 * columns, of up to limit + 1 rows of `from` (aliased a) after the cursor (us, id), newest first.
 * The cursor parameters are coalesce()d into index bounds, not "$n IS NULL OR ...", which generic
 * plans would keep as filters.
 */
#define KEYSET_PAGE(a, from, us, id, limit)                                                        \
    "SELECT " a ".document, " a ".detected_at, " a ".id FROM " from " " a " WHERE (" a             \
    ".detected_at, " a                                                                             \
    ".id) < (coalesce(" US_TS(us) ", 'infinity'), coalesce(" id "::bigint, " CW_INT64_MAX_SQL      \
                                  ")) ORDER BY " a ".detected_at DESC, " a ".id DESC LIMIT " limit \
                                  "::int + 1"

#define MODEL_JSON(m)                                                                              \
    "json_build_object('id', " m ".id, 'name', " m ".name, 'created_at', " TS(                     \
        m ".created_at") ", 'created_by', " m ".created_by, 'algorithm', " m                       \
                         ".algorithm, 'source', " m ".source, 'n_features', " m                    \
                         ".n_features, 'feature_names', " m ".feature_names, 'transform', " m      \
                         ".transform, 'n_trees', " m ".n_trees, 'sample_size', " m                 \
                         ".sample_size, 'contamination', " m ".contamination, 'threshold', " m     \
                         ".threshold, 'seed', " m ".seed, 'training_rows', " m                     \
                         ".training_rows, 'training_summary', " m                                  \
                         ".training_summary, 'is_active', " m ".is_active, 'format_version', " m   \
                         ".format_version)"

const sql_def sql_statements[SQL_STMT_COUNT] = {
    [SQL_AUTH] = {"cw_auth", 1, "SELECT chainwatch.authenticate_api_key($1::text)::text"},

    /*
     * One page of the anomaly list, newest first, keyset-paginated on (detected_at, id), in
     * binary: each row's JSON is anomalies.document, written with the row (extension 0.7.0), so
     * a page costs the backend one text per row and anomalies.c only joins them. Up to $8 + 1
     * rows (one more than the page says whether there is a next one), or a single row of NULL
     * page columns when the page is empty; every row starts with the
     * filter's total and the seconds until the filter's oldest row leaves the TTL (a cache entry
     * must not outlive it), computed once (h is materialized: inlined, the planner would
     * evaluate it per row). The unfiltered list has a statement of its own, below. $1 severities,
     * $2 since (us, inclusive), $3 until (us, exclusive), $4 address (from or to), $5 min_score,
     * $6/$7 cursor (us, id), $8 limit.
     *
     * The pool plans generically (db.c), so the time bounds, like the cursor (KEYSET_PAGE), are
     * written as coalesce()d index bounds, not "$n IS NULL OR ...": an OR would leave them as
     * filters and a deep page would walk every newer row.
     */
    [SQL_ANOMALY_LIST] =
        {"cw_anomaly_list", 8,
         "WITH f AS NOT MATERIALIZED ("
         " SELECT a.* FROM chainwatch.recent_anomalies a"
         " WHERE a.detected_at >= coalesce(" US_TS(
             "$2") ", '-infinity')"
                   "   AND a.detected_at < coalesce(" US_TS(
                       "$3") ", 'infinity')"
                             "   AND ($1::chainwatch.severity_level[] IS NULL"
                             "        OR a.severity = ANY ($1::chainwatch.severity_level[]))"
                             "   AND ($4::text IS NULL OR a.from_address = $4::text OR "
                             "a.to_address = $4::text)"
                             "   AND ($5::float8 IS NULL OR a.score >= $5::float8)),"
                             " h AS MATERIALIZED ("
                             "  SELECT (SELECT count(*) FROM f) AS total,"
                             "         extract(epoch FROM (SELECT min(f.detected_at) FROM f) "
                             "+ " ANOMALY_TTL "                 - now())::float8 AS expires_in)"
                             " SELECT h.total, h.expires_in, p.* FROM h LEFT JOIN LATERAL "
                             "(" KEYSET_PAGE("f", "f", "$6", "$7",
                                             "$8") ") p ON true"
                                                   " ORDER BY p.detected_at DESC, p.id DESC",
         true},

    /*
     * The unfiltered list (what dashboards poll): the columns of cw_anomaly_list, but the total
     * is chainwatch.recent_anomaly_count() (partition row counts instead of every row), and none
     * of the filter plumbing. Each execution of a generic plan initializes a scan of every
     * partition within the TTL per subquery, which is most of its cost, so there are as few
     * subqueries as can be. $1/$2 cursor (us, id), $3 limit.
     */
    [SQL_ANOMALY_LIST_ALL] =
        {"cw_anomaly_list_all", 3,
         "WITH h AS MATERIALIZED ("
         "  SELECT chainwatch.recent_anomaly_count() AS total,"
         "         extract(epoch FROM (SELECT min(a.detected_at) FROM chainwatch.recent_anomalies "
         "a)"
         "                 + " ANOMALY_TTL " - now())::float8 AS expires_in)"
         " SELECT h.total, h.expires_in, p.* FROM h LEFT JOIN LATERAL (" KEYSET_PAGE(
             "a", "chainwatch.recent_anomalies", "$1", "$2",
             "$3") ") p ON true"
                   " ORDER BY p.detected_at DESC, p.id DESC",
         true},

    /* the newest anomaly with this hash within the TTL; columns: JSON, seconds until it expires */
    [SQL_ANOMALY_GET] = {"cw_anomaly_get", 1,
                         "SELECT a.document,"
                         " extract(epoch FROM a.detected_at + " ANOMALY_TTL " - now())::float8"
                         " FROM chainwatch.recent_anomalies a WHERE a.hash = $1::text"
                         " ORDER BY a.detected_at DESC, a.id DESC LIMIT 1"},

    /* the newest stored transaction with this hash, its score and its model's verdict */
    [SQL_TX_GET] =
        {"cw_tx_get", 1,
         "SELECT json_build_object('hash', t.hash, 'from_address', t.from_address,"
         " 'to_address', t.to_address, 'value', t.value::text, 'gas', t.gas::text,"
         " 'gas_price', t.gas_price::text, 'block_number', t.block_number,"
         " 'tx_time', " TS("t.tx_time") ", 'detected_at', " TS(
             "t.detected_at") ","
                              " 'score', t.score, 'model_id', t.model_id, 'threshold', m.threshold,"
                              " 'is_anomaly', t.score > m.threshold, 'kafka_topic', t.kafka_topic,"
                              " 'kafka_partition', t.kafka_partition, 'kafka_offset', "
                              "t.kafka_offset)::text"
                              " FROM chainwatch.recent_transactions t"
                              " LEFT JOIN chainwatch.models m ON m.id = t.model_id"
                              " WHERE t.hash = $1::text ORDER BY t.detected_at DESC LIMIT 1"},

    /* score one transaction with the active model; no row: no active model. $1..$3 value, gas,
     * gas price; $4, $5 from and to (NULL when absent), $6 its Unix time (NULL when absent). A
     * model over behaviour/1 scores the transaction's features against the address profiles as
     * they are now (chainwatch.features), any other its three amounts.
     * Columns: model id, threshold, score, is_anomaly, severity (NULL unless anomalous),
     * explanation (jsonb text, docs/detection.md) */
    [SQL_PREDICT] = {"cw_predict", 6,
                     "SELECT m.id, m.threshold, s.score, s.score > m.threshold,"
                     " CASE WHEN s.score > m.threshold"
                     "      THEN chainwatch.severity(s.score, $1::numeric, $3::numeric)::text END,"
                     " s.explanation::text"
                     " FROM chainwatch.models m,"
                     " LATERAL (SELECT CASE WHEN b.x IS NULL"
                     "   THEN chainwatch.score($1::numeric, $2::numeric, $3::numeric, m.id)"
                     "   ELSE chainwatch.score_vector(b.x, m.id) END AS score,"
                     "  CASE WHEN b.x IS NULL"
                     "   THEN chainwatch.explain($1::numeric, $2::numeric, $3::numeric, m.id)"
                     "   ELSE chainwatch.explain_vector(b.x, m.id) END AS explanation"
                     "  FROM (SELECT CASE WHEN m.feature_set = 'behaviour/1'"
                     "   THEN chainwatch.features($4::text, $5::text, $1::numeric, $2::numeric,"
                     "                            $3::numeric, to_timestamp($6::bigint)) END AS x"
                     "   OFFSET 0) b OFFSET 0) s"
                     " WHERE m.is_active"},

    /* score arrays of transactions in one call, in order; same columns as cw_predict; $1..$6 the
     * same as arrays. A model over behaviour/1 scores each against the profiles as they are now
     * (the batch's own earlier transactions are not in them: nothing is stored) */
    [SQL_PREDICT_BATCH] =
        {"cw_predict_batch", 6,
         "SELECT m.id, m.threshold, s.score, s.score > m.threshold,"
         " CASE WHEN s.score > m.threshold"
         "      THEN chainwatch.severity(s.score, s.value, s.gas_price)::text END,"
         " chainwatch.explain(s.value, s.gas, s.gas_price, m.id)::text, s.ord"
         " FROM chainwatch.models m,"
         " ROWS FROM (chainwatch.score_batch($1::numeric[], $2::numeric[], $3::numeric[], m.id),"
         "            unnest($1::numeric[]), unnest($2::numeric[]), unnest($3::numeric[]))"
         "   WITH ORDINALITY AS s(score, value, gas, gas_price, ord)"
         " WHERE m.is_active AND m.feature_set IS DISTINCT FROM 'behaviour/1'"
         " UNION ALL"
         " SELECT m.id, m.threshold, s.score, s.score > m.threshold,"
         " CASE WHEN s.score > m.threshold"
         "      THEN chainwatch.severity(s.score, s.value, s.gas_price)::text END,"
         " chainwatch.explain_vector(s.x, m.id)::text, s.ord"
         " FROM chainwatch.models m,"
         " LATERAL (SELECT u.value, u.gas_price, u.ord, u.x, chainwatch.score_vector(u.x, m.id) AS "
         "score"
         "  FROM (SELECT v.*, chainwatch.features(v.f, v.t, v.value, v.gas, v.gas_price,"
         "                                        to_timestamp(v.ts)) AS x"
         "   FROM unnest($1::numeric[], $2::numeric[], $3::numeric[], $4::text[], $5::text[],"
         "               $6::bigint[]) WITH ORDINALITY AS v(value, gas, gas_price, f, t, ts, ord)"
         "   OFFSET 0) u) s"
         " WHERE m.is_active AND m.feature_set = 'behaviour/1'"
         " ORDER BY 7"},

    /* $1 window in seconds */
    [SQL_STATS] =
        {"cw_stats", 1,
         "SELECT json_build_object("
         " 'window_seconds', $1::int,"
         " 'anomalies_by_severity', (SELECT json_object_agg(s.severity, s.anomalies"
         "     ORDER BY s.severity) FROM chainwatch.anomaly_stats(make_interval(secs => $1::int)) "
         "s),"
         " 'store', (SELECT json_agg(json_build_object('table', st.table_name, 'rows', st.rows,"
         "     'max_rows', st.max_rows, 'ttl_seconds', extract(epoch FROM st.ttl),"
         "     'partitions', st.partitions,"
         "     'oldest_row_age_seconds', extract(epoch FROM st.oldest_row_age),"
         "     'bytes', st.bytes, 'evicted_ttl', st.evicted_ttl, 'evicted_size', st.evicted_size,"
         "     'last_maintenance_at', " TS(
             "st.last_maintenance_at") ","
                                       "     'last_maintenance_error', st.last_maintenance_error) "
                                       "ORDER BY st.table_name)"
                                       "   FROM chainwatch.status() st),"
                                       " 'ingest', json_build_object('last_ingest_at', " TS(
                                           "i.last_ingest_at") ","
                                                               "     'lag_seconds', extract(epoch "
                                                               "FROM now() - i.last_ingest_at),"
                                                               "     'batches', i.batches, 'rows', "
                                                               "i.rows_ingested, 'anomalies', "
                                                               "i.anomalies_ingested,"
                                                               "     'dead_letters', "
                                                               "i.dead_letters_ingested, "
                                                               "'anomaly_generation', "
                                                               "i.anomaly_generation,"
                                                               "     'partitions', (SELECT "
                                                               "coalesce(json_agg(json_build_"
                                                               "object("
                                                               "         'consumer_group', "
                                                               "k.consumer_group, 'topic', "
                                                               "k.topic, 'partition', k.partition,"
                                                               "         'next_offset', "
                                                               "k.next_offset, 'committed_at', " TS(
                                                                   "k.updated_at") ","
                                                                                   "         "
                                                                                   "'lag_seconds', "
                                                                                   "extract(epoch "
                                                                                   "FROM now() - "
                                                                                   "k.updated_at))"
                                                                                   "         ORDER "
                                                                                   "BY "
                                                                                   "k.consumer_"
                                                                                   "group, "
                                                                                   "k.topic, "
                                                                                   "k.partition), "
                                                                                   "'[]')"
                                                                                   "       FROM "
                                                                                   "chainwatch."
                                                                                   "kafka_offsets "
                                                                                   "k)),"
                                                                                   " 'active_model_"
                                                                                   "id', (SELECT "
                                                                                   "m.id FROM "
                                                                                   "chainwatch."
                                                                                   "models m WHERE "
                                                                                   "m.is_active),"
                                                                                   " 'generated_at'"
                                                                                   ", " TS(
                                                                                       "now()") "):"
                                                                                                ":t"
                                                                                                "ex"
                                                                                                "t"
                                                                                                " F"
                                                                                                "RO"
                                                                                                "M "
                                                                                                "ch"
                                                                                                "ai"
                                                                                                "nw"
                                                                                                "at"
                                                                                                "ch"
                                                                                                ".i"
                                                                                                "ng"
                                                                                                "es"
                                                                                                "t_"
                                                                                                "st"
                                                                                                "at"
                                                                                                "e "
                                                                                                "i"},

    [SQL_MODEL_LIST] = {"cw_model_list", 0,
                        "SELECT coalesce(json_agg(" MODEL_JSON(
                            "m") " ORDER BY m.id DESC),"
                                 " '[]')::text FROM chainwatch.models m"},
    [SQL_MODEL_GET] = {"cw_model_get", 1,
                       "SELECT " MODEL_JSON(
                           "m") "::text,"
                                " (SELECT s.generation FROM chainwatch.registry_state s)"
                                " FROM chainwatch.models m WHERE m.id = $1::int"},

    /* train from the stored transactions ($7: only the last N seconds), activate if $8 */
    [SQL_MODEL_TRAIN] =
        {"cw_model_train", 8,
         "SELECT CASE WHEN $8::boolean THEN chainwatch.activate_model(t.id) ELSE t.id END"
         " FROM (SELECT chainwatch.train_model($1::text,"
         "   CASE WHEN $7::int IS NULL"
         "        THEN 'SELECT value, gas, gas_price FROM chainwatch.recent_transactions'"
         "        ELSE format('SELECT value, gas, gas_price FROM chainwatch.recent_transactions"
         " WHERE detected_at > now() - %L::interval', make_interval(secs => $7::int)) END,"
         "   $2::int, $3::int, $4::float8, $5::bigint, $6::text) AS id OFFSET 0) t"},
    [SQL_MODEL_ACTIVATE] = {"cw_model_activate", 1, "SELECT chainwatch.activate_model($1::int)"},
    [SQL_MODEL_ROLLBACK] = {"cw_model_rollback", 0, "SELECT chainwatch.rollback_model()"},
};
