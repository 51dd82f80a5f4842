/* tools/txgen/chain.c — a synthetic Ethereum chain: accounts with habits, fees, labelled attacks */

/*
 * Design
 *
 * The generator walks a pretend chain one transaction at a time. All state lives in struct
 * chain and every random choice comes from one xoshiro256** stream seeded from --seed, in a
 * fixed order, so the same seed and options always give the same transactions. Timestamps are
 * CHAIN_GENESIS_TIME plus block progression (12 s slots, 1% missed slots of 24 s), never the
 * wall clock. A stream of N transactions is a prefix of the stream of N+1.
 *
 * The market (roughly mainnet 2023/24):
 *  - blocks of 100..200 transactions (mean 150); a base fee that random-walks between 10 and
 *    60 gwei (±6% per block, reflected at the bounds) and a market priority fee that walks
 *    between 0.05 and 0.8 gwei (±3% per block), so gas prices drift and a detector must cope;
 *  - ~87% EIP-1559 transactions (maxFee = 2*base + tip, effective price base + tip), the rest
 *    legacy (price rounded up to whole gwei), mostly from wallets that always sign legacy;
 *  - ~57% plain transfers (gas exactly 21000, input "0x"), ~42% contract calls (gas limit
 *    log-uniform 50k..1M, calldata = a common selector + ABI words), ~0.5% creations.
 *
 * Accounts have habits. Each account gets at creation, and keeps:
 *  - a kind: retail wallet, active trader, whale, exchange hot wallet or bot;
 *  - a value scale: the median of its transfers (log-uniform per kind: retail 0.005..2 ETH,
 *    traders 0.1..50, whales 10..1000, exchanges 0.2..2, bots 0.03..3) and a spread sigma of
 *    ln(value) (0.3..1.1). A transfer's value is median * exp(sigma * z), z an Irwin-Hall
 *    (sum of four uniforms) draw: normal in the body, bounded at ±3.46, so ordinary spread never
 *    reaches 50x the median; 0.3% of transfers are "big moves" of 5..25x (savings to a cold
 *    wallet, a car bought): ordinary, and not an attack;
 *  - an activity rate, log-normal per kind (sigma 0.7..1.3) on kind scales that differ 400x:
 *    most accounts send rarely, a few hot wallets and bots send every block. The sender of
 *    each transaction is drawn with probability proportional to its rate (integer weights in
 *    power-of-two levels, a level by its total weight and a member by rejection: O(1), exact,
 *    updated in O(1) when accounts come and go; see sample_account), so the time between an
 *    account's transactions is exponential with its own rate;
 *  - usual counterparties: up to 8 favourite recipients (exchanges it deposits to, friends in
 *    the pool, its own cold wallet or deposit address derived from its address) and up to 8
 *    favourite contracts (drawn by popularity, a Zipf law over 512 contracts, so routers and
 *    big tokens are called by many). Favourites are picked with a skew (the first most often);
 *    with a per-account probability (2..25%) a transfer goes to a new recipient instead, which
 *    becomes a favourite a quarter of the time;
 *  - a tip habit: its priority fee is the market's times a per-account multiplier (log-normal;
 *    bots 3..30x), so gas price relative to the market has a per-account shape;
 *  - a share of contract calls and of creations, and whether its wallet signs legacy.
 * Kinds behave like their kind: exchange hot wallets (24, never retired) send withdrawals to
 * many distinct and mostly new addresses with broad values, a quarter of them token transfers;
 * bots (96) call their own contracts with high tips; traders call routers; whales move large
 * amounts rarely, mostly to exchanges and cold wallets.
 *
 * Contracts have kinds by their index (contract_kind): DEX routers, tokens, WETH and others
 * (pools, bridges, bots' own contracts), each called with its own selectors; only payable
 * functions carry ETH, so tokens never receive any.
 *
 * New accounts appear during the stream: a third of exchange withdrawals to a fresh address (and
 * a few retail transfers to one) fund an account that joins the pool with nonce 0 and a scale
 * below the amount it received, and starts sending at its own rate; and with probability
 * P_NEWCOMER per transaction an account funded where a transaction list cannot show it (a
 * bridge, a contract's internal transfer) joins the same way, so fresh senders are ordinary. The
 * pool starts with 16384 accounts and is capped at 32768; when full, a newcomer replaces a random
 * ordinary account (never an exchange or bot), chosen from the same seeded stream. Favourites that
 * pointed at the replaced slot now point at the newcomer, as if the old counterparty had moved
 * wallets. State is per account (96 bytes) plus the sampler's levels (4 bytes per account and level
 * touched): bounded, under 8 MB.
 *
 * Values are exact wei integers (u128): a log10 draw picks the magnitude and a few significant
 * digits (round amounts) or many (computed amounts); digits beyond what a double can carry
 * come from the integer PRNG, so no value is a binary-floating-point artefact.
 *
 * Anomalies: --anomaly-rate R is the expected fraction of labelled transactions, split between
 * the kinds by the fixed shares of the kinds table (which also holds each kind's --help text
 * and source). An event of kind k starts with probability R * share_k / (mean labelled
 * transactions per event of k) per transaction, from one uniform draw against cumulative cuts.
 *  - Single transactions (huge_value: an ordinary account sending 100..1000x its own median,
 *    half of them also 10k..1M ETH; gas_price_spike; gas_limit_outlier) replace the normal one.
 *  - address_burst: a fresh address (nonce 0) sending 20..40 transactions inside one block,
 *    spread over the rest of the block (each remaining slot is a burst transaction with
 *    probability left/remaining, so it always ends inside the block; a block with too few
 *    slots left is stretched).
 *  - Campaigns, the attacks that only show over time or against an account's history
 *    (address_poisoning, drainer_sweep, peel_chain): starting one costs nothing visible (that
 *    transaction stays normal); it takes one of CAMPAIGNS_MAX slots and schedules its steps at
 *    stream positions (transactions from now, BLOCK_TXS_MEAN to a block). When the earliest
 *    due step of any campaign is reached it is emitted in place of a normal transaction, so a
 *    campaign's steps interleave with ordinary traffic blocks apart. Poisoners pick their
 *    victims from a ring of the last RECENT_MAX ordinary plain transfers (the victim and who
 *    it paid), as real poisoners watch the chain; drainers pick victims with history by rate;
 *    peel chains hop through fresh addresses, their balances exact to the wei (each holder
 *    ends with nothing). With all slots busy a new campaign is skipped, which only happens
 *    at rates far above 0.01.
 * Labelled transactions never fund pool accounts, so they leave the ordinary traffic alone.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"

#define POOL_START     16384                  /* accounts at the first block */
#define POOL_MAX       32768                  /* accounts at most: favourites hold 15-bit indices */
#define N_EXCHANGES    24                     /* slots 0..23 */
#define N_BOTS         96                     /* slots 24..119 */
#define N_SPECIAL      (N_EXCHANGES + N_BOTS) /* never retired */
#define N_WHALES       400
#define N_TRADERS      2000
#define FAV_EOA_MAX    8
#define FAV_CON_MAX    8
#define FAV_EXTERNAL   0x8000u /* fav_eoa flag: an address derived from the owner's own */
#define CONTRACT_POOL  512
#define BOT_OWN_FROM   64 /* bots' own contracts come from the unpopular part of the pool */
#define BURST_MIN      20
#define BURST_MAX      40
#define POISON_MAX     4 /* victims per poisoning attacker */
#define DRAIN_MIN      3 /* victims per drainer wave */
#define DRAIN_MAX      12
#define DRAIN_CLAIM    0.4 /* share of drainers that are a contract with a payable claim() */
#define DRAIN_TOKENS   2   /* token approvals / transfers per victim, 0..DRAIN_TOKENS */
#define PEEL_MIN       3   /* hops per peel chain */
#define PEEL_MAX       10
#define CAMPAIGNS_MAX  64 /* attacks in progress at once */
#define RECENT_MAX     64 /* recent ordinary transfers, the poisoners' targets */
#define BLOCK_TXS_MEAN 150
#define BLOCK_TXS_MIN  100
#define BLOCK_TXS_MAX  200
#define SLOT_SECONDS   12
#define BASE_FEE_MIN   10.0 /* gwei */
#define BASE_FEE_MAX   60.0 /* gwei */
#define BASE_FEE_START 25.0 /* gwei */
#define TIP_MIN        0.05 /* gwei, market priority fee walk */
#define TIP_MAX        0.8
#define TIP_START      0.2
#define GWEI           1000000000ULL
#define TRANSFER_GAS   21000
#define LOG10_ETH      18.0
#define VALUE_CAP10    21.95 /* log10 wei: ordinary transfers stay below ~9000 ETH */
#define VALUE_FLOOR10  12.0  /* 1e-6 ETH */
#define BIG_MOVE_SHARE 0.003
#define P_FUND_EXCH    0.35  /* exchange withdrawal to a fresh address funds a new pool account */
#define P_FUND_OTHER   0.10  /* the same for an ordinary transfer to a fresh address */
#define P_NEWCOMER     0.005 /* per transaction: an account funded off-stream joins the pool */
#define P_ADOPT        0.25  /* a new recipient becomes a favourite */
#define RATE_SCALE     256.0 /* activity rate to integer sampler weight */
#define SAMPLER_LEVELS 32    /* weights are uint32: levels floor(log2 w) = 0..31 */

