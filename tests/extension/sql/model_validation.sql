-- models are validated where they enter and where they become active; severity() refuses non-finite input
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
CREATE TEMP TABLE traffic AS
SELECT (i * 7919 % 100003)::numeric * 1e13 AS value, (21000 + i % 7 * 1000)::numeric AS gas,
       ((10 + i % 50) * 1e9)::numeric AS gas_price
  FROM generate_series(1, 2000) i;
SELECT chainwatch.train_model('good', 'SELECT value, gas, gas_price FROM traffic', n_trees => 10, seed => 1) AS good \gset
SELECT chainwatch.activate_model(:good) = :good AS active;
-- the trainer is recorded as the caller, though the row is written by the extension's owner
SELECT created_by = current_user AS created_by_caller, source FROM chainwatch.models WHERE id = :good;

-- a threshold outside the scores' (0, 1] is refused: -1e308 flagged everything
SELECT pg_temp.err(format($$SELECT chainwatch.import_model('low', %L)$$,
                          jsonb_set(chainwatch.export_model(:good), '{threshold}', '-1e308')));
SELECT pg_temp.err(format($$SELECT chainwatch.import_model('high', %L)$$,
                          jsonb_set(chainwatch.export_model(:good), '{threshold}', '1.5')));
-- a tree larger than its sample allows (2 * max_samples - 1 nodes) is refused
SELECT pg_temp.err(format($$SELECT chainwatch.import_model('wide', %L)$$,
                          jsonb_set(chainwatch.export_model(:good), '{max_samples}', '2')));
-- training that would make more nodes than any process loads is refused before it starts
SELECT pg_temp.err($$SELECT chainwatch.train_model('huge', 'SELECT value, gas, gas_price FROM traffic',
                                                   n_trees => 9000, sample_size => 2000)$$);

-- a row that did not come through the functions (here the owner's own INSERT) does not become active
INSERT INTO chainwatch.models (name, source, n_features, transform, n_trees, sample_size, threshold,
                               format_version, checksum, forest)
VALUES ('forged', 'trained', 3, 'log1p', 1, 1, 0.5, 1, 0, '\x00') RETURNING id AS forged \gset
SELECT pg_temp.err(format('SELECT chainwatch.activate_model(%s)', :forged));
SELECT id = :good AS still_active FROM chainwatch.models WHERE is_active;
DELETE FROM chainwatch.models WHERE id = :forged;

-- an unknown reason is echoed truncated, not a 10 MB message
SELECT length(pg_temp.err(format($$SELECT chainwatch.activate_model(%s, repeat('x', 10000000))$$, :good))) < 200
       AS short_message;

-- severity() refuses what it cannot grade
SELECT pg_temp.err($$SELECT chainwatch.severity('NaN', 1, 1)$$);
SELECT pg_temp.err($$SELECT chainwatch.severity('Infinity', 1, 1)$$);
SELECT pg_temp.err($$SELECT chainwatch.severity(2, 'NaN', 'Infinity')$$);
SELECT pg_temp.err($$SELECT chainwatch.severity(0.9, -1, 1)$$);
SELECT chainwatch.severity(0.99, 1, 1) AS finite_still_graded;
