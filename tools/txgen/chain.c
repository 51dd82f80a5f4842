/* tools/txgen/chain.c — a synthetic Ethereum chain: blocks, fees, senders, labelled anomalies */

/*
 * Design
 *
 * The generator walks a pretend chain one transaction at a time. All state lives in struct
 * chain and every random choice comes from one xoshiro256** stream seeded from --seed, in a
 * fixed order, so the same seed and options always give the same transactions. Timestamps are
 * CHAIN_GENESIS_TIME plus block progression (12 s slots, 1% missed slots of 24 s), never the
 * wall clock. A stream of N transactions is a prefix of the stream of N+1.
 *
 * What "realistic" means here (roughly mainnet 2023/24):
 *  - blocks of 100..200 transactions (mean 150); a base fee that random-walks between 10 and
 *    60 gwei (±6% per block, reflected at the bounds); tips log-uniform in 0.01..3 gwei;
 *  - 85% EIP-1559 transactions (maxFee = 2*base + tip, effective price base + tip), 15% legacy
 *    (price rounded up to whole gwei);
 *  - 60% plain transfers (gas exactly 21000, input "0x", heavy-tailed values: mostly
 *    0.001..10 ETH, 10% 10..1000 ETH, 1.5% 1000..5000 ETH, a little dust), 39.5% contract calls
 *    (gas limit log-uniform 50k..1M, 80% zero value, calldata = a common selector + ABI words),
 *    0.5% contract creations (no recipient, init code, 0.5M..5M gas);
 *  - 8192 sender accounts with their own nonces, 64 of them "exchange hot wallets" that send a
 *    quarter of all transactions; 512 contracts, 16 of them popular.
 *
 * Values are exact wei integers (u128): a log-uniform draw picks the magnitude and a few
 * significant digits (round amounts) or many (computed amounts); digits beyond what a double
 * can carry come from the integer PRNG, so no value is a binary-floating-point artefact.
 *
 * Anomalies: --anomaly-rate R is the expected fraction of labelled transactions. Three quarters
 * of the labels are single transactions (huge_value, gas_price_spike, gas_limit_outlier, in
 * equal parts); one quarter comes from address_burst: a fresh address (nonce 0) sending 20..40
 * transactions inside one block. A burst starts with probability R/4/30 per transaction (30 =
 * mean burst length), is spread over the rest of the block (each remaining slot is a burst
 * transaction with probability left/remaining, so it always ends inside the block), and the
 * block is stretched if it has fewer slots left than the burst needs.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"

#define SENDER_POOL    8192
#define HOT_SENDERS    64
#define CONTRACT_POOL  512
#define HOT_CONTRACTS  16
#define BURST_MIN      20
#define BURST_MAX      40
#define BURST_SHARE    0.25
#define BLOCK_TXS_MIN  100
#define BLOCK_TXS_MAX  200
#define SLOT_SECONDS   12
#define BASE_FEE_MIN   10.0 /* gwei */
#define BASE_FEE_MAX   60.0 /* gwei */
#define BASE_FEE_START 25.0 /* gwei */
#define GWEI           1000000000ULL
#define TRANSFER_GAS   21000

struct account {
    uint8_t addr[20];
    uint64_t nonce;
};

struct chain {
    struct txg_rng rng;
    double p_single;      /* per-transaction probability of a single-transaction anomaly */
    double p_burst_start; /* per-transaction probability of starting an address burst */
    int started;
    uint64_t block_number;
    uint64_t timestamp;
    uint8_t block_hash[32];
    uint64_t block_txs; /* transactions in the current block */
    uint64_t block_idx; /* index of the next transaction in the block */
    uint64_t block_gas; /* cumulative gas used so far in the block */
    double base_fee_gwei;
    uint64_t base_fee; /* wei */
    struct account burst;
    uint64_t burst_left;
    struct account senders[SENDER_POOL];
    uint8_t contracts[CONTRACT_POOL][20];
};

