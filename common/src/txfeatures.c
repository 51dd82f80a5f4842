/* common/src/txfeatures.c — the behavioural feature vector of a transaction, defined once; plain C
 *
 * Design
 * ------
 * A feature is worth having when it describes behaviour any chain shows, not a quirk of one data
 * source: how old the sender is, how long since it last sent, how this value compares with what
 * it usually sends, how busy it is right now, whether it has paid this recipient before, how
 * many others are paying that recipient right now, how old the recipient is, and how this gas
 * price compares with what the sender usually pays. With the transaction's own three amounts and
 * whether it creates a contract, that is the feature set "behaviour/1" (cw_feature_names).
 *
 * The differences from the sender's usual (value, gas price) are one-sided, "how much above": a
 * transfer smaller or cheaper than usual is not remarkable, and a two-sided score made the forest
 * isolate ordinary small payments (measured: docs/detection.md).
 *
 * Cold start. An address with no history gets values that describe exactly that and that are
 * common in any stream, so that a first transaction is not by itself an outlier: age 0, the gap of
 * a first outgoing transaction CW_COLD_GAP_SECONDS (a day: ordinary for occasional senders), value
 * and gas price differences 0 (no history to differ from), recent activity 0, every recipient
 * new. The value difference is a z-score whose variance is shrunk towards a prior
 * (CW_VALUE_PRIOR_WEIGHT pseudo-transactions of variance CW_VALUE_PRIOR_VARIANCE, ln units), so an
 * address with two similar transfers does not make the third one an outlier by a tiny spread.
 *
 * Determinism. Every caller runs this file, so equal inputs give equal bits: no float sums depend
 * on an order (the profile's sums are integers), and nothing reads a clock or a locale.
 *
 * Time. Chain time (cw_chain_time), in Unix microseconds. Blocks may arrive out of order: ages
 * never go below 0, and the gap is the distance to the latest earlier-or-later outgoing
 * transaction. Activity buckets are those of the profile table: Unix microseconds / 300 s,
 * truncated; the recent activity at a time is what the profile counted in its bucket and the one
 * before (when the profile's latest bucket is the next one, only its "previous" count is known).
 */
#include "txfeatures.h"

#include <math.h>
#include <string.h>

const char *const cw_feature_names[CW_FEATURES] = {
    "log_value",         /* ln(1 + value in wei) */
    "log_gas",           /* ln(1 + gas limit) */
    "log_gas_price",     /* ln(1 + gas price in wei) */
    "contract_creation", /* 1 when there is no recipient */
    "sender_age",        /* ln(1 + seconds since the sender was first seen) */
    "sender_gap",        /* ln(1 + seconds since its previous outgoing transaction) */
    "sender_value_up",   /* how far the ln value is above the sender's own mean, in its spread */
    "sender_recent",     /* ln(1 + its outgoing transactions in this and the previous bucket) */
    "recipient_new",     /* 1 when the sender never paid this recipient before */
    "recipient_fan_in",  /* ln(1 + transactions the recipient received in this and the previous
                            bucket) */
    "recipient_age",     /* ln(1 + seconds since the recipient was first seen) */
    "gas_price_up",      /* how far the ln gas price is above the sender's mean ln gas price */
};

int64_t cw_log_millionths(double x)
{
    return (int64_t) rint(log(1.0 + x) * 1e6);
}

int64_t cw_chain_time(bool has_tx_time, int64_t tx_time, int64_t detected_at)
{
    return has_tx_time && tx_time <= detected_at ? tx_time : detected_at;
}

/* bucket_of: the activity bucket of a chain time (truncating division, as the profile table's) */
static int64_t bucket_of(int64_t at)
{
    return at / CW_BUCKET_USECS;
}

/* recent_count: what side counted in bucket b and the one before */
static int64_t recent_count(const cw_profile_side *s, int64_t b)
{
    if (!s->has_bucket)
        return 0;
    if (s->bucket == b)
        return s->bucket_count + s->prev_count;
    if (s->bucket == b - 1)
        return s->bucket_count;
    if (s->bucket == b + 1)
        return s->prev_count;
    return 0;
}

/* seconds_log: ln(1 + |a - b| seconds), or of max(0, a - b) when one_sided */
static double seconds_log(int64_t a, int64_t b, bool one_sided)
{
    int64_t d = a - b;
    if (d < 0)
        d = one_sided ? 0 : -d;
    return log1p((double) d / 1e6);
}

/* peers_find: index of h in the sorted peers, or -(insertion point) - 1 */
static int peers_find(const cw_profile *p, int64_t h)
{
    int lo = 0, hi = p->n_peers;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p->peers[mid] < h)
            lo = mid + 1;
        else if (p->peers[mid] > h)
            hi = mid;
        else
            return mid;
    }
    return -lo - 1;
}

/*
 * recipient_is_new: the sketch keeps the CW_PROFILE_PEERS smallest recipient hashes, so it
 * answers exactly for a hash below its largest (or while it is not full); a hash above the
 * largest of a full sketch is unknown, and counted as known: a sender with that many
 * counterparties pays new ones all the time, and novelty says little about it.
 */
