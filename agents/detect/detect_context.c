/*  detect_context - stage 2: novelty of the context a point ends (kind context).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  In the spirit of the Contextual Anomaly Detector (contextOSE, an entry of the
 *  Numenta Anomaly Benchmark): a series is read as a sentence of coarse symbols,
 *  and a point is anomalous when the context it ends is one the series has not
 *  shown before - whatever the value itself.  Per series:
 *
 *  - a learned range [lo, hi]: the extremes of the current block of
 *    S_RANGE_BLOCK points and of the block before, so the range stands still
 *    while a series is steady (a level's bounds do not drift under its values)
 *    and one old spike stops squeezing every later value into one level after
 *    two blocks;
 *  - the value's level: its place in the range cut into `context.levels` equal
 *    bins; a value outside the range (before the range grows to take it in) is
 *    new by definition: its contexts are counted as new and not stored, so its
 *    score is set by how often this series leaves its range; one more than a
 *    level beyond it changes what every level means, and the table is dropped
 *    and learned again (a few times while a series starts, then only on a jump);
 *  - the contexts of the point: the suffixes of length 1..`context.length` of
 *    the recent levels, the longer ones also carrying the direction of the last
 *    step (up, flat, down, with a dead zone of half a level), so "rising through
 *    level 3" and "falling through level 3" are different contexts;
 *  - a bounded table of `context.slots` contexts seen (in 4 bytes each: an
 *    18-bit fingerprint, the context's length and an 11-bit count; open
 *    addressing over a short probe run); when the run is full the least counted
 *    context in it gives way, and when a count saturates every count is halved,
 *    so what was common long ago ages out.
 *
 *  Score.  The contexts nest: a suffix never seen makes every longer one unseen,
 *  so the novelty of a point is m, how many of its `length` suffixes are unseen
 *  (m = length: even the level alone is new); m / length is contextOSE's
 *  "fraction of novel sub-contexts".  How surprising novelty that deep is on
 *  this series comes from Good and Turing's estimate of the chance that the next
 *  context of length k is one not seen before: P_k = (contexts of length k that
 *  were new when seen and not seen since) / (contexts of length k seen),
 *  smoothed as (that + 1/2) / (seen + 1); evicted contexts stay counted, so a
 *  table too small for a series shows as novelty that is not surprising.  With
 *  k the shortest unseen suffix, score = (m / length) (1 - P_k); a point whose
 *  every suffix was seen scores 0.  So a new context scores high only on a
 *  series that rarely shows new ones: while a series is learned nearly every
 *  context is new and scores little; on a steady series a new level scores about
 *  1 - (how often the series left its range), a new pattern of known levels a
 *  fraction of that.  (The product ranked NAB's anomalies better than either
 *  factor alone: 64.4 against 61.0 for the fraction and 52.4 for 1 - P_k, NAB
 *  standard profile, developer half.)

 *  Memory: 4 bytes per slot plus 128 (640 bytes at the defaults, 8 x 3 x 128).
 *  Cost: `length` lookups of at most S_PROBE slots per point.  No floating point
 *  beyond a handful of operations, so it is about as fast as ewma.
 */
#include "detect.h"
#include "log.h"

#include <math.h>
#include <string.h>

#define S_MAX_LENGTH      8             //  context.length range 1..8
#define S_MAX_LEVELS      64            //  context.levels range 2..64
#define S_MIN_SLOTS       16
#define S_MAX_SLOTS       176           //  keeps the state, with detect.c's, within 1 KiB
#define S_PROBE           8             //  slots looked at per context
#define S_RANGE_BLOCK     2048          //  the range forgets after 2 to 4 blocks
#define S_DEAD_ZONE       0.5           //  of a level: smaller steps are "flat"

//  A table entry: fingerprint (18 bits) | length - 1 (3 bits) | count (11 bits).
#define S_COUNT_BITS      11
#define S_COUNT_MAX       ((1u << S_COUNT_BITS) - 1)
#define S_KEY(e)          ((e) >> S_COUNT_BITS)
#define S_COUNT(e)        ((e) & S_COUNT_MAX)
#define S_LENGTH(e)       (((e) >> S_COUNT_BITS & 7) + 1)