enum acct_kind { AK_RETAIL, AK_TRADER, AK_WHALE, AK_EXCHANGE, AK_BOT };

/* Per-kind habits: each account draws its own parameters from these ranges at creation. */
static const struct kind_habits {
    double rate, rate_sigma;     /* activity weight rate * exp(rate_sigma * N(0,1)) */
    double value_lo, value_hi;   /* log10 ETH of the median transfer, uniform */
    double sigma_lo, sigma_hi;   /* spread of ln(value) */
    double call_lo, call_hi;     /* share of contract calls */
    double new_lo, new_hi;       /* probability that a transfer goes to a new recipient */
    double tip_mu, tip_sigma;    /* ln(tip multiplier) ~ N(tip_mu, tip_sigma) */
    double p_create;             /* share of contract creations */
    double call_value;           /* share of calls that carry ETH */
    double round_share;          /* share of round amounts */
    double fav_exchange;         /* favourite recipient: an exchange */
    double fav_external;         /* favourite recipient: own cold wallet / deposit address */
    int eoa_lo, eoa_hi;          /* favourite recipients */
    int con_lo, con_hi;          /* favourite contracts */
    uint64_t nonce_lo, nonce_hi; /* nonce at the first block, log-uniform */
} habits[] = {
    /* clang-format off */
    [AK_RETAIL] = {
        .rate = 1.0, .rate_sigma = 1.3,
        .value_lo = -2.3, .value_hi = 0.3, .sigma_lo = 0.3, .sigma_hi = 1.0, .round_share = 0.5,
        .call_lo = 0.15, .call_hi = 0.35, .call_value = 0.2, .p_create = 0.002,
        .new_lo = 0.03, .new_hi = 0.25, .fav_exchange = 0.3, .fav_external = 0.2,
        .eoa_lo = 1, .eoa_hi = 6, .con_lo = 1, .con_hi = 5,
        .tip_mu = 0.0, .tip_sigma = 0.8, .nonce_lo = 1, .nonce_hi = 5000,
    },
    [AK_TRADER] = {
        .rate = 5.0, .rate_sigma = 1.0,
        .value_lo = -1.0, .value_hi = 1.7, .sigma_lo = 0.4, .sigma_hi = 1.0, .round_share = 0.4,
        .call_lo = 0.45, .call_hi = 0.65, .call_value = 0.35, .p_create = 0.005,
        .new_lo = 0.05, .new_hi = 0.2, .fav_exchange = 0.3, .fav_external = 0.2,
        .eoa_lo = 1, .eoa_hi = 4, .con_lo = 3, .con_hi = 8,
        .tip_mu = 0.3, .tip_sigma = 0.7, .nonce_lo = 10, .nonce_hi = 50000,
    },
    [AK_WHALE] = {
        .rate = 2.0, .rate_sigma = 0.8,
        .value_lo = 1.0, .value_hi = 3.0, .sigma_lo = 0.3, .sigma_hi = 0.7, .round_share = 0.7,
        .call_lo = 0.1, .call_hi = 0.3, .call_value = 0.2, .p_create = 0.001,
        .new_lo = 0.02, .new_hi = 0.1, .fav_exchange = 0.45, .fav_external = 0.35,
        .eoa_lo = 1, .eoa_hi = 4, .con_lo = 1, .con_hi = 3,
        .tip_mu = 0.0, .tip_sigma = 0.6, .nonce_lo = 1, .nonce_hi = 3000,
    },
    [AK_EXCHANGE] = {
        .rate = 400.0, .rate_sigma = 0.7,
        .value_lo = -0.7, .value_hi = 0.3, .sigma_lo = 0.9, .sigma_hi = 1.1, .round_share = 0.2,
        .call_lo = 0.2, .call_hi = 0.3, .call_value = 0.0, .p_create = 0.0,
        .new_lo = 0.0, .new_hi = 0.0, .fav_exchange = 0.3, .fav_external = 0.7,
        .eoa_lo = 2, .eoa_hi = 4, .con_lo = 2, .con_hi = 8,
        .tip_mu = 0.2, .tip_sigma = 0.3, .nonce_lo = 100000, .nonce_hi = 5000000,
    },
    [AK_BOT] = {
        .rate = 80.0, .rate_sigma = 0.8,
        .value_lo = -1.5, .value_hi = 0.5, .sigma_lo = 0.4, .sigma_hi = 0.6, .round_share = 0.3,
        .call_lo = 0.9, .call_hi = 0.98, .call_value = 0.03, .p_create = 0.03,
        .new_lo = 0.02, .new_hi = 0.02, .fav_exchange = 0.0, .fav_external = 1.0,
        .eoa_lo = 1, .eoa_hi = 2, .con_lo = 1, .con_hi = 3,
        .tip_mu = 2.2, .tip_sigma = 0.7, .nonce_lo = 10000, .nonce_hi = 2000000,
    },
    /* clang-format on */
};

/* One account: identity, nonce and habits (see the design note). */
struct account {
    uint8_t addr[20];
    uint8_t kind;                  /* enum acct_kind */
    uint8_t legacy;                /* its wallet signs legacy (type 0) transactions */
    uint8_t n_eoa;                 /* favourite recipients in use */
    uint8_t n_con;                 /* favourite contracts in use */
    uint64_t nonce;                /* of its next transaction */
    float log_value;               /* log10 wei of its median transfer */
    float sigma;                   /* spread of ln(value) */
    float tip_mult;                /* priority fee relative to the market */
    float p_new;                   /* a transfer goes to a new recipient */
    float p_call;                  /* share of contract calls */
    uint32_t weight;               /* activity rate, as the sampler holds it (0: slot unused) */
    uint32_t level_pos;            /* position in its sampler level */
    uint16_t fav_eoa[FAV_EOA_MAX]; /* pool index, or FAV_EXTERNAL | n */
    uint16_t fav_con[FAV_CON_MAX]; /* contract index */
};

struct burst {
    uint8_t addr[20];
    uint64_t nonce;
    uint64_t left;
};

/* An ordinary account's recent transfer: who paid whom (what a poisoner watches). */
struct recent_transfer {
    uint8_t victim[20];
    uint8_t counterparty[20];
};

/* One attack in progress: a poisoning attacker, a drainer wave or a peel chain. Its steps are
 * due at stream positions; chain_next emits the earliest due step in place of a normal
 * transaction. */
struct campaign {
    enum tx_anomaly kind; /* TX_NORMAL: slot free */
    int variant;          /* poisoning: zero-value token transfer; drainer: claim() contract */
    unsigned step, steps; /* next step, steps in all */
    unsigned sub;         /* drainer: token transactions the current victim has still to send */
    uint64_t due;         /* stream position of the next step */
    uint8_t addr[20];     /* poisoning operator / drainer / peel chain's current holder */
    uint64_t nonce;       /* of addr */
    u128 amount;          /* drainer: collected; peel chain: held by the current holder */
    struct recent_transfer target[POISON_MAX]; /* poisoning */
    uint32_t victim[DRAIN_MAX];                /* drainer: slots already swept */
};

