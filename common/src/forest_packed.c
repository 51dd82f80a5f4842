/* common/src/forest_packed.c — the packed-rank scoring layout: a forest walk of four instructions
 * per level */

/*
 * Design
 * ------
 * The dense layout (forest.c) walks a tree with i = 2i + 1 + !(x[feature[i]] <= split[i]): per
 * level two loads from the node (feature, split), a dependent load of the row's value and a
 * floating-point compare. For the narrow models chainwatch scores (three features) the same
 * decisions can be made with integers and one load per level.
 *
 * Ranks. For each feature j, the model's distinct split thresholds T_j are sorted once. A row's
 * transformed value x_j is replaced by its rank r_j = #{t in T_j : t < x_j} (NaN ranks above
 * every threshold, as "NaN goes right" in the dense walk). For a node splitting feature j at
 * T_j[k], x_j <= T_j[k] exactly when r_j <= k, so every comparison of the dense walk is kept
 * bit for bit: scores are identical, only faster.
 *
 * Packing. A row's ranks live in one 64-bit word R: feature j in a field of w bits starting at
 * bit 6 + j*w (w = min(32, 58 / n_features); ranks must stay below 2^(w-1)). The low 6 bits of R
 * are zero. A node splitting feature j at rank k stores
 *     A = ((2^(w-1) - 1 - k) << (6 + j*w)) | (6 + j*w + w - 1)
 * so in R + A field j holds r_j + 2^(w-1) - 1 - k, whose top bit is set exactly when r_j > k
 * (no field overflows into the next), and the low 6 bits hold the position of that top bit. One
 * "bt v, v" then puts the decision in the carry flag, and with 1-based heap indices the next node
 * is i = 2i + carry: "adc i, i". A level is mov, add, bt, adc. The don't-care nodes of the dense
 * padding store A = 0 (go left; every leaf below them has the same value).
 *
 * Walks. A batch takes PACKED_BLOCK rows at a time: the rows are transformed, ranked (eight
 * branch-free binary searches in lockstep), then each tree is walked by groups of eight rows in
 * lockstep, so the tree stays in L1 for the whole block and eight independent load chains are in
 * flight. A single row walks eight trees in lockstep instead (the tree count is padded to a
 * multiple of eight with all-left trees whose leaves are +0.0, which leave any sum unchanged). Per
 * row, leaf values are added in tree order exactly as the dense walk adds them.
 *
 * The x86-64 kernels are GNU inline assembly (the compiler turns "2i + carry" into setcc, movzx
 * and lea, which costs 40%); FOREST_PORTABLE or another target builds the same walk in C.
 */
#include "forest_impl.h"

#include <stdlib.h>
#include <string.h>

#define PACKED_BLOCK 256 /* rows transformed, ranked and walked together */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FOREST_PORTABLE)
#define PACKED_ASM 1
#endif

#ifdef PACKED_ASM
static bool blocked_depth(int D);
static int blocked_build(forest *f);
#endif

/* rank_of returns #{t in T[0..m) : t < x} (m for NaN) by a branch-free binary search. */
static inline uint64_t rank_of(const double *T, uint32_t m, double x)
{
    size_t b = 0;
    uint32_t len = m;

    if (isnan(x))
        return m;
    while (len > 1) {
        uint32_t half = len / 2;
        b += (size_t) (T[b + half - 1] < x) * half;
        len -= half;
    }
    return b + (len == 1 && T[b] < x);
}

/* rank_block8 ors rank(x[r]) << shift into R[r] for n rows (n a multiple of 8), eight searches in
 * lockstep: every search over the same thresholds takes the same number of steps. */
static void rank_block8(const double *T, uint32_t m, const double *x, int n, int shift, uint64_t *R)
{
    for (int r = 0; r < n; r += 8) {
        size_t b[8] = {0};
        uint32_t len = m;
        while (len > 1) {
            uint32_t half = len / 2;
#pragma GCC unroll 8
            for (int l = 0; l < 8; l++)
                b[l] += (size_t) (T[b[l] + half - 1] < x[r + l]) * half;
            len -= half;
        }
#pragma GCC unroll 8
        for (int l = 0; l < 8; l++) {
            uint64_t k = isnan(x[r + l]) ? m : b[l] + (len == 1 && T[b[l]] < x[r + l]);
            R[r + l] |= k << shift;
        }
    }
}

