/* extension/src/sketch.c — counterparty sketches of address profiles: the K smallest distinct
 * hashes
 *
 * A sketch is a sorted int8[] without NULLs or repeats holding the SKETCH_K smallest distinct
 * 64-bit hashes of a set of addresses (hashtextextended(address, 0)). The sketch of a union is the
 * K smallest distinct values of the two sketches' union, so merging is commutative and associative:
 * the profile trigger may fold batches in any order and always reaches the sketch of all
 * counterparties (tables/profiles.sql). The merge runs once per updated profile per batch, which is
 * why it is C: the SQL version (unnest, DISTINCT, ORDER BY, LIMIT, array_agg) cost ~12 us per
 * profile.
 */
#include "chainwatch.h"

#include "catalog/pg_type.h"
#include "utils/array.h"

#define SKETCH_K 64

/* sketch_values checks that a is a one-dimensional int8[] without NULLs and returns its values */
static const int64 *sketch_values(ArrayType *a, int *n)
{
    if (ARR_ELEMTYPE(a) != INT8OID)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("a sketch is an int8 array")));
    if (ARR_NDIM(a) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("a sketch is a one-dimensional array")));
    if (array_contains_nulls(a))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("a sketch must not contain NULL")));
    *n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
    return (const int64 *) ARR_DATA_PTR(a);
}

PG_FUNCTION_INFO_V1(chainwatch_sketch_merge);
/*
 * chainwatch_sketch_merge(a int8[], b int8[]) RETURNS int8[]: the sketch of the union — a merge of
 * the two sorted arrays that drops repeats and stops after SKETCH_K values. Inputs that are not
 * sorted (written by hand) are refused, since the merge would silently keep the wrong values.
 */
Datum chainwatch_sketch_merge(PG_FUNCTION_ARGS)
{
    ArrayType *a = PG_GETARG_ARRAYTYPE_P(0);
    ArrayType *b = PG_GETARG_ARRAYTYPE_P(1);
    int na, nb, i = 0, j = 0, n = 0;
    const int64 *va = sketch_values(a, &na);
    const int64 *vb = sketch_values(b, &nb);
    Datum out[SKETCH_K];

    for (int k = 1; k < na; k++)
        if (va[k - 1] >= va[k])
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sketch is not sorted without repeats at element %d", k + 1)));
    for (int k = 1; k < nb; k++)
        if (vb[k - 1] >= vb[k])
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sketch is not sorted without repeats at element %d", k + 1)));
    while (n < SKETCH_K && (i < na || j < nb)) {
        int64 v;
        if (j >= nb || (i < na && va[i] < vb[j]))
            v = va[i++];
        else if (i >= na || vb[j] < va[i])
            v = vb[j++];
        else {
            v = va[i++];
            j++;
        }
        out[n++] = Int64GetDatum(v);
    }
    PG_RETURN_ARRAYTYPE_P(
        construct_array(out, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