/* A few real function selectors with their usual number of ABI words, weighted by frequency. */
static const struct selector {
    uint8_t sel[4];
    int words;
    int weight;
} selectors[] = {
    {{0xa9, 0x05, 0x9c, 0xbb}, 2, 30}, /* transfer(address,uint256) */
    {{0x09, 0x5e, 0xa7, 0xb3}, 2, 12}, /* approve(address,uint256) */
    {{0x23, 0xb8, 0x72, 0xdd}, 3, 6},  /* transferFrom(address,address,uint256) */
    {{0x35, 0x93, 0x56, 0x4c}, 8, 14}, /* execute(bytes,bytes[],uint256) */
    {{0x7f, 0xf3, 0x6a, 0xb5}, 5, 5},  /* swapExactETHForTokens */
    {{0x38, 0xed, 0x17, 0x39}, 5, 5},  /* swapExactTokensForTokens */
    {{0x18, 0xcb, 0xaf, 0xe5}, 5, 4},  /* swapExactTokensForETH */
    {{0xd0, 0xe3, 0x0d, 0xb0}, 0, 4},  /* deposit() */
    {{0x2e, 0x1a, 0x7d, 0x4d}, 1, 4},  /* withdraw(uint256) */
    {{0x5a, 0xe4, 0x01, 0xdc}, 8, 6},  /* multicall(uint256,bytes[]) */
    {{0xac, 0x96, 0x50, 0xd8}, 6, 5},  /* multicall(bytes[]) */
    {{0x12, 0x8a, 0xcb, 0x08}, 4, 5},  /* swap(address,bool,int256,uint160,bytes) */
};

#define N_SELECTORS (sizeof(selectors) / sizeof(selectors[0]))

static const char *const anomaly_names[] = {
    [TX_NORMAL] = "",
    [TX_HUGE_VALUE] = "huge_value",
    [TX_GAS_PRICE_SPIKE] = "gas_price_spike",
    [TX_GAS_LIMIT_OUTLIER] = "gas_limit_outlier",
    [TX_ADDRESS_BURST] = "address_burst",
};

/* chain_anomaly_name maps a kind to its label; unknown kinds give "". */
const char *chain_anomaly_name(enum tx_anomaly a)
{
    if ((unsigned) a >= sizeof(anomaly_names) / sizeof(anomaly_names[0]))
        return "";
    return anomaly_names[a];
}

/* pow10_u64 returns 10^e for 0 <= e <= 19. */
static uint64_t pow10_u64(int e)
{
    uint64_t v = 1;
    while (e-- > 0)
        v *= 10;
    return v;
}

/* log_uniform returns a double whose logarithm is uniform in [ln lo, ln hi). */
static double log_uniform(struct txg_rng *r, double lo, double hi)
{
    return exp(rng_uniform(r, log(lo), log(hi)));
}

/*
 * wei_log_uniform draws an exact wei amount whose log10 is uniform in [lo10, hi10) (lo10 >= 0,
 * hi10 <= 30). With probability round_share the amount has 1..3 significant digits (0.25 ETH,
 * 1.5 ETH), otherwise 4..19 digits; digits past the 15th come from the integer PRNG.
 */
static u128 wei_log_uniform(struct txg_rng *r, double lo10, double hi10, double round_share)
{
    double x = rng_uniform(r, lo10, hi10);
    int e = (int) floor(x);
    double m = pow(10.0, x - e); /* [1, 10) */
    int sig, hi_digits;
    uint64_t mant;
    u128 v;

    if (rng_unit(r) < round_share)
        sig = (int) rng_range(r, 1, 3);
    else
        sig = (int) rng_range(r, 4, 19);
    if (sig > e + 1)
        sig = e + 1;
    hi_digits = sig < 15 ? sig : 15;
    mant = (uint64_t) (m * (double) pow10_u64(hi_digits - 1));
    if (mant < pow10_u64(hi_digits - 1))
        mant = pow10_u64(hi_digits - 1);
    if (mant >= pow10_u64(hi_digits))
        mant = pow10_u64(hi_digits) - 1;
    if (sig > hi_digits)
        mant = mant * pow10_u64(sig - hi_digits) + rng_below(r, pow10_u64(sig - hi_digits));
    v = mant;
    for (int i = 0; i < e - sig + 1; i++)
        v *= 10;
    return v;
}

/* random_address fills addr with a fresh random address. */
static void random_address(struct txg_rng *r, uint8_t addr[20])
{
    rng_bytes(r, addr, 20);
}

