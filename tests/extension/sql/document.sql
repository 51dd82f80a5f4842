-- document.sql: anomalies.document, the REST JSON of each anomaly, set by a trigger when the row is written
SET client_min_messages = warning;
SET TimeZone = 'America/New_York';   -- the document is UTC whatever the session says
SET extra_float_digits = 3;          -- and the score is the shortest form whatever this says
BEGIN;
INSERT INTO chainwatch.anomalies (id, hash, from_address, to_address, value, gas, gas_price, block_number, tx_time,
                                  detected_at, score, severity, model_id, kafka_topic, kafka_partition, kafka_offset)
VALUES (1, '0xabc', '0xfrom', '0xto', 115792089237316195423570985008687907853269984665640564039457584007913129639935,
        21000, 20000000000, 18000000, '2024-02-29 23:59:59.999999+00', now(), 0.1, 'critical', 7, 'blockchain-transactions', 3, 42),
       -- every optional column NULL, a score needing 17 digits, text that must be escaped
       (2, E'0x"q\\\n\t', NULL, NULL, 0, 0, 0, NULL, NULL, now(), 0.30000000000000004, 'low', NULL, NULL, NULL, NULL),
       -- times at the edges: infinity has no RFC 3339 form; years past 9999
       (3, '0xedge', NULL, NULL, 1, 1, 1, -1, 'infinity', now(), 1, 'medium', NULL, NULL, NULL, NULL),
       (4, '0xfar', NULL, NULL, 1, 1, 1, NULL, '12345-06-07 08:09:10.5+00', now(), 'NaN', 'high', NULL, NULL, NULL, NULL);
-- the documents, without detected_at (now)
SELECT id, regexp_replace(document, '"detected_at":"[^"]*",', '') AS document FROM chainwatch.anomalies WHERE id <= 4 ORDER BY id;
-- every member is what Postgres's own JSON says about the column (detected_at included)
SELECT a.id, a.document::jsonb = jsonb_build_object(
           'id', a.id, 'hash', a.hash, 'from_address', a.from_address, 'to_address', a.to_address,
           'value', a.value::text, 'gas', a.gas::text, 'gas_price', a.gas_price::text, 'block_number', a.block_number,
           'tx_time', CASE WHEN isfinite(a.tx_time) THEN to_char(a.tx_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
           'detected_at', to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'score', CASE WHEN a.score <> 'NaN' THEN a.score END, 'severity', a.severity, 'model_id', a.model_id,
           'kafka_topic', a.kafka_topic, 'kafka_partition', a.kafka_partition, 'kafka_offset', a.kafka_offset,
           'explanation', a.explanation) AS same
  FROM chainwatch.anomalies a WHERE a.id <= 4 ORDER BY a.id;
-- the TTL view carries it
SELECT count(*) AS in_view FROM chainwatch.recent_anomalies WHERE id <= 4 AND document IS NOT NULL;
-- an update recomputes it
UPDATE chainwatch.anomalies SET severity = 'high' WHERE id = 1;
SELECT document::jsonb ->> 'severity' AS severity_after_update FROM chainwatch.anomalies WHERE id = 1;
ROLLBACK;

-- nobody writes it directly: what a writer gives is replaced, on insert and on update
BEGIN;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, document)
VALUES ('0x1', 1, 1, 1, 0.5, 'low', '{}') RETURNING document::jsonb ->> 'hash' AS hash;
UPDATE chainwatch.anomalies SET document = 'forged' WHERE hash = '0x1' RETURNING document::jsonb ->> 'score' AS score;
-- and it is what anomaly_document() says about the row
SELECT count(*) FILTER (WHERE a.document = chainwatch.anomaly_document(a.id, a.hash, a.from_address, a.to_address,
           a.value, a.gas, a.gas_price, a.block_number, a.tx_time, a.detected_at, a.score, a.severity, a.model_id,
           a.kafka_topic, a.kafka_partition, a.kafka_offset, a.explanation)) AS same, count(*) AS rows
  FROM chainwatch.anomalies a WHERE a.hash = '0x1';
ROLLBACK;

-- every anomaly partition computes it, including those maintenance makes later
SELECT count(t.oid) = count(*) AS all_have_the_trigger, count(*) > 0 AS some
  FROM chainwatch.partition_state s
  LEFT JOIN pg_trigger t ON t.tgrelid = format('chainwatch.%I', s.partition_name)::regclass AND t.tgname = 'anomalies_document'
 WHERE s.table_name = 'anomalies';
SELECT chainwatch._create_partition('anomalies', '2100-01-01', '2100-01-02') AS made \gset
SELECT tgname FROM pg_trigger WHERE tgrelid = format('chainwatch.%I', :'made')::regclass;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, detected_at)
VALUES ('0xlater', 5, 6, 7, 0.75, 'low', '2100-01-01 12:00+00') RETURNING document::jsonb ->> 'detected_at' AS detected_at;
DELETE FROM chainwatch.anomalies WHERE hash = '0xlater';
SELECT chainwatch._drop_partition(:'made', 'test');

-- the function: stable (enum_out reads the catalog), parallel safe, not strict (NULL members)
SELECT provolatile, proparallel, proisstrict FROM pg_proc WHERE oid = 'chainwatch.anomaly_document'::regproc;