struct chain {
    struct txg_rng rng;
    double cut[TX_ANOMALY_KINDS]; /* cumulative per-transaction probability of starting each
                                     kind (single kinds: of the whole anomaly) */
    int started;
    uint64_t seq; /* transactions emitted so far */
    uint64_t block_number;
    uint64_t timestamp;
    uint8_t block_hash[32];
    uint64_t block_txs; /* transactions in the current block */
    uint64_t block_idx; /* index of the next transaction in the block */
    uint64_t block_gas; /* cumulative gas used so far in the block */
    double base_fee_gwei;
    double tip_gwei;   /* the market's priority fee */
    uint64_t base_fee; /* wei */
    struct burst burst;
    struct campaign camp[CAMPAIGNS_MAX];
    uint64_t next_due; /* earliest due step of any campaign; UINT64_MAX when none */
    struct recent_transfer recent[RECENT_MAX];
    uint32_t recent_n, recent_next;
    uint8_t drainer_fee[20];         /* the drainer service's fee address, shared by all drainers */
    uint32_t n_acct;                 /* accounts in use: slots 0..n_acct-1 */
    uint64_t weight_total;           /* sum of all account weights */
    double ln_contracts;             /* log(CONTRACT_POOL + 1), for zipf_index */
    double ln_exchanges;             /* log(N_EXCHANGES + 1) */
    struct account *acct;            /* POOL_MAX slots, owned */
    uint32_t *level[SAMPLER_LEVELS]; /* slots by weight level (see sample_account), owned */
    uint32_t level_n[SAMPLER_LEVELS];
    uint64_t level_sum[SAMPLER_LEVELS];
    unsigned top_level; /* highest level ever used */
    uint8_t contracts[CONTRACT_POOL][20];
};

/*
 * Contracts have kinds, and each kind is called its own way: tokens (70% of the pool) by
 * transfer/approve/transferFrom without ETH; DEX routers (10%) by swaps, execute and multicall,
 * which are payable, so some of these calls carry ETH; WETH by deposit() (always with ETH) and
 * withdraw; the rest (20%: pools, bridges, bots' own contracts) by anything. The most popular
 * indices are laid out like mainnet's: a router first, then stablecoins, WETH, more routers.
 */
enum con_kind { CK_TOKEN, CK_ROUTER, CK_WETH, CK_OTHER };

#define CK(k) (1u << (k))

/* contract_kind returns the kind of contract index i (a fixed layout, no state). */
static enum con_kind contract_kind(uint32_t i)
{
    static const uint8_t top[10] = {CK_ROUTER, CK_TOKEN,  CK_TOKEN, CK_WETH,  CK_ROUTER,
                                    CK_TOKEN,  CK_ROUTER, CK_TOKEN, CK_OTHER, CK_TOKEN};
    if (i < 10)
        return (enum con_kind) top[i];
    return i % 10 == 0 ? CK_ROUTER : i % 10 >= 8 ? CK_OTHER : CK_TOKEN;
}

/* token_near returns a token index close in popularity to contract index i. */
static uint32_t token_near(uint32_t i)
{
    static const uint8_t top_tokens[5] = {1, 2, 5, 7, 9};

    if (contract_kind(i) == CK_TOKEN)
        return i;
    if (i < 10)
        return top_tokens[i % 5];
    i = i - i % 10 + 1 + i % 7; /* a token of the same decade */
    return i < CONTRACT_POOL ? i : i - 10;
}

/* A few real function selectors with their usual number of ABI words, the contract kinds they
 * are called on, whether they are payable, and their weight. */
static const struct selector {
    uint8_t sel[4];
    int words;
    int weight;
    unsigned kinds; /* CK() mask */
    int payable;
} selectors[] = {
    {{0xa9, 0x05, 0x9c, 0xbb}, 2, 30, CK(CK_TOKEN) | CK(CK_WETH) | CK(CK_OTHER), 0}, /* transfer */
    {{0x09, 0x5e, 0xa7, 0xb3}, 2, 12, CK(CK_TOKEN) | CK(CK_WETH) | CK(CK_OTHER), 0}, /* approve */
    {{0x23, 0xb8, 0x72, 0xdd}, 3, 6, CK(CK_TOKEN) | CK(CK_OTHER), 0}, /* transferFrom */
    {{0x35, 0x93, 0x56, 0x4c}, 8, 14, CK(CK_ROUTER), 1}, /* execute(bytes,bytes[],uint256) */
    {{0x7f, 0xf3, 0x6a, 0xb5}, 5, 5, CK(CK_ROUTER), 1},  /* swapExactETHForTokens */
    {{0x38, 0xed, 0x17, 0x39}, 5, 5, CK(CK_ROUTER), 0},  /* swapExactTokensForTokens */
    {{0x18, 0xcb, 0xaf, 0xe5}, 5, 4, CK(CK_ROUTER), 0},  /* swapExactTokensForETH */
    {{0xd0, 0xe3, 0x0d, 0xb0}, 0, 4, CK(CK_WETH) | CK(CK_OTHER), 1}, /* deposit() */
    {{0x2e, 0x1a, 0x7d, 0x4d}, 1, 4, CK(CK_WETH) | CK(CK_OTHER), 0}, /* withdraw(uint256) */
    {{0x5a, 0xe4, 0x01, 0xdc},
     8,
     6,
     CK(CK_ROUTER) | CK(CK_OTHER),
     1}, /* multicall(uint256,bytes[]) */
    {{0xac, 0x96, 0x50, 0xd8}, 6, 5, CK(CK_ROUTER) | CK(CK_OTHER), 1}, /* multicall(bytes[]) */
    {{0x12, 0x8a, 0xcb, 0x08}, 4, 5, CK(CK_OTHER), 0}, /* swap(address,bool,int256,uint160,bytes) */
};

#define N_SELECTORS       (sizeof(selectors) / sizeof(selectors[0]))
#define SEL_TRANSFER      0
#define SEL_APPROVE       1
#define SEL_TRANSFER_FROM 2
#define SEL_DEPOSIT       7

/* selector_payable: whether the function selected by input's first four bytes is payable. */
static int selector_payable(const uint8_t *input)
{
    for (size_t i = 0; i < N_SELECTORS; i++)
        if (memcmp(input, selectors[i].sel, 4) == 0)
            return selectors[i].payable;
    return 0;
}

/*
 * The anomaly kinds: label, share of all labels (--anomaly-rate is split by these), and the
 * --help text with the source each is modelled on. Events of a kind start with probability
 * rate * share / (mean labelled transactions per event), see chain_new.
 */
static const struct anomaly_kind {
    const char *name;
    double share;
    const char *help; /* lines separated by '\n' */
} kinds[TX_ANOMALY_KINDS] = {
    [TX_NORMAL] = {"", 0.0, ""},
    [TX_HUGE_VALUE] = {"huge_value", 0.15,
                       "an ordinary account sends 100..1000x its own median transfer; half of\n"
                       "them are also 10k..1M ETH"},
    [TX_GAS_PRICE_SPIKE] = {"gas_price_spike", 0.15, "gas price 5000..50000 gwei"},
    [TX_GAS_LIMIT_OUTLIER] = {"gas_limit_outlier", 0.15,
                              "contract call with gas 8M..30M, or 21001..21999"},
    [TX_ADDRESS_BURST] =
        {"address_burst", 0.15,
         "20..40 transactions from one fresh address (nonces from 0) in one block"},
    [TX_ADDRESS_POISONING] =
        {"address_poisoning", 0.15,
         "minutes after a victim paid a counterparty, a fresh lookalike address\n"
         "(the same first 4-5 and last 4-5 hex digits) sends the victim dust ETH,\n"
         "or a fresh address calls transferFrom(victim, lookalike, 0) on a\n"
         "popular token; 1..4 victims per attacker. Source: Tsuchiya et al.,\n"
         "\"Blockchain Address Poisoning\", USENIX Security 2025"},
    [TX_DRAINER_SWEEP] = {"drainer_sweep", 0.125,
                          "3..12 accounts with history, about a minute apart, each empty their\n"
                          "wallet into one fresh drainer in a burst of consecutive nonces: 0..2\n"
                          "token approve/transfer calls naming the drainer, then 20..200x their\n"
                          "own median in ETH (a transfer, or a payable claim() on a drainer\n"
                          "contract); an EOA drainer sends 20% to the service's fee address and\n"
                          "the rest to a fresh payout. Source: ScamSniffer's 2023 report on\n"
                          "wallet drainers; Group-IB, \"Inferno Drainer\" (2024)"},
    [TX_PEEL_CHAIN] = {"peel_chain", 0.125,
                       "100..5000 ETH hop through 3..10 fresh addresses, each peeling 2..12% off\n"
                       "to an exchange or a deposit address and forwarding the rest minus gas\n"
                       "to the next within minutes. Source: SlowMist, \"What is Peel Chain\"\n"
                       "(2022, the Bitfinex funds); Scorechain, \"Peel chain\" (2022)"},
};