/* chain_new_block advances to the next block (or opens the first one). */
static void chain_new_block(struct chain *c)
{
    struct txg_rng *r = &c->rng;

    if (!c->started) {
        c->started = 1;
    } else {
        c->block_number++;
        c->timestamp += rng_unit(r) < 0.01 ? 2 * SLOT_SECONDS : SLOT_SECONDS;
        c->base_fee_gwei *= 1.0 + rng_uniform(r, -0.06, 0.06);
        if (c->base_fee_gwei < BASE_FEE_MIN)
            c->base_fee_gwei = 2 * BASE_FEE_MIN - c->base_fee_gwei;
        if (c->base_fee_gwei > BASE_FEE_MAX)
            c->base_fee_gwei = 2 * BASE_FEE_MAX - c->base_fee_gwei;
    }
    c->base_fee = (uint64_t) (c->base_fee_gwei * (double) GWEI);
    rng_bytes(r, c->block_hash, sizeof(c->block_hash));
    c->block_txs = rng_range(r, BLOCK_TXS_MIN, BLOCK_TXS_MAX);
    c->block_idx = 0;
    c->block_gas = 0;
}

/* chain_new seeds the stream and builds the account pools. */
struct chain *chain_new(const struct chain_config *cfg, char *errbuf, size_t errlen)
{
    struct chain *c = calloc(1, sizeof(*c));

    if (!c) {
        strncpy(errbuf, "out of memory", errlen - 1);
        errbuf[errlen - 1] = '\0';
        return NULL;
    }
    rng_seed(&c->rng, cfg->seed);
    c->p_single = cfg->anomaly_rate * (1.0 - BURST_SHARE);
    c->p_burst_start = cfg->anomaly_rate * BURST_SHARE / ((BURST_MIN + BURST_MAX) / 2.0);
    c->block_number = cfg->start_block;
    c->timestamp = CHAIN_GENESIS_TIME;
    c->base_fee_gwei = BASE_FEE_START;

    for (int i = 0; i < SENDER_POOL; i++) {
        random_address(&c->rng, c->senders[i].addr);
        if (i < HOT_SENDERS)
            c->senders[i].nonce = rng_range(&c->rng, 100000, 5000000);
        else
            c->senders[i].nonce = (uint64_t) log_uniform(&c->rng, 1.0, 20000.0) - 1;
    }
    for (int i = 0; i < CONTRACT_POOL; i++)
        random_address(&c->rng, c->contracts[i]);
    return c;
}

/* chain_free releases the chain. */
void chain_free(struct chain *c)
{
    free(c);
}

/* pick_sender returns a pool account: a quarter of the traffic comes from the hot wallets. */
static struct account *pick_sender(struct chain *c)
{
    if (rng_unit(&c->rng) < 0.25)
        return &c->senders[rng_below(&c->rng, HOT_SENDERS)];
    return &c->senders[rng_below(&c->rng, SENDER_POOL)];
}

/* set_fees fills type, gas price and (type 2) fee caps; spike_wei > 0 forces an absurd price. */
static void set_fees(struct chain *c, struct tx *tx, uint64_t spike_wei)
{
    struct txg_rng *r = &c->rng;
    uint64_t tip = (uint64_t) (log_uniform(r, 0.01, 3.0) * (double) GWEI);

    tx->type = rng_unit(r) < 0.85 ? 2 : 0;
    if (spike_wei > 0) {
        tx->gas_price = spike_wei;
        tx->max_fee = spike_wei;
        tx->max_priority = spike_wei - c->base_fee;
    } else if (tx->type == 2) {
        tx->max_priority = tip;
        tx->max_fee = 2 * c->base_fee + tip;
        tx->gas_price = c->base_fee + tip;
    } else {
        tx->gas_price = (c->base_fee + tip + GWEI - 1) / GWEI * GWEI;
    }
    if (tx->type == 0) {
        tx->max_fee = 0;
        tx->max_priority = 0;
    }
}

/* transfer_value draws the heavy-tailed value of a plain transfer (wei). */
static u128 transfer_value(struct txg_rng *r)
{
    double u = rng_unit(r);

    if (u < 0.005)
        return wei_log_uniform(r, 12.0, 15.0, 0.2); /* dust */
    if (u < 0.885)
        return wei_log_uniform(r, 15.0, 19.0, 0.45); /* 0.001 .. 10 ETH */
    if (u < 0.985)
        return wei_log_uniform(r, 19.0, 21.0, 0.6); /* 10 .. 1000 ETH */
    return wei_log_uniform(r, 21.0, 21.69897, 0.7); /* 1000 .. 5000 ETH */
}