typedef struct {
    double lo, hi;                      //  the extremes of this block of points
    double last_lo, last_hi;            //  and of the block before
    double prev;                        //  the previous value
    uint32_t seen[S_MAX_LENGTH];        //  seen[k-1]: sum of the counts of length k
    uint32_t once[S_MAX_LENGTH];        //  once[k-1]: of them, new when seen and not seen since
    uint32_t n;                         //  points seen (saturates)
    uint32_t block;                     //  points in this block
    uint8_t recent[S_MAX_LENGTH];       //  levels, most recent first
    uint8_t len;                        //  valid entries in recent
    uint8_t pad[3];
    uint32_t table[];                   //  entries as above; 0 = empty
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (cfg->context.levels < 2 || cfg->context.levels > S_MAX_LEVELS) {
        mesh_err ("detect: context.levels %d is out of range, expected 2..%d",
                  cfg->context.levels, S_MAX_LEVELS);
        return -1;
    }
    if (cfg->context.length < 1 || cfg->context.length > S_MAX_LENGTH) {
        mesh_err ("detect: context.length %d is out of range, expected 1..%d",
                  cfg->context.length, S_MAX_LENGTH);
        return -1;
    }
    if (cfg->context.slots < S_MIN_SLOTS || cfg->context.slots > S_MAX_SLOTS) {
        mesh_err ("detect: context.slots %d is out of range, expected %d..%d",
                  cfg->context.slots, S_MIN_SLOTS, S_MAX_SLOTS);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t) + (size_t) cfg->context.slots * sizeof (uint32_t);
}

//  The level of VALUE in [lo, hi] cut into LEVELS bins; LEVELS when outside.
//  Halves first, so that no difference overflows.
static int
s_level (double value, double lo, double hi, int levels)
{
    double width = hi / 2 - lo / 2;
    double offset = value / 2 - lo / 2;
    if (offset < 0 || offset > width)
        return levels;
    if (!(width > 0))
        return levels / 2;
    int level = (int) (offset / (width / levels));
    return level < 0 ? 0 : level >= levels ? levels - 1 : level;
}

//  The key (fingerprint and length, never 0) of the suffix of length K of RECENT;
//  the longer suffixes carry DIR.
static uint32_t
s_key (const uint8_t *recent, int k, int dir)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t) k;
    for (int i = 0; i < k; i++)
        h = (h ^ recent[i]) * 0x100000001B3ull;
    h = (h ^ (uint64_t) (k > 1 ? dir + 1 : 3)) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 32;
    uint32_t fingerprint = (uint32_t) (h & 0x3FFFF);
    if (!fingerprint)
        fingerprint = 1;
    return fingerprint << 3 | (uint32_t) (k - 1);
}

//  Age every count: halved, a context seen stays at least 1.  SEEN is halved too,
//  and so are the singletons no longer in the table (ONCE counts contexts that
//  were new when seen, the evicted ones included).
static void
s_age (s_state_t *state, uint32_t slots)
{
    uint32_t before[S_MAX_LENGTH] = { 0 }, after[S_MAX_LENGTH] = { 0 };
    for (uint32_t j = 0; j < slots; j++) {
        uint32_t e = state->table[j];
        if (!e)
            continue;
        uint32_t count = (S_COUNT (e) + 1) / 2;
        state->table[j] = (e & ~S_COUNT_MAX) | count;
        before[S_LENGTH (e) - 1] += S_COUNT (e) == 1;
        after[S_LENGTH (e) - 1] += count == 1;
    }
    for (int k = 0; k < S_MAX_LENGTH; k++) {
        uint32_t gone = state->once[k] > before[k] ? state->once[k] - before[k] : 0;
        state->once[k] = gone / 2 + after[k];
        state->seen[k] /= 2;
    }
}