/* chain_anomaly_name maps a kind to its label; unknown kinds give "". */
const char *chain_anomaly_name(enum tx_anomaly a)
{
    if ((unsigned) a >= TX_ANOMALY_KINDS)
        return "";
    return kinds[a].name;
}

/* chain_kinds_help formats the kinds table for --help once, into static storage. */
const char *chain_kinds_help(void)
{
    static char buf[4096];
    size_t n = 0;

    if (buf[0] != '\0')
        return buf;
    for (int k = TX_NORMAL + 1; k < TX_ANOMALY_KINDS; k++) {
        const char *h = kinds[k].help;
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "  %-18s %4.1f%%  ", kinds[k].name,
                               100.0 * kinds[k].share);
        for (; *h && n + 32 < sizeof(buf); h++) {
            buf[n++] = *h;
            if (*h == '\n')
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%28s", "");
        }
        buf[n++] = '\n';
        buf[n] = '\0';
    }
    return buf;
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

/* normal returns a standard normal draw (Box-Muller; two uniforms, one value). */
static double normal(struct txg_rng *r)
{
    double u1 = 1.0 - rng_unit(r); /* (0, 1] */
    double u2 = rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* bounded_normal returns the sum of four uniforms scaled to mean 0 and variance 1 (Irwin-Hall):
 * close to normal in the body, bounded at ±2*sqrt(3) = ±3.46, and cheap (no transcendental). */
static double bounded_normal(struct txg_rng *r)
{
    double s = rng_unit(r) + rng_unit(r) + rng_unit(r) + rng_unit(r);
    return (s - 2.0) * 1.7320508075688772; /* var(sum of 4) = 1/3 */
}

/*
 * wei_from_log10 turns x = log10(amount in wei) (0 <= x < 30) into an exact wei amount. With
 * probability round_share the amount has 1..3 significant digits (0.25 ETH, 1.5 ETH), otherwise
 * 4..19 digits; digits past the 15th come from the integer PRNG.
 */
static u128 wei_from_log10(struct txg_rng *r, double x, double round_share)
{
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

/* wei_log_uniform draws an exact wei amount whose log10 is uniform in [lo10, hi10). */
static u128 wei_log_uniform(struct txg_rng *r, double lo10, double hi10, double round_share)
{
    return wei_from_log10(r, rng_uniform(r, lo10, hi10), round_share);
}

/* random_address fills addr with a fresh random address. */
static void random_address(struct txg_rng *r, uint8_t addr[20])
{
    rng_bytes(r, addr, 20);
}

/* derived_address fills out with the n-th address that belongs to owner's circle (its cold
 * wallet, its deposit address at an exchange): a hash of the owner's address, no stored state
 * and no draw from the stream. */
static void derived_address(const uint8_t owner[20], unsigned n, uint8_t out[20])
{
    uint64_t s = 0, w[3];

    for (int i = 0; i < 20; i++)
        s = s * 131 + owner[i];
    s ^= (uint64_t) (n + 1) * 0xD6E8FEB86659FD93ULL;
    for (int i = 0; i < 3; i++)
        w[i] = cw_splitmix64(&s);
    memcpy(out, w, 20);
}

/* zipf_index returns an index in [0, n) with P(i) close to 1/(i+1.5) / ln(n+1): the first
 * few are very popular; ln_n1 = log(n+1). */
static uint32_t zipf_index(struct txg_rng *r, uint32_t n, double ln_n1)
{
    uint32_t i = (uint32_t) (exp(rng_unit(r) * ln_n1) - 1.0);
    return i < n ? i : n - 1;
}

/* skewed_index returns an index in [0, n) (n >= 1), small ones more often (P(0) = 1/sqrt(n)). */
static uint32_t skewed_index(struct txg_rng *r, uint32_t n)
{
    double u = rng_unit(r);
    return (uint32_t) ((double) n * u * u);
}

/* weight_level returns the sampler level of a weight w >= 1: floor(log2 w). */
static unsigned weight_level(uint32_t w)
{
    return 31u - (unsigned) __builtin_clz(w);
}

/* sampler_set gives slot i the activity weight w (>= 1), moving it between levels. */
static void sampler_set(struct chain *c, uint32_t i, uint32_t w)
{
    struct account *a = &c->acct[i];
    unsigned lv;

    if (a->weight > 0) {
        lv = weight_level(a->weight);
        uint32_t last = c->level[lv][--c->level_n[lv]];
        c->level[lv][a->level_pos] = last;
        c->acct[last].level_pos = a->level_pos;
        c->level_sum[lv] -= a->weight;
        c->weight_total -= a->weight;
    }
    lv = weight_level(w);
    if (lv > c->top_level)
        c->top_level = lv;
    a->weight = w;
    a->level_pos = c->level_n[lv];
    c->level[lv][c->level_n[lv]++] = i;
    c->level_sum[lv] += w;
    c->weight_total += w;
}

/*
 * sample_account draws a slot with probability proportional to its activity weight, in O(1)
 * expected time: a level is chosen by its total weight (a scan over the level sums, from the
 * heaviest), then a member uniformly, accepted with probability w / 2^(level+1) (at least 1/2)
 * and redrawn within the level otherwise, which makes the choice inside a level proportional
 * to w. Updates are O(1) (swap-remove), unlike an alias table's.
 */
static uint32_t sample_account(struct chain *c)
{
    struct txg_rng *r = &c->rng;
    uint64_t t = rng_below(r, c->weight_total);
    unsigned lv = c->top_level;

    while (t >= c->level_sum[lv]) {
        t -= c->level_sum[lv];
        lv--;
    }
    for (;;) {
        uint32_t i = c->level[lv][rng_below(r, c->level_n[lv])];
        if ((rng_next(r) >> (63 - lv)) < c->acct[i].weight)
            return i;
    }
}

/* ordinary_slot returns a uniformly chosen retail / trader / whale slot other than self. */
static uint32_t ordinary_slot(struct chain *c, uint32_t self)
{
    uint32_t i = N_SPECIAL + (uint32_t) rng_below(&c->rng, c->n_acct - N_SPECIAL);
    if (i == self)
        i = i + 1 < c->n_acct ? i + 1 : N_SPECIAL;
    return i;
}

/* is_ordinary: retail wallets, traders and whales (the accounts attacks pick as victims). */
static int is_ordinary(const struct account *a)
{
    return a->kind == AK_RETAIL || a->kind == AK_TRADER || a->kind == AK_WHALE;
}

/* ordinary_sender draws an ordinary account with history (nonce > 0) by activity rate: the
 * victim of a drainer, the sender of a huge value. After 16 misses, any ordinary slot. */
static uint32_t ordinary_sender(struct chain *c)
{
    for (int t = 0; t < 16; t++) {
        uint32_t i = sample_account(c);
        if (is_ordinary(&c->acct[i]) && c->acct[i].nonce > 0)
            return i;
    }
    return ordinary_slot(c, UINT32_MAX);
}

/* counterparty_ref draws one favourite recipient for an account of habits h in slot self. */
static uint16_t counterparty_ref(struct chain *c, const struct kind_habits *h, uint32_t self,
                                 unsigned n)
{
    double u = rng_unit(&c->rng);

    if (u < h->fav_exchange)
        return (uint16_t) zipf_index(&c->rng, N_EXCHANGES, c->ln_exchanges);
    if (u < h->fav_exchange + h->fav_external || c->n_acct <= N_SPECIAL + 1)
        return (uint16_t) (FAV_EXTERNAL | n);
    return (uint16_t) ordinary_slot(c, self);
}

/* account_init gives slot i its kind, nonce and habits, and its weight in the sender sampler.
 * log_value < 0 means "draw the value scale from the kind's range". */
static void account_init(struct chain *c, uint32_t i, enum acct_kind kind, uint64_t nonce,
                         double log_value)
{
    struct txg_rng *r = &c->rng;
    struct account *a = &c->acct[i];
    const struct kind_habits *h = &habits[kind];
    uint32_t w;

    a->kind = (uint8_t) kind;
    a->nonce = nonce;
    a->log_value =
        (float) (log_value >= 0 ? log_value : LOG10_ETH + rng_uniform(r, h->value_lo, h->value_hi));
    a->sigma = (float) rng_uniform(r, h->sigma_lo, h->sigma_hi);
    a->p_call = (float) rng_uniform(r, h->call_lo, h->call_hi);
    a->p_new = (float) rng_uniform(r, h->new_lo, h->new_hi);
    a->tip_mult = (float) exp(h->tip_mu + h->tip_sigma * normal(r));
    a->legacy = rng_unit(r) < (kind == AK_EXCHANGE ? 0.3 : 0.1);
    a->n_eoa = (uint8_t) rng_range(r, (uint64_t) h->eoa_lo, (uint64_t) h->eoa_hi);
    for (unsigned j = 0; j < a->n_eoa; j++)
        a->fav_eoa[j] = counterparty_ref(c, h, i, j);
    a->n_con = (uint8_t) rng_range(r, (uint64_t) h->con_lo, (uint64_t) h->con_hi);
    for (unsigned j = 0; j < a->n_con; j++) {
        if (kind == AK_BOT && j > 0)
            a->fav_con[j] = (uint16_t) rng_range(r, BOT_OWN_FROM, CONTRACT_POOL - 1);
        else
            a->fav_con[j] = (uint16_t) zipf_index(r, CONTRACT_POOL, c->ln_contracts);
    }
    w = (uint32_t) (h->rate * exp(h->rate_sigma * normal(r)) * RATE_SCALE) + 1;
    sampler_set(c, i, w);
}

/* pool_add makes addr a new account funded with about 10^funded10 wei: a new slot while the
 * pool has room, else a random ordinary slot other than keep is retired and reused. */
static void pool_add(struct chain *c, const uint8_t addr[20], double funded10, uint32_t keep)
{
    struct txg_rng *r = &c->rng;
    uint32_t i;
    double lv;

    if (c->n_acct < POOL_MAX)
        i = c->n_acct++;
    else
        i = ordinary_slot(c, keep);
    memcpy(c->acct[i].addr, addr, 20);
    lv = funded10 - rng_uniform(r, 0.2, 0.8);
    if (lv < 15.7)
        lv = 15.7;
    if (lv > 19.5)
        lv = 19.5;
    account_init(c, i, rng_unit(r) < 0.1 ? AK_TRADER : AK_RETAIL, 0, lv);
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
        c->tip_gwei *= 1.0 + rng_uniform(r, -0.03, 0.03);
        if (c->tip_gwei < TIP_MIN)
            c->tip_gwei = 2 * TIP_MIN - c->tip_gwei;
        if (c->tip_gwei > TIP_MAX)
            c->tip_gwei = 2 * TIP_MAX - c->tip_gwei;
    }
    c->base_fee = (uint64_t) (c->base_fee_gwei * (double) GWEI);
    rng_bytes(r, c->block_hash, sizeof(c->block_hash));
    c->block_txs = rng_range(r, BLOCK_TXS_MIN, BLOCK_TXS_MAX);
    c->block_idx = 0;
    c->block_gas = 0;
}

/* chain_new seeds the stream and builds the account pool and the contracts. */
struct chain *chain_new(const struct chain_config *cfg, char *errbuf, size_t errlen)
{
    struct chain *c = calloc(1, sizeof(*c));

    int ok = c != NULL;

    if (ok)
        c->acct = calloc(POOL_MAX, sizeof(*c->acct));
    ok = ok && c->acct;
    for (int i = 0; ok && i < SAMPLER_LEVELS; i++)
        ok = (c->level[i] = malloc(POOL_MAX * sizeof(uint32_t))) != NULL;
    if (!ok) {
        chain_free(c);
        strncpy(errbuf, "out of memory", errlen - 1);
        errbuf[errlen - 1] = '\0';
        return NULL;
    }
    rng_seed(&c->rng, cfg->seed);
    for (int k = TX_NORMAL + 1; k < TX_ANOMALY_KINDS; k++) {
        double len = 1.0; /* mean labelled transactions per event */
        if (k == TX_ADDRESS_BURST)
            len = (BURST_MIN + BURST_MAX) / 2.0;
        else if (k == TX_ADDRESS_POISONING)
            len = (1 + POISON_MAX) / 2.0;
        else if (k == TX_DRAINER_SWEEP)
            len = (DRAIN_MIN + DRAIN_MAX) / 2.0 * (1.0 + DRAIN_TOKENS / 2.0) +
                  2.0 * (1.0 - DRAIN_CLAIM);
        else if (k == TX_PEEL_CHAIN)
            len = 2.0 * (PEEL_MIN + PEEL_MAX) / 2.0;
        c->cut[k] = c->cut[k - 1] + cfg->anomaly_rate * kinds[k].share / len;
    }
    c->next_due = UINT64_MAX;
    c->block_number = cfg->start_block;
    c->timestamp = CHAIN_GENESIS_TIME;
    c->base_fee_gwei = BASE_FEE_START;
    c->tip_gwei = TIP_START;
    c->ln_contracts = log(CONTRACT_POOL + 1.0);
    c->ln_exchanges = log(N_EXCHANGES + 1.0);

    /* addresses first, so favourites can point at any account of the starting pool */
    c->n_acct = POOL_START;
    for (uint32_t i = 0; i < POOL_START; i++)
        random_address(&c->rng, c->acct[i].addr);
    for (uint32_t i = 0; i < POOL_START; i++) {
        enum acct_kind k = i < N_EXCHANGES                        ? AK_EXCHANGE
                           : i < N_SPECIAL                        ? AK_BOT
                           : i < N_SPECIAL + N_WHALES             ? AK_WHALE
                           : i < N_SPECIAL + N_WHALES + N_TRADERS ? AK_TRADER
                                                                  : AK_RETAIL;
        const struct kind_habits *h = &habits[k];
        uint64_t nonce =
            (uint64_t) log_uniform(&c->rng, (double) h->nonce_lo, (double) h->nonce_hi) - 1;
        account_init(c, i, k, nonce, -1.0);
    }
    for (int i = 0; i < CONTRACT_POOL; i++)
        random_address(&c->rng, c->contracts[i]);
    random_address(&c->rng, c->drainer_fee);
    return c;
}

/* chain_free releases the chain. */
void chain_free(struct chain *c)
{
    if (!c)
        return;
    for (int i = 0; i < SAMPLER_LEVELS; i++)
        free(c->level[i]);
    free(c->acct);
    free(c);
}

/* set_fees fills type, gas price and (type 2) fee caps for a sender with the given tip habit;
 * spike_wei > 0 forces an absurd price. */
static void set_fees(struct chain *c, struct tx *tx, double tip_mult, int legacy,
                     uint64_t spike_wei)
{
    struct txg_rng *r = &c->rng;
    double tip_gwei = c->tip_gwei * tip_mult * exp(rng_uniform(r, -0.6, 0.6));
    uint64_t tip;

    if (tip_gwei < 0.001)
        tip_gwei = 0.001;
    if (tip_gwei > 200.0)
        tip_gwei = 200.0;
    tip = (uint64_t) (tip_gwei * (double) GWEI);
    tx->type = rng_unit(r) < (legacy ? 0.9 : 0.03) ? 0 : 2;
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

/* account_fees: set_fees with the account's own tip habit and wallet type. */
static void account_fees(struct chain *c, struct tx *tx, const struct account *a)
{
    set_fees(c, tx, a->tip_mult, a->legacy, 0);
}

/* value_log10 draws log10(wei) of one transfer of account a around its own scale. */
static double value_log10(struct chain *c, const struct account *a)
{
    struct txg_rng *r = &c->rng;
    double x = a->log_value + a->sigma * bounded_normal(r) / M_LN10;

    if (rng_unit(r) < BIG_MOVE_SHARE)
        x += log10(rng_uniform(r, 5.0, 25.0));
    if (x > VALUE_CAP10)
        x = VALUE_CAP10 - rng_uniform(r, 0.0, 0.3);
    if (x < VALUE_FLOOR10)
        x = VALUE_FLOOR10;
    return x;
}

/* abi_word writes one 32-byte ABI word: an address, an amount or a small integer. */
static void abi_word(struct chain *c, uint8_t *w)
{
    struct txg_rng *r = &c->rng;
    uint64_t kind = rng_below(r, 3);

    memset(w, 0, 32);
    if (kind == 0) {
        if (rng_unit(r) < 0.5)
            memcpy(w + 12, c->acct[rng_below(r, c->n_acct)].addr, 20);
        else
            memcpy(w + 12, c->contracts[rng_below(r, CONTRACT_POOL)], 20);
    } else if (kind == 1) {
        int n = (int) rng_range(r, 6, 14);
        rng_bytes(r, w + 32 - n, (size_t) n);
    } else {
        w[31] = (uint8_t) (rng_below(r, 8) * 32);
    }
}

/* set_calldata writes selector s (or, when s is NULL, one drawn by weight among those called
 * on contracts of kind k) plus its ABI words into tx->input. */
static void set_calldata(struct chain *c, struct tx *tx, const struct selector *s, enum con_kind k)
{
    int total = 0, pick, words;

    if (!s) {
        s = &selectors[0];
        for (size_t i = 0; i < N_SELECTORS; i++)
            if (selectors[i].kinds & CK(k))
                total += selectors[i].weight;
        pick = (int) rng_below(&c->rng, (uint64_t) total);
        for (size_t i = 0; i < N_SELECTORS; i++) {
            if (!(selectors[i].kinds & CK(k)))
                continue;
            if (pick < selectors[i].weight) {
                s = &selectors[i];
                break;
            }
            pick -= selectors[i].weight;
        }
    }
    memcpy(tx->input, s->sel, 4);
    words = s->words;
    tx->input_len = 4 + 32 * (size_t) words;
    for (int i = 0; i < words; i++)
        abi_word(c, tx->input + 4 + 32 * i);
}

/* start_tx fills the sender fields of a transaction from account a (and takes its nonce). */
static void start_tx(struct tx *tx, struct account *a)
{
    memcpy(tx->from, a->addr, 20);
    tx->nonce = a->nonce++;
}

/* adopt makes pool slot ref a favourite recipient of a (appended, or replacing one). */
static void adopt(struct chain *c, struct account *a, uint32_t ref)
{
    if (rng_unit(&c->rng) >= P_ADOPT)
        return;
    if (a->n_eoa < FAV_EOA_MAX)
        a->fav_eoa[a->n_eoa++] = (uint16_t) ref;
    else
        a->fav_eoa[rng_below(&c->rng, FAV_EOA_MAX)] = (uint16_t) ref;
}

/*
 * recipient picks the recipient of a transfer (or token transfer) of 10^x wei from account a
 * in slot self. Exchanges withdraw to fresh addresses (some become pool accounts) and to pool
 * accounts; everybody else mostly pays a favourite and sometimes somebody new. may_fund = 0
 * keeps the pool as it is (for labelled transactions).
 */
static void recipient(struct chain *c, struct account *a, uint32_t self, double x, int may_fund,
                      uint8_t to[20])
{
    struct txg_rng *r = &c->rng;
    double u;
    uint32_t j;

    if (a->kind == AK_EXCHANGE) {
        u = rng_unit(r);
        if (u < 0.55) {
            random_address(r, to);
            if (may_fund && rng_unit(r) < P_FUND_EXCH)
                pool_add(c, to, x, self);
            return;
        }
        if (u < 0.95) {
            memcpy(to, c->acct[ordinary_slot(c, self)].addr, 20);
            return;
        }
    } else if (a->n_eoa == 0 || rng_unit(r) < a->p_new) {
        u = rng_unit(r);
        if (u < 0.45) {
            random_address(r, to);
            if (may_fund && rng_unit(r) < P_FUND_OTHER)
                pool_add(c, to, x, self);
            return;
        }
        j = u < 0.8 ? ordinary_slot(c, self) : zipf_index(r, N_EXCHANGES, c->ln_exchanges);
        memcpy(to, c->acct[j].addr, 20);
        adopt(c, a, j);
        return;
    }
    if (a->n_eoa == 0) {
        derived_address(a->addr, 0, to);
        return;
    }
    j = a->fav_eoa[skewed_index(r, a->n_eoa)];
    if (j & FAV_EXTERNAL)
        derived_address(a->addr, j & ~FAV_EXTERNAL, to);
    else
        memcpy(to, c->acct[j].addr, 20);
}

/* make_transfer fills a plain ETH transfer of about 10^x wei from account a in slot self. */
static void make_transfer(struct chain *c, struct tx *tx, struct account *a, uint32_t self,
                          double x, int may_fund)
{
    start_tx(tx, a);
    recipient(c, a, self, x, may_fund, tx->to);
    tx->value = wei_from_log10(&c->rng, x, habits[a->kind].round_share);
    tx->gas = TRANSFER_GAS;
    tx->gas_used = TRANSFER_GAS;
    tx->input_len = 0;
}

/* call_target picks the index of the contract account a calls: mostly a favourite, else by
 * popularity. */
static uint32_t call_target(struct chain *c, const struct account *a)
{
    struct txg_rng *r = &c->rng;

    if (a->n_con > 0 && rng_unit(r) < 0.85)
        return a->fav_con[skewed_index(r, a->n_con)];
    return zipf_index(r, CONTRACT_POOL, c->ln_contracts);
}

/*
 * make_call fills a contract call from account a in slot self, shaped by the contract's kind
 * (see contract_kind): a payable function carries ETH with the account's call_value
 * probability (deposit() always), the others never. Exchanges' calls are token withdrawals
 * (transfer(address,uint256) on a token, to a recipient picked like a withdrawal's).
 */
static void make_call(struct chain *c, struct tx *tx, struct account *a, uint32_t self,
                      int may_fund)
{
    struct txg_rng *r = &c->rng;
    const struct kind_habits *h = &habits[a->kind];
    uint32_t j = call_target(c, a);
    enum con_kind k;

    start_tx(tx, a);
    if (a->kind == AK_EXCHANGE)
        j = token_near(j);
    /* a bot's own contract (past BOT_OWN_FROM) is called its own way, whatever the index */
    k = a->kind == AK_BOT && j >= BOT_OWN_FROM ? CK_OTHER : contract_kind(j);
    memcpy(tx->to, c->contracts[j], 20);
    if (a->kind == AK_BOT)
        tx->gas = (uint64_t) log_uniform(r, 150000.0, 800000.0);
    else
        tx->gas = (uint64_t) log_uniform(r, 50000.0, 1000000.0);
    tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.4, 0.98));
    if (a->kind == AK_EXCHANGE) {
        set_calldata(c, tx, &selectors[SEL_TRANSFER], k);
        recipient(c, a, self, value_log10(c, a), may_fund, tx->input + 4 + 12);
    } else {
        set_calldata(c, tx, NULL, k);
    }
    tx->value = 0;
    if (memcmp(tx->input, selectors[SEL_DEPOSIT].sel, 4) == 0 ||
        (tx->input_len >= 4 && selector_payable(tx->input) && rng_unit(r) < h->call_value))
        tx->value = wei_from_log10(r, value_log10(c, a) - 0.3, h->round_share);
}