static bool recipient_is_new(const cw_profile *s, int64_t h)
{
    if (!s->exists)
        return true;
    if (peers_find(s, h) >= 0)
        return false;
    return s->n_peers < CW_PROFILE_PEERS || h < s->peers[s->n_peers - 1];
}

void cw_features_compute(const cw_profile *sender, const cw_profile *recipient,
                         const cw_feature_tx *tx, double *out)
{
    const cw_profile_side *so = &sender->out;
    int64_t b = bucket_of(tx->at);

    out[0] = log1p(tx->value);
    out[1] = log1p(tx->gas);
    out[2] = log1p(tx->gas_price);
    out[3] = tx->has_to ? 0.0 : 1.0;
    out[4] = sender->exists ? seconds_log(tx->at, sender->first_at, true) : 0.0;
    out[5] = so->has_last ? seconds_log(tx->at, so->last_at, false) : CW_COLD_GAP;
    /* the value against the values the sender sent (zero-value calls are not values: they add
     * nothing to the sums and are not counted); a zero-value transaction itself has none */
    int64_t lv_this = cw_log_millionths(tx->value);
    if (so->valued > 0 && lv_this > 0) {
        double n = (double) so->valued;
        /* n * sumsq - sum^2 is n^2 times the variance, exact in 128 bits; millionths squared */
        __int128 spread = (__int128) so->valued * so->lv_sumsq - (__int128) so->lv_sum * so->lv_sum;
        double var = (double) spread / (n * n) / 1e12;
        double pooled = (n * var + CW_VALUE_PRIOR_WEIGHT * CW_VALUE_PRIOR_VARIANCE) /
                        (n + CW_VALUE_PRIOR_WEIGHT);
        double mean = (double) so->lv_sum / n;
        out[6] = fmax(0.0, ((double) lv_this - mean) / 1e6 / sqrt(pooled));
    } else
        out[6] = 0.0;
    if (so->count > 0)
        out[11] = fmax(0.0, ((double) cw_log_millionths(tx->gas_price) -
                             (double) so->lg_sum / (double) so->count) /
                                1e6);
    else
        out[11] = 0.0;
    out[7] = log1p((double) recent_count(so, b));
    out[8] = tx->has_to && recipient_is_new(sender, tx->to_hash) ? 1.0 : 0.0;
    if (tx->has_to && recipient) {
        out[9] = log1p((double) recent_count(&recipient->in, b));
        out[10] = recipient->exists ? seconds_log(tx->at, recipient->first_at, true) : 0.0;
    } else {
        out[9] = 0.0;
        out[10] = 0.0;
    }
}

void cw_bucket_add(bool *has_bucket, int64_t *bucket, int64_t *count, int64_t *prev, int64_t b)
{
    if (!*has_bucket || b > *bucket) {
        *prev = *has_bucket && b == *bucket + 1 ? *count : 0;
        *count = 1;
        *bucket = b;
        *has_bucket = true;
    } else if (b == *bucket)
        (*count)++;
    else if (b == *bucket - 1)
        (*prev)++;
}

/* side_fold counts tx on side s of profile p, as the profile trigger counts it (everything but
 * the side-specific sums); returns the value's cw_log_millionths */
static int64_t side_fold(cw_profile *p, cw_profile_side *s, const cw_feature_tx *tx)
{
    int64_t lv = cw_log_millionths(tx->value);

    if (!p->exists || tx->at < p->first_at)
        p->first_at = tx->at;
    p->exists = true;
    s->count++;
    if (!s->has_last || tx->at > s->last_at) {
        s->last_at = tx->at;
        s->has_last = true;
    }
    cw_bucket_add(&s->has_bucket, &s->bucket, &s->bucket_count, &s->prev_count, bucket_of(tx->at));
    s->lv_sum += lv;
    s->lv_sumsq += (__int128) lv * lv;
    return lv;
}

void cw_profile_fold_out(cw_profile *p, const cw_feature_tx *tx)
{
    cw_profile_side *s = &p->out;

    if (side_fold(p, s, tx) > 0)
        s->valued++;
    s->lg_sum += cw_log_millionths(tx->gas_price);
    if (tx->has_to) {
        int i = peers_find(p, tx->to_hash);
        if (i < 0) {
            i = -i - 1;
            if (i < CW_PROFILE_PEERS) {
                int keep = p->n_peers < CW_PROFILE_PEERS ? p->n_peers : CW_PROFILE_PEERS - 1;
                memmove(&p->peers[i + 1], &p->peers[i], sizeof(int64_t) * (size_t) (keep - i));
                p->peers[i] = tx->to_hash;
                p->n_peers = keep + 1;
            }
        }
    }
}

void cw_profile_fold_in(cw_profile *p, const cw_feature_tx *tx)
{
    (void) side_fold(p, &p->in, tx);
}

