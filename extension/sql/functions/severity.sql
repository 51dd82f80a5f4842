-- extension/sql/functions/severity.sql — the severity of a flagged transaction, from severity_rules

CREATE FUNCTION @extschema@.severity(score float8, value numeric, gas_price numeric)
RETURNS @extschema@.severity_level
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- non-finite input is refused: NaN compared as the largest value, so severity(2, 'NaN', 'Infinity')
    -- was critical and severity('NaN', 1, 1) low (0.9.0)
    IF score = 'NaN'::float8 OR score IN ('Infinity'::float8, '-Infinity'::float8) THEN
        RAISE EXCEPTION 'severity: score must be a finite number, not %', score USING ERRCODE = '22023';
    END IF;
    IF value = 'NaN'::numeric OR gas_price = 'NaN'::numeric OR value IN ('Infinity'::numeric, '-Infinity'::numeric)
       OR gas_price IN ('Infinity'::numeric, '-Infinity'::numeric) OR value < 0 OR gas_price < 0 THEN
        RAISE EXCEPTION 'severity: value and gas_price must be finite, non-negative amounts in wei'
            USING ERRCODE = '22023';
    END IF;
    RETURN (SELECT coalesce(max(r.severity), 'low'::@extschema@.severity_level)
              FROM @extschema@.severity_rules r
             WHERE r.enabled
               AND (r.min_score IS NULL OR score >= r.min_score)
               AND (r.min_value_eth IS NULL OR value >= r.min_value_eth * 1000000000000000000::numeric)
               AND (r.min_gas_price_gwei IS NULL OR gas_price >= r.min_gas_price_gwei * 1000000000::numeric));
END
$$;

COMMENT ON FUNCTION @extschema@.severity(float8, numeric, numeric) IS
    'Severity of a flagged transaction (score, value in wei, gas price in wei) from the enabled rules of chainwatch.severity_rules.';