/* make_create fills a contract creation from account a: no recipient, init code as input. */
static void make_create(struct chain *c, struct tx *tx, struct account *a)
{
    static const uint8_t prologue[] = {0x60, 0x80, 0x60, 0x40, 0x52};
    struct txg_rng *r = &c->rng;
    size_t n = (size_t) rng_range(r, 100, TX_INPUT_MAX - sizeof(prologue));

    start_tx(tx, a);
    tx->is_create = 1;
    random_address(r, tx->contract_address);
    tx->value = rng_unit(r) < 0.95 ? 0 : wei_log_uniform(r, 15.0, 18.0, 0.8);
    tx->gas = (uint64_t) log_uniform(r, 500000.0, 5000000.0);
    tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.6, 0.95));
    memcpy(tx->input, prologue, sizeof(prologue));
    rng_bytes(r, tx->input + sizeof(prologue), n);
    tx->input_len = sizeof(prologue) + n;
}

/* make_normal draws the sender by rate, then what it does by its habits. */
static void make_normal(struct chain *c, struct tx *tx)
{
    uint32_t i = sample_account(c);
    struct account *a = &c->acct[i];
    double u = rng_unit(&c->rng);

    if (u < habits[a->kind].p_create)
        make_create(c, tx, a);
    else if (u < habits[a->kind].p_create + a->p_call)
        make_call(c, tx, a, i, 1);
    else
        make_transfer(c, tx, a, i, value_log10(c, a), 1);
    account_fees(c, tx, a);
    if (!tx->is_create && tx->input_len == 0 && is_ordinary(a)) {
        struct recent_transfer *t = &c->recent[c->recent_next];
        memcpy(t->victim, tx->from, 20);
        memcpy(t->counterparty, tx->to, 20);
        c->recent_next = (c->recent_next + 1) % RECENT_MAX;
        if (c->recent_n < RECENT_MAX)
            c->recent_n++;
    }
}

