-- score.sql: the scorers' shapes, NULL handling, batch forms and thresholds
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE TABLE s_tx AS
SELECT round(exp(38 + sin(i) + sin(i * 2.3) + sin(i * 5.1)))::numeric AS value,
       (21000 + 1000 * ((i * 7) % 13))::numeric AS gas,
       round((20 + 4 * (sin(i * 1.7) + sin(i * 3.1))) * 1e9)::numeric AS gas_price
FROM generate_series(1, 3000) i;
SELECT chainwatch.train_model('s', 'SELECT value, gas, gas_price FROM s_tx', n_trees => 50) AS m \gset
SELECT chainwatch.activate_model(:m) IS NOT NULL;

-- scores are in (0, 1]
SELECT min(s) > 0 AND max(s) <= 1 AS in_range FROM (SELECT chainwatch.score(value, gas, gas_price) s FROM s_tx) q;

-- an absurd transaction scores higher than a typical one and is flagged
SELECT chainwatch.score(1000000000000000000000000, 25000000, 50000000000000) >
       chainwatch.score(31855931757113756, 27000, 20000000000) AS absurd_scores_higher,
       chainwatch.is_anomaly(1000000000000000000000000, 25000000, 50000000000000) AS absurd_flagged,
       chainwatch.is_anomaly(31855931757113756, 27000, 20000000000) AS typical_flagged;

-- values up to 2^256 - 1 wei are accepted
SELECT chainwatch.score(115792089237316195423570985008687907853269984665640564039457584007913129639935, 21000, 1) > 0 AS max_uint256_ok;

-- is_anomaly is exactly score > threshold
SELECT count(*) AS disagreements FROM s_tx
WHERE chainwatch.is_anomaly(value, gas, gas_price) <> (chainwatch.score(value, gas, gas_price) > chainwatch.model_threshold());

-- the three shapes agree: numeric, float8[] and the batch forms
SELECT count(*) AS vector_disagreements FROM s_tx
WHERE chainwatch.score(value, gas, gas_price) <> chainwatch.score_vector(ARRAY[value, gas, gas_price]::float8[]);
SELECT count(*) AS is_anomaly_vector_disagreements FROM s_tx
WHERE chainwatch.is_anomaly(value, gas, gas_price) <> chainwatch.is_anomaly(ARRAY[value, gas, gas_price]::float8[]);
WITH b AS (SELECT array_agg(value ORDER BY value, gas, gas_price) v, array_agg(gas ORDER BY value, gas, gas_price) g,
                  array_agg(gas_price ORDER BY value, gas, gas_price) p FROM s_tx),
     s AS (SELECT row_number() OVER () i, x FROM b, chainwatch.score_batch(b.v, b.g, b.p) x),
     r AS (SELECT row_number() OVER (ORDER BY value, gas, gas_price) i, chainwatch.score(value, gas, gas_price) x FROM s_tx)
SELECT count(*) AS rows, count(*) FILTER (WHERE s.x <> r.x) AS batch_disagreements FROM s JOIN r USING (i);
SELECT round(x::numeric, 12) = round(chainwatch.score(1000000000000000000, 21000, 20000000000)::numeric, 12) AS matrix_row_ok
FROM chainwatch.score_batch(ARRAY[[1e18, 21000, 2e10]]::float8[]) x;
SELECT count(*) AS empty_batch FROM chainwatch.score_batch('{}'::float8[]);

-- NULL in, NULL out; a NULL model id means the active model
SELECT chainwatch.score(NULL, 21000, 1) IS NULL AS null_value,
       chainwatch.score(1, NULL, 1) IS NULL AS null_gas,
       chainwatch.score_vector(NULL) IS NULL AS null_vector,
       chainwatch.is_anomaly(NULL::numeric, 1, 1) IS NULL AS null_is_anomaly,
       chainwatch.score(1, 21000, 1, NULL) = chainwatch.score(1, 21000, 1, :m) AS null_model_is_active;
SELECT x IS NULL AS null_element_scores_null FROM chainwatch.score_batch(ARRAY[NULL]::numeric[], ARRAY[1]::numeric[], ARRAY[1]::numeric[]) x;

-- scorers are STABLE and PARALLEL SAFE, never IMMUTABLE
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'chainwatch' AND p.proname IN ('score', 'score_vector', 'is_anomaly', 'score_batch', 'model_threshold', 'severity', 'export_model')
ORDER BY 1, 2, 3, 4;

-- 0.5.0 converts integral wei amounts below 2^64 from numeric's digits, without a text round trip: it must give
-- float8(numeric) for every amount (ties to even above 2^53, 2^64 - 1 rounding up, display scales, fractions and
-- values past 2^64 taking the old path) and for random amounts of 1 to 30 digits
SELECT setseed(0.5);
SELECT count(*) AS amounts, count(*) FILTER (WHERE chainwatch._wei_float8(x) IS DISTINCT FROM x::float8) AS disagreements
FROM (
    SELECT x FROM (VALUES (0::numeric), (0.000), (1), (9999), (10000), (10001), (2::numeric ^ 53), (2::numeric ^ 53 + 1),
                          (2::numeric ^ 53 + 3), (2::numeric ^ 63 - 1), (2::numeric ^ 63), (2::numeric ^ 63 + 1025),
                          (18446744073709551615), (18446744073709551616), (18446744073709551617), (10::numeric ^ 19),
                          (10::numeric ^ 20), (10::numeric ^ 20 + 1), (2::numeric ^ 256 - 1), (1.5), (0.0001),
                          (100000000.000), (99999999999999999999.9)) v(x)
    UNION ALL
    SELECT floor(random() * 1e15)::numeric * 10::numeric ^ floor(random() * 16)::int + floor(random() * 1e15)::numeric
      FROM generate_series(1, 100000)
) amounts;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err('SELECT chainwatch._wei_float8(-1)') AS negative, pg_temp.err($$SELECT chainwatch._wei_float8('NaN')$$) AS nan;
