/* pii_address.c — street addresses: "<number> <name words> <street type>" with unit
 * and "City, ST 12345" tails, European one-word street names with the number after
 * them ("Koskikatu 25"), unit and box numbers, military addresses. Woken by each short
 * number the digit extractor finds (pii_extract.c).
 */
#include <emmintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii_internal.h"

static const char *const ctx_addr[] = {"address", "live", "lives",  "located", "ship",
                                       "deliver", "meet", "corner", "at",      NULL};

/* Street address ending in a suffix word ("1755 Nelson Mandela Drive"): walks back
 * over up to four words to a house number, then forward over an optional unit and
 * ", City, ST 12345". */
static void x_address(scan_ctx_t *c, size_t to)
{
    size_t sfx = to;
    while (sfx > 0 && is_alpha(at(c, sfx - 1)))
        sfx--;
    if (sfx == 0 || at(c, sfx - 1) != ' ') return;
    size_t k = sfx - 1; /* at the space before the suffix */
    int words = 0;
    size_t st = 0;
    bool found = false;
    while (words <= 4 && k > 0) {
        size_t e = k;
        while (k > 0 && at(c, k - 1) != ' ' && at(c, k - 1) != '\n' && e - k < 30)
            k--;
        size_t w = k;
        bool num = e > w;
        for (size_t j = w; j < e; j++)
            num &= is_digit(at(c, j)) || (j == e - 1 && is_alpha(at(c, j)));
        if (num && is_digit(at(c, w)) && e - w <= 6) {
            st = w;
            found = words >= 1;
            break;
        }
        bool word = e > w;
        for (size_t j = w; j < e; j++)
            word &= is_alpha(at(c, j)) || at(c, j) >= 0x80 || at(c, j) == '.' || at(c, j) == '\'';
        if (!word || k == 0 || at(c, k - 1) != ' ') return;
        words++;
        k--;
    }
    if (!found || (st > 0 && is_alnum(at(c, st - 1)))) return;
    size_t en = to;
    if (at(c, en) == '.') en++;
    /* Unit: ", Apt 5" " Suite 501" " #12" */
    size_t u = en;
    if (at(c, u) == ',') u++;
    if (at(c, u) == ' ') u++;
    static const char *const units[] = {"apt", "apartment", "suite", "ste",  "unit",
                                        "#",   "floor",     "fl",    "room", NULL};
    for (int i = 0; units[i]; i++) {
        size_t l = strlen(units[i]), j = 0;
        while (j < l && (at(c, u + j) | 0x20) == (unsigned char)units[i][j])
            j++;
        if (j < l) continue;
        size_t v = u + l;
        if (at(c, v) == '.') v++;
        if (at(c, v) == ' ') v++;
        size_t d = v;
        while (is_alnum(at(c, v)) && v - d < 6)
            v++;
        if (v > d && is_digit(at(c, d))) en = v;
        break;
    }
    /* ", City, ST 12345" on the same line */
    size_t ci = en;
    if (at(c, ci) == ',' && at(c, ci + 1) == ' ' && is_upper(at(c, ci + 2))) {
        size_t v = ci + 2;
        int w = 0;
        while (w < 3 && is_upper(at(c, v))) {
            while (is_alpha(at(c, v)) || at(c, v) >= 0x80)
                v++;
            w++;
            if (at(c, v) == ' ' && is_upper(at(c, v + 1)))
                v++;
            else
                break;
        }
        size_t city_end = v;
        if (at(c, v) == ',') v++;
        if (at(c, v) == ' ') v++;
        if (is_upper(at(c, v)) && is_upper(at(c, v + 1)) && !is_alpha(at(c, v + 2))) {
            v += 2;
            if (at(c, v) == ' ') v++;
            size_t z = v;
            while (is_digit(at(c, v)) && v - z < 5)
                v++;
            en = v - z == 5 && !is_digit(at(c, v)) ? v : z - 1;
            if (en < city_end) en = city_end;
        } else {
            en = city_end;
        }
    }
    float score = 0.7f + (pii_ctx_has(c, st, en, 40, 0, ctx_addr) ? 0.2f : 0.0f);
    pii_cand_add(c, PII_STREET_ADDRESS, score, st, en);
}

/* European street names with the suffix inside the word ("Koskikatu 25"); en is the
 * end of the house number that follows the name. */
static void x_address_eu(scan_ctx_t *c, size_t en)
{
    size_t num = en;
    while (num > 0 && is_digit(at(c, num - 1)))
        num--;
    if (num < 2) return;
    size_t st = num - 1;
    while (st > 0 && (is_alpha(at(c, st - 1)) || at(c, st - 1) >= 0x80 || at(c, st - 1) == '-'))
        st--;
    if (!is_upper(at(c, st)) && at(c, st) < 0x80) return;
    if (en - num == 4 && (at(c, num) == '1' || at(c, num) == '2')) return; /* a year */
    pii_cand_add(c, PII_STREET_ADDRESS, 0.75f, st, en);
}