/* make_single_anomaly fills one labelled transaction of kind k (huge_value, gas_price_spike
 * or gas_limit_outlier). */
static void make_single_anomaly(struct chain *c, struct tx *tx, enum tx_anomaly k)
{
    struct txg_rng *r = &c->rng;
    uint32_t i = k == TX_HUGE_VALUE ? ordinary_sender(c) : sample_account(c);
    struct account *a = &c->acct[i];
    double x;

    tx->anomaly = k;
    switch (k) {
    case TX_HUGE_VALUE:
        /* far above its own scale; half the time an absolute 10k..1M ETH as well */
        x = a->log_value + rng_uniform(r, 2.0, 3.0);
        if (rng_unit(r) < 0.5)
            x = fmax(x, rng_uniform(r, 22.0, 24.0));
        make_transfer(c, tx, a, i, fmin(x, 24.0), 0);
        account_fees(c, tx, a);
        break;
    case TX_GAS_PRICE_SPIKE:
        if (rng_unit(r) < 0.5)
            make_transfer(c, tx, a, i, value_log10(c, a), 0);
        else
            make_call(c, tx, a, i, 0);
        set_fees(c, tx, a->tip_mult, a->legacy,
                 (uint64_t) (log_uniform(r, 5000.0, 50000.0) * (double) GWEI));
        break;
    default: /* TX_GAS_LIMIT_OUTLIER */
        make_call(c, tx, a, i, 0);
        if (rng_unit(r) < 0.8) {
            tx->gas = rng_range(r, 8000000, 30000000);
            tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.02, 0.3));
        } else {
            tx->gas = rng_range(r, TRANSFER_GAS + 1, 21999);
            tx->gas_used = tx->gas;
        }
        account_fees(c, tx, a);
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
    set_fees(c, tx, 1.0, 0, 0);
    c->burst.left--;
}

