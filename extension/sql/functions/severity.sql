-- extension/sql/functions/severity.sql — the severity of a flagged transaction, from severity_rules

CREATE FUNCTION @extschema@.severity(score float8, value numeric, gas_price numeric)
RETURNS @extschema@.severity_level
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(max(r.severity), 'low'::@extschema@.severity_level)
      FROM @extschema@.severity_rules r
     WHERE r.enabled
       AND (r.min_score IS NULL OR score >= r.min_score)
       AND (r.min_value_eth IS NULL OR value >= r.min_value_eth * 1000000000000000000::numeric)
       AND (r.min_gas_price_gwei IS NULL OR gas_price >= r.min_gas_price_gwei * 1000000000::numeric)
$$;

COMMENT ON FUNCTION @extschema@.severity(float8, numeric, numeric) IS
    'Severity of a flagged transaction (score, value in wei, gas price in wei) from the enabled rules of chainwatch.severity_rules.';