/* abi_word writes one 32-byte ABI word: an address, an amount or a small integer. */
static void abi_word(struct chain *c, uint8_t *w)
{
    struct txg_rng *r = &c->rng;
    uint64_t kind = rng_below(r, 3);

    memset(w, 0, 32);
    if (kind == 0) {
        if (rng_unit(r) < 0.5)
            memcpy(w + 12, c->senders[rng_below(r, SENDER_POOL)].addr, 20);
        else
            memcpy(w + 12, c->contracts[rng_below(r, CONTRACT_POOL)], 20);
    } else if (kind == 1) {
        int n = (int) rng_range(r, 6, 14);
        rng_bytes(r, w + 32 - n, (size_t) n);
    } else {
        w[31] = (uint8_t) (rng_below(r, 8) * 32);
    }
}

/* set_calldata writes selector + ABI words into tx->input. */
static void set_calldata(struct chain *c, struct tx *tx)
{
    int total = 0, pick, words;
    const struct selector *s = &selectors[0];

    for (size_t i = 0; i < N_SELECTORS; i++)
        total += selectors[i].weight;
    pick = (int) rng_below(&c->rng, (uint64_t) total);
    for (size_t i = 0; i < N_SELECTORS; i++) {
        if (pick < selectors[i].weight) {
            s = &selectors[i];
            break;
        }
        pick -= selectors[i].weight;
    }
    memcpy(tx->input, s->sel, 4);
    words = s->words;
    tx->input_len = 4 + 32 * (size_t) words;
    for (int i = 0; i < words; i++)
        abi_word(c, tx->input + 4 + 32 * i);
}

/* make_transfer fills a plain ETH transfer from sender. */
static void make_transfer(struct chain *c, struct tx *tx, struct account *sender)
{
    struct txg_rng *r = &c->rng;

    memcpy(tx->from, sender->addr, 20);
    tx->nonce = sender->nonce++;
    if (rng_unit(r) < 0.4)
        memcpy(tx->to, c->senders[rng_below(r, SENDER_POOL)].addr, 20);
    else
        random_address(r, tx->to);
    tx->value = transfer_value(r);
    tx->gas = TRANSFER_GAS;
    tx->gas_used = TRANSFER_GAS;
    tx->input_len = 0;
}

/* make_call fills a contract call from sender. */
static void make_call(struct chain *c, struct tx *tx, struct account *sender)
{
    struct txg_rng *r = &c->rng;

    memcpy(tx->from, sender->addr, 20);
    tx->nonce = sender->nonce++;
    if (rng_unit(r) < 0.4)
        memcpy(tx->to, c->contracts[rng_below(r, HOT_CONTRACTS)], 20);
    else
        memcpy(tx->to, c->contracts[rng_below(r, CONTRACT_POOL)], 20);
    tx->value = rng_unit(r) < 0.8 ? 0 : wei_log_uniform(r, 15.0, 19.0, 0.5);
    tx->gas = (uint64_t) log_uniform(r, 50000.0, 1000000.0);
    tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.4, 0.98));
    set_calldata(c, tx);
}

/* make_create fills a contract creation: no recipient, init code as input. */
static void make_create(struct chain *c, struct tx *tx, struct account *sender)
{
    static const uint8_t prologue[] = {0x60, 0x80, 0x60, 0x40, 0x52};
    struct txg_rng *r = &c->rng;
    size_t n = (size_t) rng_range(r, 100, TX_INPUT_MAX - sizeof(prologue));

    memcpy(tx->from, sender->addr, 20);
    tx->nonce = sender->nonce++;
    tx->is_create = 1;
    random_address(r, tx->contract_address);
    tx->value = rng_unit(r) < 0.95 ? 0 : wei_log_uniform(r, 15.0, 18.0, 0.8);
    tx->gas = (uint64_t) log_uniform(r, 500000.0, 5000000.0);
    tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.6, 0.95));
    memcpy(tx->input, prologue, sizeof(prologue));
    rng_bytes(r, tx->input + sizeof(prologue), n);
    tx->input_len = sizeof(prologue) + n;
}