/* blocks_later returns the stream position about lo..hi blocks (of BLOCK_TXS_MEAN) from now. */
static uint64_t blocks_later(struct chain *c, unsigned lo, unsigned hi)
{
    return c->seq + rng_range(&c->rng, lo, hi) * BLOCK_TXS_MEAN +
           rng_below(&c->rng, BLOCK_TXS_MEAN);
}

/* plain_transfer_shape sets gas, gas used and input of a plain ETH transfer. */
static void plain_transfer_shape(struct tx *tx)
{
    tx->gas = TRANSFER_GAS;
    tx->gas_used = TRANSFER_GAS;
    tx->input_len = 0;
}

/* gas_cost returns what tx's gas costs its sender (gas used * effective price), in wei. */
static u128 gas_cost(const struct tx *tx)
{
    return (u128) tx->gas_used * tx->gas_price;
}

/* lookalike fills out with a fresh address that keeps the first `head` and last `tail` hex
 * digits of model and is random in between, as vanity generators for poisoning make them. */
static void lookalike(struct txg_rng *r, const uint8_t model[20], unsigned head, unsigned tail,
                      uint8_t out[20])
{
    random_address(r, out);
    for (unsigned n = 0; n < 40; n++) {
        unsigned shift = n % 2 == 0 ? 4 : 0; /* even digit: high nibble */
        if (n < head || n >= 40 - tail)
            out[n / 2] =
                (uint8_t) ((out[n / 2] & ~(0xF << shift)) | (model[n / 2] & (0xF << shift)));
    }
}

/*
 * poison_step: one poisoning transaction against target j. The tiny-transfer variant comes
 * from a fresh lookalike of the counterparty the victim paid, so the lookalike shows up in the
 * victim's history; the zero-value variant has the campaign's fresh operator address call
 * transferFrom(victim, lookalike, 0) on a popular token, which makes the token log a transfer
 * from the victim to the lookalike (anyone may move zero tokens on someone's behalf).
 */
static void poison_step(struct chain *c, struct campaign *k, struct tx *tx)
{
    struct txg_rng *r = &c->rng;
    const struct recent_transfer *t = &k->target[k->step];
    uint8_t fake[20];

    lookalike(r, t->counterparty, (unsigned) rng_range(r, 4, 5), (unsigned) rng_range(r, 4, 5),
              fake);
    if (!k->variant) {
        memcpy(tx->from, fake, 20);
        tx->nonce = 0;
        memcpy(tx->to, t->victim, 20);
        tx->value = wei_log_uniform(r, 11.0, 14.0, 0.5); /* 1e-7 .. 1e-4 ETH */
        plain_transfer_shape(tx);
    } else {
        memcpy(tx->from, k->addr, 20);
        tx->nonce = k->nonce++;
        memcpy(tx->to, c->contracts[token_near(zipf_index(r, 8, log(9.0)))], 20);
        tx->value = 0;
        memcpy(tx->input, selectors[SEL_TRANSFER_FROM].sel, 4);
        memset(tx->input + 4, 0, 96);
        memcpy(tx->input + 4 + 12, t->victim, 20);
        memcpy(tx->input + 36 + 12, fake, 20);
        tx->input_len = 4 + 96;
        tx->gas = rng_range(r, 60000, 90000);
        tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.5, 0.7));
    }
    set_fees(c, tx, rng_uniform(r, 0.5, 1.0), 0, 0); /* attackers pay as little as they can */
    k->due = blocks_later(c, 0, 3);
}

/* drain_victim picks an ordinary account with history that this wave has not swept yet. */
static uint32_t drain_victim(struct chain *c, const struct campaign *k)
{
    uint32_t i = 0;

    for (int t = 0; t < 32; t++) {
        unsigned j = 0;
        i = t < 16 ? ordinary_sender(c) : ordinary_slot(c, UINT32_MAX);
        while (j < k->step && k->victim[j] != i)
            j++;
        if (j == k->step)
            break;
    }
    return i;
}

/*
 * drain_step: the next transaction of a drainer wave; returns 1 when it ends a step. A victim
 * (steps < the number of victims) empties its wallet in a burst of consecutive nonces within
 * a block or two: 0..DRAIN_TOKENS token transactions on contracts it uses (approve(drainer,
 * unlimited) or transfer(drainer, amount)), then ETH of 20..200x its own median, by a plain
 * transfer or a payable claim() on the drainer contract, with its own tip habit. The next
 * victim follows about a minute later (exponential, mean 5 blocks, at most 25). An EOA
 * drainer then forwards the haul: 20% to the drainer service's fee address, the rest (minus
 * gas) to a fresh payout.
 */