/*
 * Bucket index. A single row cannot interleave searches the way rank_block8 does, and a binary
 * search over a few thousand thresholds is a chain of a dozen dependent loads. Each feature also
 * gets nb = m / 4 equal-width buckets over [T[0], T[m-1]]: bucket(x) = clamp(floor((x - T[0]) *
 * nb / (T[m-1] - T[0]))) is monotone in x (every step rounds monotonically), so every threshold in
 * an earlier bucket is below x and every one in a later bucket is above it. With first[b] the
 * number of thresholds in buckets before b, rank(x) = first[b] + the rank of x among the few
 * thresholds of its own bucket.
 */

/* bucket_of maps x to its bucket of feature j (NaN and -inf to 0, beyond the last to nb - 1). */
static inline uint32_t bucket_of(const forest *f, int j, double x)
{
    double d = (x - f->p_lo[j]) * f->p_scale[j];
    uint32_t nb = f->p_boff[j + 1] - f->p_boff[j] - 1;

    if (!(d >= 0.0))
        return 0;
    if (d >= (double) nb)
        return nb - 1;
    return (uint32_t) d;
}

/* bucket_build fills p_lo, p_scale, p_boff and p_first from the sorted thresholds (-1 on ENOMEM).
 */
static int bucket_build(forest *f)
{
    int nf = f->n_features;
    uint32_t total = 0;

    for (int j = 0; j < nf; j++) {
        uint32_t m = f->p_off[j + 1] - f->p_off[j];
        f->p_boff[j] = total;
        total += (m / 4 > 1 ? m / 4 : 1) + 1;
    }
    f->p_boff[nf] = total;
    f->p_first = calloc(total, sizeof(uint32_t));
    if (!f->p_first)
        return -1;
    for (int j = 0; j < nf; j++) {
        const double *T = f->p_thr + f->p_off[j];
        uint32_t m = f->p_off[j + 1] - f->p_off[j], nb = f->p_boff[j + 1] - f->p_boff[j] - 1;
        uint32_t *first = f->p_first + f->p_boff[j];
        f->p_lo[j] = m > 0 ? T[0] : 0.0;
        /* a range too wide (scale 0) or too narrow (scale inf) still maps monotonically: the
         * NaN of 0 * inf goes to bucket 0 like everything at or below T[0] */
        f->p_scale[j] = m > 1 ? (double) nb / (T[m - 1] - T[0]) : 0.0;
        for (uint32_t i = 0; i < m; i++)
            first[bucket_of(f, j, T[i]) + 1]++;
        for (uint32_t b = 0; b < nb; b++)
            first[b + 1] += first[b];
    }
    return 0;
}

/* packed_word returns the packed rank word of one transformed row. */
static uint64_t packed_word(const forest *f, const double *xt)
{
    uint64_t R = 0;
    for (int j = 0; j < f->n_features; j++) {
        const uint32_t *first = f->p_first + f->p_boff[j] + bucket_of(f, j, xt[j]);
        uint64_t rank = isnan(xt[j]) ? f->p_off[j + 1] - f->p_off[j]
                                     : first[0] + rank_of(f->p_thr + f->p_off[j] + first[0],
                                                          first[1] - first[0], xt[j]);
        R |= rank << (6 + j * f->p_width);
    }
    return R;
}

/*
 * forest_packed_build collects each feature's split thresholds from the canonical nodes, sorts and
 * deduplicates them, gives up (leaving p_node NULL) if a feature has too many for its field, then
 * converts every dense internal node into its addend and frees the dense internal arrays.
 */