/* make_normal picks the kind of an unlabelled transaction and fills it. */
static void make_normal(struct chain *c, struct tx *tx)
{
    struct account *sender = pick_sender(c);
    double u = rng_unit(&c->rng);

    if (u < 0.60)
        make_transfer(c, tx, sender);
    else if (u < 0.995)
        make_call(c, tx, sender);
    else
        make_create(c, tx, sender);
    set_fees(c, tx, 0);
}

/* make_single_anomaly fills one labelled transaction of a non-burst kind. */
static void make_single_anomaly(struct chain *c, struct tx *tx)
{
    struct txg_rng *r = &c->rng;
    struct account *sender = pick_sender(c);

    tx->anomaly = (enum tx_anomaly)(TX_HUGE_VALUE + rng_below(r, 3));
    switch (tx->anomaly) {
    case TX_HUGE_VALUE:
        make_transfer(c, tx, sender);
        tx->value = wei_log_uniform(r, 22.0, 24.0, 0.5); /* 10k .. 1M ETH */
        set_fees(c, tx, 0);
        break;
    case TX_GAS_PRICE_SPIKE:
        if (rng_unit(r) < 0.5)
            make_transfer(c, tx, sender);
        else
            make_call(c, tx, sender);
        set_fees(c, tx, (uint64_t) (log_uniform(r, 5000.0, 50000.0) * (double) GWEI));
        break;
    default: /* TX_GAS_LIMIT_OUTLIER */
        make_call(c, tx, sender);
        if (rng_unit(r) < 0.8) {
            tx->gas = rng_range(r, 8000000, 30000000);
            tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.02, 0.3));
        } else {
            tx->gas = rng_range(r, TRANSFER_GAS + 1, 21999);
            tx->gas_used = tx->gas;
        }
        set_fees(c, tx, 0);
        break;
    }
}

/* make_burst_tx fills the next transaction of the running address burst. */
static void make_burst_tx(struct chain *c, struct tx *tx)
{
    struct txg_rng *r = &c->rng;

    tx->anomaly = TX_ADDRESS_BURST;
    memcpy(tx->from, c->burst.addr, 20);
    tx->nonce = c->burst.nonce++;
    random_address(r, tx->to);
    tx->value = wei_log_uniform(r, 16.0, 18.0, 0.5); /* 0.01 .. 1 ETH */
    tx->gas = TRANSFER_GAS;
    tx->gas_used = TRANSFER_GAS;
    tx->input_len = 0;
    set_fees(c, tx, 0);
    c->burst_left--;
}

/* chain_next: block bookkeeping, then burst / single anomaly / normal, then the common fields.
 * The order of random draws is part of the output format: changing it changes every stream. */
void chain_next(struct chain *c, struct tx *tx)
{
    struct txg_rng *r = &c->rng;
    uint64_t remaining;
    double u;

    if (!c->started || c->block_idx >= c->block_txs)
        chain_new_block(c);
    remaining = c->block_txs - c->block_idx;

    tx->anomaly = TX_NORMAL;
    tx->is_create = 0;
    tx->max_fee = 0;
    tx->max_priority = 0;

    if (c->burst_left > 0 && rng_below(r, remaining) < c->burst_left) {
        make_burst_tx(c, tx);
    } else {
        u = rng_unit(r);
        if (u < c->p_single) {
            make_single_anomaly(c, tx);
        } else if (u < c->p_single + c->p_burst_start && c->burst_left == 0) {
            random_address(r, c->burst.addr);
            c->burst.nonce = 0;
            c->burst_left = rng_range(r, BURST_MIN, BURST_MAX);
            if (c->burst_left > remaining)
                c->block_txs = c->block_idx + c->burst_left;
            make_burst_tx(c, tx);
        } else {
            make_normal(c, tx);
        }
    }

    rng_bytes(r, tx->hash, sizeof(tx->hash));
    rng_bytes(r, tx->r, sizeof(tx->r));
    rng_bytes(r, tx->s, sizeof(tx->s));
    tx->y_parity = (int) (rng_next(r) >> 63);
    memcpy(tx->block_hash, c->block_hash, sizeof(tx->block_hash));
    tx->block_number = c->block_number;
    tx->timestamp = c->timestamp;
    tx->tx_index = c->block_idx++;
    c->block_gas += tx->gas_used;
    tx->cumulative_gas_used = c->block_gas;
}