static int drain_step(struct chain *c, struct campaign *k, struct tx *tx, unsigned victims)
{
    static const uint8_t claim[4] = {0x4e, 0x71, 0xd9, 0x2d}; /* claim() */
    struct txg_rng *r = &c->rng;

    if (k->step < victims) {
        uint32_t i;
        struct account *a;

        if (k->sub == 0) { /* a new victim */
            k->victim[k->step] = drain_victim(c, k);
            k->sub = 1 + (unsigned) rng_range(r, 0, DRAIN_TOKENS);
        }
        i = k->victim[k->step];
        a = &c->acct[i];
        start_tx(tx, a);
        if (--k->sub > 0) { /* a token: approve or transfer to the drainer */
            memcpy(tx->to, c->contracts[token_near(call_target(c, a))], 20);
            tx->value = 0;
            memcpy(tx->input, selectors[rng_unit(r) < 0.5 ? SEL_APPROVE : SEL_TRANSFER].sel, 4);
            memset(tx->input + 4, 0, 64);
            memcpy(tx->input + 4 + 12, k->addr, 20);
            if (memcmp(tx->input, selectors[SEL_APPROVE].sel, 4) == 0)
                memset(tx->input + 36, 0xff, 32);
            else
                rng_bytes(r, tx->input + 36 + 20, 12);
            tx->input_len = 4 + 64;
            tx->gas = rng_range(r, 46000, 70000);
            tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.6, 0.9));
            account_fees(c, tx, a);
            k->due = c->seq + 1 + rng_below(r, BLOCK_TXS_MEAN / 2);
            return 0;
        }
        memcpy(tx->to, k->addr, 20);
        tx->value = wei_from_log10(r, a->log_value + rng_uniform(r, 1.3, 2.3), 0.1);
        if (k->variant) {
            memcpy(tx->input, claim, 4);
            tx->input_len = 4;
            tx->gas = rng_range(r, 50000, 120000);
            tx->gas_used = (uint64_t) ((double) tx->gas * rng_uniform(r, 0.5, 0.9));
        } else {
            plain_transfer_shape(tx);
        }
        account_fees(c, tx, a);
        k->amount += tx->value;
        k->due =
            c->seq + 1 + (uint64_t) (fmin(-log(1.0 - rng_unit(r)) * 5.0, 25.0) * BLOCK_TXS_MEAN);
        return 1;
    }
    memcpy(tx->from, k->addr, 20);
    tx->nonce = k->nonce++;
    plain_transfer_shape(tx);
    set_fees(c, tx, 1.5, 0, 0);
    if (k->step == victims) {
        memcpy(tx->to, c->drainer_fee, 20);
        tx->value = k->amount / 5;
    } else {
        random_address(r, tx->to);
        tx->value = k->amount - gas_cost(tx);
    }
    k->amount -= tx->value + gas_cost(tx);
    k->due = blocks_later(c, 0, 2);
    return 1;
}

/*
 * peel_step: the next transaction of a peel chain. Even steps peel 2..12% of what the current
 * holder has off to an exchange hot wallet or a fresh deposit address; odd steps forward the
 * rest, minus this transaction's gas, to a fresh address, which becomes the holder and acts
 * 1..8 blocks later. Each holder ends with exactly nothing.
 */
static void peel_step(struct chain *c, struct campaign *k, struct tx *tx)
{
    struct txg_rng *r = &c->rng;

    memcpy(tx->from, k->addr, 20);
    tx->nonce = k->nonce++;
    plain_transfer_shape(tx);
    set_fees(c, tx, 1.0, 0, 0);
    if (k->step % 2 == 0) {
        double x = log10((double) k->amount) + log10(rng_uniform(r, 0.02, 0.12));
        if (rng_unit(r) < 0.5)
            memcpy(tx->to, c->acct[zipf_index(r, N_EXCHANGES, c->ln_exchanges)].addr, 20);
        else
            random_address(r, tx->to);
        tx->value = wei_from_log10(r, x, 0.6);
        k->amount -= tx->value + gas_cost(tx);
        k->due = blocks_later(c, 0, 2);
    } else {
        random_address(r, tx->to);
        tx->value = k->amount - gas_cost(tx);
        memcpy(k->addr, tx->to, 20);
        k->nonce = 0;
        k->amount = tx->value;
        k->due = blocks_later(c, 1, 8);
    }
}

/* campaign_start sets up an attack of kind kind in a free slot; without one (or, for
 * poisoning, without a recent transfer to target) the attack is skipped. Its first step is
 * due later; this transaction stays normal. */
static void campaign_start(struct chain *c, enum tx_anomaly kind)
{
    struct txg_rng *r = &c->rng;
    struct campaign *k = NULL;

    for (int i = 0; i < CAMPAIGNS_MAX && !k; i++)
        if (c->camp[i].kind == TX_NORMAL)
            k = &c->camp[i];
    if (!k || (kind == TX_ADDRESS_POISONING && c->recent_n == 0))
        return;
    memset(k, 0, sizeof(*k));
    k->kind = kind;
    random_address(r, k->addr);
    if (kind == TX_ADDRESS_POISONING) {
        uint32_t first = (uint32_t) rng_below(r, c->recent_n);
        k->steps = (unsigned) rng_range(r, 1, POISON_MAX);
        if (k->steps > c->recent_n)
            k->steps = c->recent_n;
        for (unsigned j = 0; j < k->steps; j++)
            k->target[j] = c->recent[(first + j) % c->recent_n];
        k->variant = rng_unit(r) < 0.4;
        k->due = blocks_later(c, 0, 7);
    } else if (kind == TX_DRAINER_SWEEP) {
        k->variant = rng_unit(r) < DRAIN_CLAIM;
        k->steps = (unsigned) rng_range(r, DRAIN_MIN, DRAIN_MAX);
        if (!k->variant)
            k->steps += 2;
        k->due = blocks_later(c, 0, 2);
    } else { /* TX_PEEL_CHAIN */
        k->steps = 2 * (unsigned) rng_range(r, PEEL_MIN, PEEL_MAX);
        k->amount = wei_log_uniform(r, 20.0, 21.7, 0.3); /* 100 .. 5000 ETH */
        k->due = blocks_later(c, 0, 5);
    }
    if (k->due < c->next_due)
        c->next_due = k->due;
}

/* campaign_next_step emits the earliest due step of any campaign (ties: lowest slot), frees
 * the slot after its last step and recomputes next_due. */
static void campaign_next_step(struct chain *c, struct tx *tx)
{
    struct campaign *k = NULL;
    int done = 1;

    for (int i = 0; i < CAMPAIGNS_MAX; i++)
        if (c->camp[i].kind != TX_NORMAL && (!k || c->camp[i].due < k->due))
            k = &c->camp[i];
    tx->anomaly = k->kind;
    if (k->kind == TX_ADDRESS_POISONING)
        poison_step(c, k, tx);
    else if (k->kind == TX_DRAINER_SWEEP)
        done = drain_step(c, k, tx, k->variant ? k->steps : k->steps - 2);
    else
        peel_step(c, k, tx);
    if (done && ++k->step == k->steps)
        k->kind = TX_NORMAL;
    c->next_due = UINT64_MAX;
    for (int i = 0; i < CAMPAIGNS_MAX; i++)
        if (c->camp[i].kind != TX_NORMAL && c->camp[i].due < c->next_due)
            c->next_due = c->camp[i].due;
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

    if (c->burst.left > 0 && rng_below(r, remaining) < c->burst.left) {
        make_burst_tx(c, tx);
    } else if (c->seq >= c->next_due) {
        campaign_next_step(c, tx);
    } else {
        int k = TX_NORMAL + 1;
        u = rng_unit(r);
        while (k < TX_ANOMALY_KINDS && u >= c->cut[k])
            k++;
        if (k <= TX_GAS_LIMIT_OUTLIER) {
            make_single_anomaly(c, tx, (enum tx_anomaly) k);
        } else if (k == TX_ADDRESS_BURST && c->burst.left == 0) {
            random_address(r, c->burst.addr);
            c->burst.nonce = 0;
            c->burst.left = rng_range(r, BURST_MIN, BURST_MAX);
            if (c->burst.left > remaining)
                c->block_txs = c->block_idx + c->burst.left;
            make_burst_tx(c, tx);
        } else {
            if (k > TX_ADDRESS_BURST && k < TX_ANOMALY_KINDS) {
                campaign_start(c, (enum tx_anomaly) k);
            } else if (u - c->cut[TX_ANOMALY_KINDS - 1] < P_NEWCOMER) {
                /* funded where a transaction list does not show it: a bridge, a contract's
                 * internal transfer, a block reward */
                uint8_t fresh[20];
                random_address(r, fresh);
                pool_add(c, fresh, rng_uniform(r, 16.5, 19.5), UINT32_MAX);
            }
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
    c->seq++;
}