int forest_packed_build(forest *f)
{
    int nf = f->n_features, D = f->dense_depth;
    uint32_t count[PACKED_MAX_FEATURES + 1] = {0}, fill[PACKED_MAX_FEATURES];
    size_t n_internal, n_slots;
    double *thr;
    uint64_t *node;
    int w;

    if (D <= 0 || nf < 1 || nf > PACKED_MAX_FEATURES)
        return 0;
    w = 58 / nf > 32 ? 32 : 58 / nf;
    n_internal = ((size_t) 1 << D) - 1;
    n_slots = n_internal * dense_padded_trees(f);
    thr = malloc(sizeof(double) * (f->n_nodes ? f->n_nodes : 1));
    node = calloc(n_slots, sizeof(uint64_t));
    if (!thr || !node)
        goto nomem;

    for (size_t i = 0; i < f->n_nodes; i++)
        if (f->left[i] >= 0)
            count[f->feature[i] + 1]++;
    for (int j = 0; j < nf; j++) {
        count[j + 1] += count[j];
        fill[j] = count[j];
    }
    for (size_t i = 0; i < f->n_nodes; i++)
        if (f->left[i] >= 0)
            thr[fill[f->feature[i]]++] = f->split[i];

    uint32_t out = 0;
    for (int j = 0; j < nf; j++) {
        uint32_t first = out;
        qsort(thr + count[j], count[j + 1] - count[j], sizeof(double), forest_cmp_double);
        for (uint32_t i = count[j]; i < count[j + 1]; i++)
            if (out == first || thr[out - 1] != thr[i])
                thr[out++] = thr[i];
        f->p_off[j] = first;
        if ((uint64_t) (out - first) >= ((uint64_t) 1 << (w - 1))) {
            /* too many distinct thresholds for a w-bit field: keep the dense walk */
            free(thr);
            free(node);
            return 0;
        }
    }
    f->p_off[nf] = out;

    uint64_t top = ((uint64_t) 1 << (w - 1)) - 1;
    for (size_t t = 0; t < (size_t) f->n_trees; t++) {
        for (size_t i = 0; i < n_internal; i++) {
            size_t s = t * n_internal + i;
            int j = f->d_feature[s];
            const double *T = thr + f->p_off[j];
            uint32_t m = f->p_off[j + 1] - f->p_off[j];
            /* don't-care nodes (split 0.0 on feature 0) may match no threshold: any rank will do,
             * so they are marked by a left child below and get 0 */
            uint64_t k = rank_of(T, m, f->d_split[s]);
            if (k < m && T[k] == f->d_split[s])
                node[s] = ((top - k) << (6 + j * w)) | (uint64_t) (6 + j * w + w - 1);
        }
    }
    f->p_thr = thr;
    f->p_node = node;
    f->p_width = w;
    if (bucket_build(f) != 0)
        return -1; /* p_node and p_thr are the forest's now; forest_free releases them */
#ifdef PACKED_ASM
    if (blocked_depth(D) && blocked_build(f) != 0)
        return -1;
#endif
    free(f->d_feature);
    free(f->d_split);
    f->d_feature = NULL;
    f->d_split = NULL;
    return 0;

nomem:
    free(thr);
    free(node);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* batch: eight rows through one tree                                                           */

#ifndef PACKED_ASM
/* packed_right is the decision of one level for v = addend + rank word: the bit that v's low six
 * bits point at (what "bt v, v" puts in the carry flag) */
static inline uint64_t packed_right(uint64_t v)
{
    return (v >> (v & 63)) & 1;
}
#endif

/* LANES8 expands M(j, arg) for the eight lanes j = 0..7 in order; lane j's walk index is a
 * variable whose name ends in j (i##j), so the eight walks stay in registers */
#define LANES8(M, arg)                                                                             \
    M(0, arg) M(1, arg) M(2, arg) M(3, arg) M(4, arg) M(5, arg) M(6, arg) M(7, arg)

#ifdef PACKED_ASM
/* one level for row j of the group: nd is the tree's node array minus one, R the group's words */
#define ROW_STEP(i, j)                                                                             \
    __asm__("mov (%[nd],%[n],8), %[v]\n\t"                                                         \
            "add %c[o](%[rp]), %[v]\n\t"                                                           \
            "bt %[v], %[v]\n\t"                                                                    \
            "adc %[n], %[n]"                                                                       \
            : [n] "+r"(i), [v] "=&r"(v)                                                            \
            : [nd] "r"(nd), [rp] "r"(R), [o] "i"((j) *8), "m"(*(const uint64_t(*)[8]) R),          \
              "m"(*(const uint64_t(*)[1 << DENSE_MAX_DEPTH]) nd)                                   \
            : "cc")
#else
#define ROW_STEP(i, j)                                                                             \
    do {                                                                                           \
        v = nd[i] + R[j];                                                                          \
        i = 2 * i + packed_right(v);                                                               \
    } while (0)
#endif

/* walk8_rows adds tree t's leaf values to sum[0..8) for the eight rows whose words are R[0..8). */
static inline void walk8_rows(const forest *f, int t, const uint64_t *R, double *sum)
{
    int D = f->dense_depth;
    size_t n_internal = ((size_t) 1 << D) - 1;
    const uint64_t *nd = f->p_node + (size_t) t * n_internal - 1;                    /* 1-based */
    const double *lv = f->d_leaf + (size_t) t * (n_internal + 1) - (n_internal + 1); /* bottom */
    size_t i0 = 1, i1 = 1, i2 = 1, i3 = 1, i4 = 1, i5 = 1, i6 = 1, i7 = 1;
    uint64_t v;

#define ROW_LANE(j, _) ROW_STEP(i##j, j);
#define ROW_LEAF(j, _) sum[j] += lv[i##j];
    for (int k = 0; k < D; k++) {
        LANES8(ROW_LANE, -)
    }
    LANES8(ROW_LEAF, -)
#undef ROW_LANE
#undef ROW_LEAF
}

/*
 * forest_packed_score transforms and ranks a block of rows (padded to a multiple of eight with
 * copies of its last row, whose sums are discarded), then walks every tree for the whole block.
 */
void forest_packed_score(const forest *f, const double *rows, size_t n, double *out)
{
    int nf = f->n_features;
    double x[PACKED_MAX_FEATURES * PACKED_BLOCK]; /* feature-major: x[j * PACKED_BLOCK + r] */
    uint64_t R[PACKED_BLOCK];
    double sum[PACKED_BLOCK];

    for (size_t base = 0; base < n; base += PACKED_BLOCK) {
        int nrows = n - base < PACKED_BLOCK ? (int) (n - base) : PACKED_BLOCK;
        int padded = (nrows + 7) & ~7;
        for (int r = 0; r < padded; r++) {
            const double *row = rows + (base + (size_t) (r < nrows ? r : nrows - 1)) * nf;
            for (int j = 0; j < nf; j++)
                x[j * PACKED_BLOCK + r] = transform_value(f, row[j]);
            R[r] = 0;
            sum[r] = 0.0;
        }
        for (int j = 0; j < nf; j++)
            rank_block8(f->p_thr + f->p_off[j], f->p_off[j + 1] - f->p_off[j], x + j * PACKED_BLOCK,
                        padded, 6 + j * f->p_width, R);
        for (int t = 0; t < f->n_trees; t++)
            for (int r = 0; r < padded; r += 8)
                walk8_rows(f, t, R + r, sum + r);
        for (int r = 0; r < nrows; r++)
            out[base + r] = sum_to_score(f, sum[r]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* one row: eight trees in lockstep                                                             */

#ifdef PACKED_ASM
/* one level of lane j: nd is the group's first tree's node array minus one, NI its node count
 * (a compile-time constant, so lane j's tree is a fixed displacement away) */
#define TREE_STEP(i, j, NI)                                                                        \
    __asm__("mov %c[o](%[nd],%[n],8), %[v]\n\t"                                                    \
            "add %[r], %[v]\n\t"                                                                   \
            "bt %[v], %[v]\n\t"                                                                    \
            "adc %[n], %[n]"                                                                       \
            : [n] "+r"(i), [v] "=&r"(v)                                                            \
            : [nd] "r"(nd), [o] "i"((j) * (NI) *8), [r] "r"(R),                                    \
              "m"(*(const uint64_t(*)[8 << DENSE_MAX_DEPTH]) nd)                                   \
            : "cc")

#define TREE_LANE(j, NI) TREE_STEP(i##j, j, NI);
#define TREE_LEAF(j, NI) sum += lv[(j) * ((NI) + 1) + i##j];

/* walk8_trees_D: summed leaf values of eight consecutive trees of depth D for one row word */
#define DEFINE_WALK8_TREES(D)                                                                      \
    static double walk8_trees_##D(const uint64_t *nd, const double *lv, uint64_t R, double sum)    \
    {                                                                                              \
        enum { NI = (1 << (D)) - 1 };                                                              \
        size_t i0 = 1, i1 = 1, i2 = 1, i3 = 1, i4 = 1, i5 = 1, i6 = 1, i7 = 1;                     \
        uint64_t v;                                                                                \
        nd -= 1;                                                                                   \
        lv -= NI + 1;                                                                              \
        for (int k = 0; k < (D); k++) {                                                            \
            LANES8(TREE_LANE, NI)                                                                  \
        }                                                                                          \
        LANES8(TREE_LEAF, NI)                                                                      \
        return sum;                                                                                \
    }
DEFINE_WALK8_TREES(1)
DEFINE_WALK8_TREES(2)
DEFINE_WALK8_TREES(3)
DEFINE_WALK8_TREES(4)
DEFINE_WALK8_TREES(5)
DEFINE_WALK8_TREES(6)
DEFINE_WALK8_TREES(7)
DEFINE_WALK8_TREES(8)
DEFINE_WALK8_TREES(9)
DEFINE_WALK8_TREES(10)

typedef double (*walk8_trees_fn)(const uint64_t *nd, const double *lv, uint64_t R, double sum);
static const walk8_trees_fn walk8_trees[DENSE_MAX_DEPTH + 1] = {
    NULL,          walk8_trees_1, walk8_trees_2, walk8_trees_3, walk8_trees_4, walk8_trees_5,
    walk8_trees_6, walk8_trees_7, walk8_trees_8, walk8_trees_9, walk8_trees_10};

/* ------------------------------------------------------------------------------------------ */
/* one row, cache-line blocks                                                                   */

/*
 * A single row touches every tree once, so its walk waits on L2 (a 100-tree model is ~400 kB)
 * and the heap layout costs a cache line per level below the third, plus one for the leaf. The
 * blocked copy packs each 3-level subtree into one 64-byte line (slots 1..7; slot 0 unused), the
 * lines forming an 8-ary heap: line q's subtree exit e leads to line 8q + 1 + e. With p = 8q + b
 * (b the 1-based index inside the line), the in-line step is p += (p & 7) + carry and leaving a
 * line is p = 8p - 55. The last line of a path holds one or two levels and then its leaves'
 * values in the slots that follow, so an 8-level tree (sample_size 256) is walked in three lines
 * instead of seven. Depths that are a multiple of three would need a fourth line for the leaves
 * and keep the heap walk.
 */
#define BLOCKED_MAX_DEPTH 8
/* blocked_slots: slots per tree of depth D (lines 1 + 8 + 64 + ... over ceil(D / 3) levels) */
#define BLOCKED_SLOTS(D) (8 * ((D) > 6 ? 73 : (D) > 3 ? 9 : 1))

static bool blocked_depth(int D)
{
    return D >= 1 && D <= BLOCKED_MAX_DEPTH && D % 3 != 0;
}

/* blocked_build fills f->b_node from p_node and d_leaf (0, or -1 on ENOMEM). */
static int blocked_build(forest *f)
{
    int D = f->dense_depth;
    size_t n_internal = ((size_t) 1 << D) - 1, S = BLOCKED_SLOTS(D);
    uint32_t pos[2 << BLOCKED_MAX_DEPTH];
    uint64_t *b = calloc(S * dense_padded_trees(f), sizeof(uint64_t));

    if (!b)
        return -1;
    pos[1] = 1;
    for (uint32_t i = 1; i <= n_internal; i++) {
        int child_level = 32 - __builtin_clz(i); /* level of i, plus one */
        for (uint32_t c = 0; c < 2; c++) {
            uint32_t u = pos[i] + (pos[i] & 7) + c;
            pos[2 * i + c] = (child_level % 3 == 0 && child_level < D) ? 8 * u - 55 : u;
        }
    }
    for (size_t t = 0; t < (size_t) f->n_trees; t++) {
        for (uint32_t i = 1; i <= n_internal; i++)
            b[t * S + pos[i]] = f->p_node[t * n_internal + i - 1];
        for (uint32_t i = 0; i <= n_internal; i++)
            memcpy(&b[t * S + pos[n_internal + 1 + i]], &f->d_leaf[t * (n_internal + 1) + i],
                   sizeof(double));
    }
    f->b_node = b;
    return 0;
}

/* one level of lane j in the blocked copy: NS is the slots per tree */
#define BLOCK_STEP(pj, j, NS)                                                                      \
    __asm__("mov %[n], %[t]\n\t"                                                                   \
            "and $7, %[t]\n\t"                                                                     \
            "mov %c[o](%[nd],%[n],8), %[v]\n\t"                                                    \
            "add %[r], %[v]\n\t"                                                                   \
            "bt %[v], %[v]\n\t"                                                                    \
            "adc %[t], %[n]"                                                                       \
            : [n] "+r"(pj), [v] "=&r"(v), [t] "=&r"(t)                                             \
            : [nd] "r"(nd), [o] "i"((j) * (NS) *8), [r] "r"(R),                                    \
              "m"(*(const uint64_t(*)[8 * BLOCKED_SLOTS(BLOCKED_MAX_DEPTH)]) nd)                   \
            : "cc")

/* leaf_at reads the double stored in slot p of lane j's tree. */
static inline double leaf_at(const uint64_t *nd, size_t p)
{
    double d;
    memcpy(&d, &nd[p], sizeof(double));
    return d;
}

#define BLOCK_LANE(j, NS) BLOCK_STEP(p##j, j, NS);
#define NEXT_LINE(j, _)   p##j = 8 * p##j - 55;
#define BLOCK_LEAF(j, NS) sum += leaf_at(nd + (j) * (NS), p##j);

/* walk8_blocked_D: summed leaf values of eight consecutive trees of depth D for one row word
 * (the level loop is unrolled, so the line changes after every third level are straight code) */
#define DEFINE_WALK8_BLOCKED(D)                                                                    \
    static double walk8_blocked_##D(const uint64_t *nd, uint64_t R, double sum)                    \
    {                                                                                              \
        enum { NS = BLOCKED_SLOTS(D) };                                                            \
        size_t p0 = 1, p1 = 1, p2 = 1, p3 = 1, p4 = 1, p5 = 1, p6 = 1, p7 = 1;                     \
        uint64_t v, t;                                                                             \
        _Pragma("GCC unroll 8") for (int k = 1; k <= (D); k++)                                     \
        {                                                                                          \
            LANES8(BLOCK_LANE, NS)                                                                 \
            if (k % 3 == 0 && k < (D)) {                                                           \
                LANES8(NEXT_LINE, -)                                                               \
            }                                                                                      \
        }                                                                                          \
        LANES8(BLOCK_LEAF, NS)                                                                     \
        return sum;                                                                                \
    }
DEFINE_WALK8_BLOCKED(1)
DEFINE_WALK8_BLOCKED(2)
DEFINE_WALK8_BLOCKED(4)
DEFINE_WALK8_BLOCKED(5)
DEFINE_WALK8_BLOCKED(7)
DEFINE_WALK8_BLOCKED(8)

typedef double (*walk8_blocked_fn)(const uint64_t *nd, uint64_t R, double sum);
static const walk8_blocked_fn walk8_blocked[BLOCKED_MAX_DEPTH + 1] = {
    NULL, walk8_blocked_1, walk8_blocked_2, NULL, walk8_blocked_4, walk8_blocked_5,
    NULL, walk8_blocked_7, walk8_blocked_8};
#endif

/* forest_packed_sum_row walks the trees eight at a time for one transformed row. */
double forest_packed_sum_row(const forest *f, const double *xt)
{
    int D = f->dense_depth;
    size_t n_internal = ((size_t) 1 << D) - 1;
    uint64_t R = packed_word(f, xt);
    double sum = 0.0;

#ifdef PACKED_ASM
    if (f->b_node) {
        size_t S = BLOCKED_SLOTS(D);
        for (size_t t = 0; t < (size_t) f->n_trees; t += 8)
            sum = walk8_blocked[D](f->b_node + t * S, R, sum);
        return sum;
    }
#endif
    for (size_t t = 0; t < (size_t) f->n_trees; t += 8) {
        const uint64_t *nd = f->p_node + t * n_internal;
        const double *lv = f->d_leaf + t * (n_internal + 1);
#ifdef PACKED_ASM
        sum = walk8_trees[D](nd, lv, R, sum);
#else
        size_t i[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        for (int k = 0; k < D; k++) {
            for (int j = 0; j < 8; j++) {
                i[j] = 2 * i[j] + packed_right(nd[j * n_internal + i[j] - 1] + R);
            }
        }
        for (int j = 0; j < 8; j++)
            sum += lv[j * (n_internal + 1) + i[j] - (n_internal + 1)];
#endif
    }
    return sum;
}