bool cw_parse_int128(const char *s, __int128 *out)
{
    __int128 v = 0;
    const __int128 max = (((__int128) INT64_MAX) << 64) | UINT64_MAX;

    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (max - (*s - '0')) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

/* parse_int64 reads a decimal integer (an optional '-'); false when s is not exactly one */
static bool parse_int64(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    __int128 v;

    if (!cw_parse_int128(neg ? s + 1 : s, &v) || v > (__int128) INT64_MAX + neg)
        return false;
    *out = (int64_t) (neg ? -v : v);
    return true;
}

/* opt_int64 reads a column that may be NULL (then 0, has false) */
static bool opt_int64(const char *s, int64_t *out, bool *has)
{
    *has = s != NULL;
    *out = 0;
    return !s || parse_int64(s, out);
}

/* parse_peers reads an int8[] literal ({} or {h1,...}, sorted ascending) into p */
static bool parse_peers(const char *s, cw_profile *p)
{
    char buf[24];

    p->n_peers = 0;
    if (*s++ != '{')
        return false;
    if (*s == '}')
        return s[1] == '\0';
    for (;;) {
        size_t n = 0;
        while (*s && *s != ',' && *s != '}') {
            if (n + 1 >= sizeof(buf))
                return false;
            buf[n++] = *s++;
        }
        buf[n] = '\0';
        if (p->n_peers == CW_PROFILE_PEERS || !parse_int64(buf, &p->peers[p->n_peers]) ||
            (p->n_peers > 0 && p->peers[p->n_peers] <= p->peers[p->n_peers - 1]))
            return false;
        p->n_peers++;
        if (*s == '}')
            return s[1] == '\0';
        if (*s++ != ',')
            return false;
    }
}

int cw_profile_from_text(const char *const col[CW_PROFILE_COLUMNS], cw_profile *p, int64_t *hash,
                         int64_t *detected_at)
{
    bool ok;

    memset(p, 0, sizeof(*p));
    if (!col[CW_PC_HASH] || !parse_int64(col[CW_PC_HASH], hash) || !col[CW_PC_DETECTED_AT] ||
        !parse_int64(col[CW_PC_DETECTED_AT], detected_at))
        return -1;
    if (!col[CW_PC_FIRST_AT])
        return 0; /* no profile */
    p->exists = true;
    ok = parse_int64(col[CW_PC_FIRST_AT], &p->first_at) && col[CW_PC_OUT_COUNT] &&
         parse_int64(col[CW_PC_OUT_COUNT], &p->out.count) && col[CW_PC_IN_COUNT] &&
         parse_int64(col[CW_PC_IN_COUNT], &p->in.count) && col[CW_PC_OUT_LV_SUM] &&
         parse_int64(col[CW_PC_OUT_LV_SUM], &p->out.lv_sum) && col[CW_PC_OUT_LV_SUMSQ] &&
         cw_parse_int128(col[CW_PC_OUT_LV_SUMSQ], &p->out.lv_sumsq) && col[CW_PC_OUT_LG_SUM] &&
         parse_int64(col[CW_PC_OUT_LG_SUM], &p->out.lg_sum) &&
         opt_int64(col[CW_PC_LAST_OUT_AT], &p->out.last_at, &p->out.has_last) &&
         opt_int64(col[CW_PC_OUT_BUCKET], &p->out.bucket, &p->out.has_bucket) &&
         col[CW_PC_OUT_BUCKET_COUNT] &&
         parse_int64(col[CW_PC_OUT_BUCKET_COUNT], &p->out.bucket_count) &&
         col[CW_PC_OUT_PREV_COUNT] && parse_int64(col[CW_PC_OUT_PREV_COUNT], &p->out.prev_count) &&
         opt_int64(col[CW_PC_IN_BUCKET], &p->in.bucket, &p->in.has_bucket) &&
         col[CW_PC_IN_BUCKET_COUNT] &&
         parse_int64(col[CW_PC_IN_BUCKET_COUNT], &p->in.bucket_count) && col[CW_PC_IN_PREV_COUNT] &&
         parse_int64(col[CW_PC_IN_PREV_COUNT], &p->in.prev_count) && col[CW_PC_OUT_PEERS] &&
         parse_peers(col[CW_PC_OUT_PEERS], p) && col[CW_PC_OUT_VALUE_COUNT] &&
         parse_int64(col[CW_PC_OUT_VALUE_COUNT], &p->out.valued);
    return ok ? 0 : -1;
}

int cw_feature_index(const char *name)
{
    for (int i = 0; i < CW_FEATURES; i++)
        if (name && strcmp(cw_feature_names[i], name) == 0)
            return i;
    return -1;
}

int cw_feature_map(const char *const *names, int n, int *map)
{
    bool seen[CW_FEATURES] = {false};

    if (n < 1 || n > CW_FEATURES)
        return -1;
    for (int k = 0; k < n; k++) {
        int i = cw_feature_index(names[k]);
        if (i < 0 || seen[i])
            return -1;
        seen[i] = true;
        map[k] = i;
    }
    return n;
}

int cw_feature_map_forest(const forest *f, int *map)
{
    const char *names[CW_FEATURES];
    int n = forest_n_features(f);

    if (n < 1 || n > CW_FEATURES)
        return -1;
    for (int k = 0; k < n; k++)
        if (!(names[k] = forest_feature_name(f, k)))
            return -1;
    return cw_feature_map(names, n, map);
}