//  Count KEY in the table; returns true if it was there before.
static bool
s_learn (s_state_t *state, uint32_t slots, uint32_t key)
{
    uint32_t *table = state->table;
    int k = (int) (key & 7) + 1;
    uint32_t start = (uint32_t) (((uint64_t) (key >> 3) * slots) >> 18);
    uint32_t victim = start, victim_count = UINT32_MAX;
    for (uint32_t p = 0; p < S_PROBE; p++) {
        uint32_t i = (start + p) % slots;
        uint32_t e = table[i];
        if (e == 0 || S_KEY (e) == key) {
            if (e == 0) {
                //  Never deleted, only replaced: an empty slot ends the run.
                table[i] = key << S_COUNT_BITS | 1;
                state->seen[k - 1]++;
                state->once[k - 1]++;
                return false;
            }
            if (S_COUNT (e) == S_COUNT_MAX) {
                s_age (state, slots);
                e = table[i];
            }
            table[i] = e + 1;
            state->seen[k - 1]++;
            if (S_COUNT (e) == 1 && state->once[k - 1] > 0)
                state->once[k - 1]--;
            return true;
        }
        if (S_COUNT (e) < victim_count) {
            victim_count = S_COUNT (e);
            victim = i;
        }
    }
    //  The run is full: the least counted context in it gives way (its counts stay
    //  in SEEN and ONCE: the series did show it, and forgetting it is our doing).
    table[victim] = key << S_COUNT_BITS | 1;
    state->seen[k - 1]++;
    state->once[k - 1]++;
    return false;
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n_, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    int levels = cfg->context.levels;
    int length = cfg->context.length;
    uint32_t slots = (uint32_t) cfg->context.slots;

    if (state->n == 0)
        state->lo = state->hi = state->last_lo = state->last_hi = state->prev = value;
    double lo = fmin (state->lo, state->last_lo), hi = fmax (state->hi, state->last_hi);
    int level = s_level (value, lo, hi, levels);
    //  Direction of the last step, with a dead zone of half a level (halves: no
    //  overflow).
    double half_bin = (hi / 2 - lo / 2) / levels;
    double half_step = value / 2 - state->prev / 2;
    int dir = half_step > S_DEAD_ZONE * half_bin ? 1
            : half_step < -S_DEAD_ZONE * half_bin ? -1 : 0;

    //  Shift the level in.
    memmove (state->recent + 1, state->recent, S_MAX_LENGTH - 1);
    state->recent[0] = (uint8_t) level;
    if (state->len < S_MAX_LENGTH)
        state->len++;

    //  The shortest unseen suffix, before this point is learned (Good-Turing
    //  needs the counts as they were).  Then every suffix is learned.
    int suffixes = state->len < length ? state->len : length;
    int shortest = 0;
    uint32_t keys[S_MAX_LENGTH];
    double p_novel[S_MAX_LENGTH];
    for (int k = 1; k <= suffixes; k++) {
        keys[k - 1] = s_key (state->recent, k, dir);
        p_novel[k - 1] = (state->once[k - 1] + 0.5) / (state->seen[k - 1] + 1.0);
    }
    for (int k = 1; k <= suffixes; k++) {
        if (level >= levels) {
            //  Beyond the range: new by definition, counted, not stored (the
            //  range takes the value in, so the symbol means nothing later).
            state->seen[k - 1]++;
            state->once[k - 1]++;
            if (!shortest)
                shortest = k;
        }
        else
        if (!s_learn (state, slots, keys[k - 1]) && !shortest)
            shortest = k;
    }

    double score = 0;
    if (shortest && state->n > 0) {
        double p = p_novel[shortest - 1];
        p = p > 1 ? 1 : p;
        //  contextOSE's fraction of novel sub-contexts, times how rare novelty
        //  that deep is on this series.
        double fraction = (double) (length - shortest + 1) / length;
        score = fraction * (1 - p);
        base->surprise = fraction * -log10 (p);
    }
    if (state->n < UINT32_MAX)
        state->n++;

    //  A value more than a level beyond the range changes what the levels mean:
    //  what was learned is dropped and learned again on the new range.  (While
    //  a series starts this happens a few times; later only on a real jump,
    //  which has just been scored.)
    double half_width = hi / 2 - lo / 2;
    double half_out = fmax (lo / 2 - value / 2, value / 2 - hi / 2);
    if (half_out > half_width / levels) {
        memset (state->table, 0, slots * sizeof (uint32_t));
        memset (state->seen, 0, sizeof state->seen);
        memset (state->once, 0, sizeof state->once);
        state->len = 0;
    }
    //  The range: the extremes of this block and the one before.
    state->lo = fmin (state->lo, value);
    state->hi = fmax (state->hi, value);
    if (++state->block >= S_RANGE_BLOCK) {
        state->last_lo = state->lo;
        state->last_hi = state->hi;
        state->lo = state->hi = value;
        state->block = 0;
    }
    state->prev = value;

    base->mean = lo / 2 + hi / 2;
    base->stddev = (hi / 2 - lo / 2) / levels * 2;
    if (!isfinite (base->stddev))
        base->stddev = 0;
    base->z = 0;                        //  no z for a symbol; the score says it
    return score;
}

const mesh_detect_family_t mesh_detect_context = {
    .name = "context", .check = s_check, .state_size = s_state_size, .update = s_update
};