/* Street-type words that end a street name ("Drive", "St."). */
static const char *const street_sfx[] = {
    "street",  "st",      "avenue",  "ave",     "road",   "rd",       "boulevard",
    "blvd",    "lane",    "ln",      "drive",   "dr",     "court",    "ct",
    "place",   "pl",      "way",     "terrace", "square", "sq",       "highway",
    "hwy",     "parkway", "pkwy",    "circle",  "cir",    "trail",    "crescent",
    "close",   "grove",   "gardens", "alley",   "plaza",  "crossing", "streets",
    "squares", "route",   "row",     "walk",    "mews",   NULL};
/* Endings of street names written as one word ("Koskikatu", "Auerstrasse"). */
static const char *const street_eu[] = {
    "strasse", "straße", "gasse", "katu", "tie",   "vej",   "gata",  "gatan", "weg",   "laan",
    "straat",  "vägen",  "väg",   "utca", "ulica", "allee", "platz", "vegen", "veien", NULL};

/* A house number at [st, en): looks for "<number> <1..5 words> <suffix>" forward and
 * "<Word ending in -katu/-strasse...> <number>" backward. */
void pii_address_number(scan_ctx_t *c, size_t st, size_t en)
{
    /* Unit or box before the number: "Apt. 595", "Suite 501", "PSC 0413, Box 8144",
     * "APO AA 42323". */
    static const char *const unit_words[] = {"apt",  "apartment", "suite",   "ste",
                                             "unit", "room",      "floor",   "fl",
                                             "box",  "psc",       "postbox", NULL};
    size_t b = st;
    while (b > 0 && (at(c, b - 1) == ' ' || at(c, b - 1) == '#') && st - b < 3)
        b--;
    if (b > 0 && at(c, b - 1) == '.') b--;
    size_t we = b;
    while (b > 0 && is_alpha(at(c, b - 1)))
        b--;
    if (we > b && b < st && (b == 0 || !is_alnum(at(c, b - 1)))) {
        if (pii_word_in(c->t + b, we - b, unit_words, true)) {
            pii_cand_add(c, PII_STREET_ADDRESS, 0.6f, b, en);
            return;
        }
        /* military: (APO|FPO|DPO) (AA|AE|AP) 12345 */
        if (we - b == 2 && b >= 4 && at(c, b - 1) == ' ' && en - st == 5) {
            size_t m = b - 4;
            char x = (char)fold(at(c, m));
            if ((x == 'a' || x == 'f' || x == 'd') && fold(at(c, m + 1)) == 'p' &&
                fold(at(c, m + 2)) == 'o' && (m == 0 || !is_alnum(at(c, m - 1)))) {
                pii_cand_add(c, PII_STREET_ADDRESS, 0.7f, m, en);
                return;
            }
        }
    }
    size_t k = en;
    for (int w = 0; w < 6 && at(c, k) == ' '; w++) {
        size_t ws = ++k;
        while (k < c->len && (is_alpha(at(c, k)) || at(c, k) >= 0x80 || at(c, k) == '\'' ||
                              at(c, k) == '-' || (at(c, k) == '.' && k > ws)))
            k++;
        if (k == ws) {
            /* "<number> <name words> <number>": building and street number around a
             * street name ("28245 Puruntie 82", "3482 Via Franscini 71"). */
            size_t d = k;
            while (is_digit(at(c, k)) && k - d < 6)
                k++;
            if (w >= 1 && w <= 3 && k - d >= 1 && k - d <= 4 && !is_alnum(at(c, k)) &&
                at(c, k) != '%' && at(c, k) != ':' &&
                !(at(c, k) == '.' && is_digit(at(c, k + 1)))) {
                unsigned char w0 = at(c, en + 1);
                bool named = is_upper(w0) || w0 >= 0x80 || en - st >= 4;
                size_t w0e = en + 1;
                while (w0e < c->len && at(c, w0e) != ' ')
                    w0e++;
                uint8_t fl = pii_names_lookup(&c->s->names, c->t + en + 1, w0e - en - 1);
                if (named && !(fl & PII_NAME_STOP) && !pii_month_len(c, en + 1) &&
                    w0e - en - 1 >= 3)
                    pii_cand_add(c, PII_STREET_ADDRESS, 0.65f, st, k);
            }
            break;
        }
        size_t we2 = k;
        while (we2 > ws && at(c, we2 - 1) == '.')
            we2--;
        if (w > 0 && pii_word_in(c->t + ws, we2 - ws, street_sfx, true)) {
            x_address(c, we2);
            return;
        }
    }
    if (st >= 2 && at(c, st - 1) == ' ') {
        size_t e = st - 1, b2 = e;
        while (b2 > 0 && (is_alpha(at(c, b2 - 1)) || at(c, b2 - 1) >= 0x80 || at(c, b2 - 1) == '-'))
            b2--;
        if (e - b2 >= 5 && pii_word_in(c->t + b2, e - b2, street_eu, false)) x_address_eu(c, en);
    }
}
