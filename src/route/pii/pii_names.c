/* pii_names.c — person-name gazetteer (US Census 1990 first and last names).
 *
 * The lists (bytes the caller read: route/ does no I/O) are loaded once at scanner
 * construction into an open-addressing set of
 * 64-bit hashes (low byte: flags). A small built-in list of common English words
 * that are also census names ("Will", "May", "King") is stored in the same set with
 * PII_NAME_STOP so that one probe answers both questions. Lookups take the token as
 * it appears in the text and fold ASCII case; non-ASCII bytes are kept as they are.
 */
#include "route/pii/pii_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"

/* Capitalised words that are census names but far more often ordinary words, plus
 * words that start sentences or name places and organisations. */
/* clang-format off */
static const char *const stop_words[] = {
    "the", "a", "an", "and", "or", "but", "if", "then", "so", "for", "of", "in", "on", "at",
    "to", "by", "with", "from", "as", "is", "are", "was", "were", "be", "been", "am", "do",
    "did", "does", "has", "have", "had", "will", "would", "can", "could", "may", "might",
    "must", "shall", "should", "not", "no", "yes", "this", "that", "these", "those", "there",
    "here", "what", "when", "where", "who", "why", "how", "which", "he", "she", "it", "we",
    "they", "you", "i", "me", "him", "her", "his", "hers", "its", "our", "their", "your",
    "my", "mine", "us", "them", "all", "any", "some", "one", "two", "three", "each", "every",
    "many", "much", "more", "most", "few", "other", "such", "only", "own", "same", "than",
    "too", "very", "just", "now", "once", "upon", "time", "day", "night", "good", "well",
    "dear", "hi", "hello", "hey", "thanks", "thank", "please", "sorry", "oh", "ah", "mr",
    "mrs", "ms", "miss", "dr", "sir", "madam", "lord", "lady", "king", "queen", "prince",
    "princess", "duke", "saint", "st", "mom", "mum", "dad", "mother", "father", "sister",
    "brother", "uncle", "aunt", "grandma", "grandpa", "baby", "boy", "girl", "man", "woman",
    "little", "big", "young", "old", "long", "short", "love", "hope", "joy", "grace", "faith",
    "rose", "lily", "daisy", "ivy", "violet", "iris", "dawn", "summer", "autumn", "winter",
    "spring", "sun", "moon", "star", "sky", "rain", "snow", "storm", "river", "lake", "hill",
    "wood", "woods", "field", "fields", "stone", "rock", "green", "brown", "white", "black",
    "gray", "grey", "red", "blue", "gold", "silver", "bell", "hall", "church", "house",
    "home", "street", "st", "road", "avenue", "lane", "drive", "court", "place", "way", "park",
    "square", "bridge", "north", "south", "east", "west", "new", "january", "february",
    "march", "april", "june", "july", "august", "september", "october", "november",
    "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "christmas", "easter", "god", "jesus", "bank", "card", "account", "phone", "email",
    "name", "address", "office", "fax", "mobile", "desk", "date", "user", "bot", "apt",
    "suite", "unit", "box", "po", "mark", "bill", "will", "art", "chase", "grant", "price",
    "cash", "money",
    "major", "general", "captain", "sergeant", "doctor", "nurse", "judge", "pope", "bishop",
    "best", "better", "first", "last", "next", "after", "before", "again", "also", "still",
    "even", "ever", "never", "always", "about", "over", "under", "up", "down", "out", "off",
    "into", "through", "while", "because", "although", "though", "let", "see", "look", "come",
    "go", "get", "make", "take", "give", "keep", "help", "tell", "ask", "call", "write",
    "read", "play", "work", "stop", "start", "open", "close", "free", "happy", "sad", "new",
    "english", "french", "german", "american", "british", "european", "internet", "online",
    "mountain", "valley", "forest", "garden", "city", "town", "village", "country", "state",
    "united", "kingdom", "states", "republic", "university", "college", "school", "company",
    "inc", "ltd", "corp", "group", "service", "services", "customer", "team", "support",
    "manager", "director", "president", "minister", "member", "hospital", "center", "centre",
    "music", "song", "album", "film", "movie", "book", "story", "news", "weekly", "daily",
    "pop", "rock", "jazz", "blues", "soul", "guitar", "band", "fan", "fans", "number",
    "amazon", "apple", "google", "microsoft", "ford", "dell", "visa", "paypal", "tesla",
    "thou", "thee", "thy", "thine", "ye", "nay", "aye", "o", "alas", "sweet", "noble",
    "gentle", "fair", "poor", "pray", "hath", "doth", "art", "tis", "sun", "heaven", "death",
    "life", "man", "men", "women", "people", "friend", "friends", "mister", "master",
    "mistress", "servant", "citizen", "citizens", "messenger", "soldier", "soldiers", "else",
    "orchestra", "technologies", "technology", "associates", "investments", "finance",
    "power", "care", "act", "rights", "union", "parks", "terrace", "gateway", "pass", "port",
    "southern", "northern", "eastern", "western", "central", "family", "mystery", "comedy",
    "drama", "action", "answer", "question", "remember", "entertainment", "weekly", "devil",
    "guilty", "pleasures", "supposed", "hate", "civil", "credit", "health", "systems",
    "solutions", "partners", "holdings", "capital", "labs", "software", "media", "energy",
    "foundation", "institute", "association", "society", "club", "hotel", "restaurant",
    "airport", "station", "museum", "library", "cafe", "market", "mall", "plaza", "tower",
    "note", "notes", "summary", "subject", "warning", "error", "info", "tip", "example",
    "input", "output", "result", "status", "total", "step", "update", "source", "reason",
    "website", "royal", "border", "upper", "lower", "cite", "harbor", "harbour", "isle",
    "both", "either", "neither", "nor", "yet", "why", "wherefore", "whence", "hence", "well",
    "everyone", "everybody", "nobody", "someone", "somebody", "anyone", "anybody", "nothing",
    "something", "everything", "suddenly", "finally", "later", "soon", "together", "today",
    "okay", "ok", "wow", "yay", "oops", "hooray", "kids", "second", "third",
    "thus", "therefore", "whose", "whom", "since", "like", "unless", "maybe", "perhaps",
    "inside", "outside", "sure", "indeed", "besides", "lest", "however", "moreover",
    "furthermore", "meanwhile", "instead", "otherwise", "nevertheless", "nonetheless",
    "already", "almost", "anyway", "somehow", "sometimes", "often", "usually", "rather",
    "quite", "really", "actually", "certainly", "surely", "probably", "possibly", "simply",
    "merely", "welcome", "speak", "hear", "say", "said", "says", "told", "think", "thought",
    "know", "knew", "believe", "fear", "hold", "stay", "stand", "put", "made", "turn",
    "bring", "bid", "leave", "follow", "send", "show", "find", "found", "bear", "cry",
    "break", "draw", "run", "sit", "set", "seek", "fetch", "teach", "lend", "away", "back",
    "forth", "within", "without", "between", "among", "amongst", "against", "towards",
    "toward", "until", "unto", "whereas", "whereby", "wherein", "whereof", "whether",
    "whither", "whilst", "during", "despite", "beyond", "above", "below", "behind",
    "beside", "across", "along", "around", "near", "far", "none", "another", "several",
    "various", "true", "false", "right", "wrong", "great", "full", "ready", "quick", "amen",
    "methinks", "hast", "hadst", "didst", "dost", "canst", "wouldst", "shalt", "wilt",
    "ere", "oft", "anon", "forsooth", "prithee", "farewell", "adieu", "behold", "hark",
    "fie", "tush", "woe", "being", "having", "making", "come", "came", "went", "gone",
    "ai", "delta", "yen", "ay", "yea", "alack", "earth", "congress",
};
/* clang-format on */

/* Maps a token to its set key (low byte 0 for the flags). Tokens up to 16 bytes are
 * hashed as two words with ASCII case folded by OR 0x20 (which also folds a few
 * punctuation and UTF-8 bytes: harmless, census names are plain letters); longer ones
 * byte by byte. */
static uint64_t name_key(const char *s, size_t n)
{
    uint64_t h;
    if (n <= 16) {
        /* s[0, n) into two words, zero padded, by fixed-size loads of those bytes only
         * (a memcpy of n bytes is a library call) */
        uint64_t w[2] = {0, 0};
        if (n >= 8) {
            memcpy(&w[0], s, 8);
            if (n > 8) {
                memcpy(&w[1], s + n - 8, 8);
                w[1] >>= 8 * (16 - n);
            }
        } else if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, s, 4);
            memcpy(&b, s + n - 4, 4);
            w[0] = a | (uint64_t)b << (8 * (n - 4));
        } else {
            for (size_t i = 0; i < n; i++)
                w[0] |= (uint64_t)(unsigned char)s[i] << (8 * i);
        }
        uint64_t fold = 0x2020202020202020ull;
        uint64_t m0 = n >= 8 ? ~0ull : (1ull << (8 * n)) - 1;
        uint64_t m1 = n <= 8 ? 0 : n >= 16 ? ~0ull : (1ull << (8 * (n - 8))) - 1;
        h = hash_mix(((w[0] | fold) & m0) * 0x9E3779B97F4A7C15ull ^ ((w[1] | fold) & m1) ^
                     (uint64_t)n);
    } else {
        h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++)
            h = (h ^ ((unsigned char)s[i] | 0x20)) * 0x100000001b3ull;
        h = hash_mix(h);
    }
    h &= ~PII_NAME_INFO_MASK;
    return h ? h : PII_NAME_INFO_MASK + 1;
}

/* Adds flags (and rank buckets, PII_NAME_*_RANK bits: the better one is kept) for
 * token s to the set (no growth: the table is sized before loading). */
static void set_add(pii_names_t *g, const char *s, size_t n, uint32_t info)
{
    uint64_t k = name_key(s, n);
    size_t i = (size_t)(k >> PII_NAME_INFO_BITS) & g->mask;
    for (;;) {
        uint64_t e = g->slots[i];
        if (!e) {
            g->slots[i] = k | info;
            g->count++;
            return;
        }
        if ((e & ~PII_NAME_INFO_MASK) == k) {
            uint64_t x = e | (info & 0xff) | (info & ~0x3fffu);
            for (int sh = 8; sh <= 11; sh += 3) {
                unsigned old = (unsigned)(e >> sh) & 7, nw = (unsigned)(info >> sh) & 7;
                if (nw && (!old || nw < old)) x = (x & ~(7ull << sh)) | (uint64_t)nw << sh;
            }
            g->slots[i] = x;
            return;
        }
        i = (i + 1) & g->mask;
    }
}

uint32_t pii_names_info(const pii_names_t *g, const char *s, size_t n)
{
    if (!g->slots || n == 0 || n > 40) return 0;
    uint64_t k = name_key(s, n);
    size_t i = (size_t)(k >> PII_NAME_INFO_BITS) & g->mask;
    for (;;) {
        uint64_t e = g->slots[i];
        if (!e) return 0;
        if ((e & ~PII_NAME_INFO_MASK) == k) return (uint32_t)(e & PII_NAME_INFO_MASK);
        i = (i + 1) & g->mask;
    }
}

/* Returns the flags stored for token s, 0 when absent. */
uint8_t pii_names_lookup(const pii_names_t *g, const char *s, size_t n)
{
    if (!g->slots || n == 0 || n > 40) return 0;
    uint64_t k = name_key(s, n);
    size_t i = (size_t)(k >> PII_NAME_INFO_BITS) & g->mask;
    for (;;) {
        uint64_t e = g->slots[i];
        if (!e) return 0;
        if ((e & ~PII_NAME_INFO_MASK) == k) return (uint8_t)(e & 0xff);
        i = (i + 1) & g->mask;
    }
}

/* The labeller's word classes, stored in the same set: particles and list joiners,
 * street types and unit words, titles (folded, no dot). */
/* clang-format off */
static const char *const class_part[] = {"van", "von", "de", "der", "den", "da", "di", "del",
    "la", "le", "du", "bin", "ibn", "al", "el", "dos", "das", "ter", "ten", "y", "and", NULL};
static const char *const class_street[] = {
    "street", "st", "avenue", "ave", "road", "rd", "lane", "ln", "drive", "dr", "court", "ct",
    "way", "place", "pl", "boulevard", "blvd", "terrace", "close", "crescent", "parkway", "pkwy",
    "row", "highway", "hwy", "square", "sq", "circle", "cir", "trail", "alley", "plaza", "loop",
    "path", "pike", "apt", "apartment", "suite", "ste", "unit", "floor", "fl", "box", "po",
    "building", "bldg", "rue", "via", "calle", "strasse", "stra\xc3\x9f" "e", "gasse", "weg",
    "gata", "gatan", "vej", "katu", "tie", "estate", "mews", "grove", "gardens", "hill",
    "heights", "center", "route", "rte", "ul", "rua", "utca", "avenida", "strada", "chemin",
    NULL};
static const char *const class_title[] = {"mr", "mrs", "ms", "miss", "dr", "prof", "sir",
    "madam", "dame", "lord", "lady", "rev", "fr", "mx", "herr", "frau", "mme", "mlle", "sr",
    "sra", "dear", "hon", "capt", "officer", "agent", "judge", "senor", NULL};
/* clang-format on */

/* Context words for person names, stored in the same set with PII_CTX_* flags. */
/* clang-format off */
static const char *const ctx_strong[] = {
    "name", "names", "mr", "mrs", "ms", "miss", "dr", "dear", "hi", "hello", "hey", "named",
    "called", "call", "user", "sincerely", "regards", "signed", "attn", "cc", "speak", "contact",
    "said", "says", "asked", "told", "shouted", "replied", "whispered",
    "guardian", "beneficiary", NULL};
static const char *const ctx_weak[] = {
    "by", "with", "said", "says", "ask", "asked", "told", "meet", "met", "under", "partner",
    "wife", "husband", "son", "daughter", "kid", "child", "tribute", "starring", "directed",
    "producer", "commenter", "assistant", "add", "follow", "heard", "shouted", "at", "leave",
    NULL};
/* clang-format on */

/* Verbs that often follow a person's name as its subject. */
/* clang-format off */
static const char *const ctx_after_words[] = {
    "said", "says", "shouted", "asked", "replied", "told", "whispered", "answered", "lives",
    "lived", "spent", "began", "wrote", "explained", "smiled", "laughed", "nodded", "cried",
    "thinks", "thought", "wants", "wanted", "loves", "loved", "works", "worked", "joined",
    "married", "graduated", "studied", "founded", "resigned", "died", NULL};
/* clang-format on */

/* Words that make a lone given name identifying (PII_CTX_ID) and words for relatives
 * (PII_CTX_REL, identifying after "my"/"our"); context table only. */
/* clang-format off */
static const char *const ctx_id_words[] = {
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "attn", "cc", "contact", "regards",
    "sincerely", "signed", "cheers", "name", "names", "surname", "user", "customer",
    "client", "patient", "guardian", "beneficiary", "employee", "applicant", "tenant",
    "dear", NULL};
static const char *const ctx_rel_words[] = {
    "kid", "kids", "son", "daughter", "child", "wife", "husband", "partner", "boyfriend",
    "girlfriend", "fiance", "fiancee", "boss", "colleague", "coworker", "manager",
    "neighbour", "neighbor", "landlord", "doctor", "lawyer", "tenant", "ex", NULL};
/* clang-format on */

/* Last words that make a capitalised run an organisation or a place. */
/* clang-format off */
static const char *const org_place[] = {
    "inc", "ltd", "llc", "plc", "corp", "corporation", "company", "group", "research",
    "agency", "associates", "partners", "holdings", "technologies", "systems", "solutions",
    "orchestra", "force", "bank", "university", "institute", "foundation", "unlimited",
    "bay", "isle", "island", "harbor", "harbour", "hills", "beach", "park", "bypass",
    "turnpike", "street", "avenue", "road", "drive", "lane", "court", "place", "square",
    "river", "lake", "mountain", "valley", "springs", "city", "county", "act", NULL};
/* clang-format on */

uint8_t pii_names_lookup_hot(const pii_names_t *g, uint64_t *hot, const char *s, size_t n)
{
    return (uint8_t)pii_names_info_hot(g, hot, s, n);
}

uint32_t pii_names_info_hot(const pii_names_t *g, uint64_t *hot, const char *s, size_t n)
{
    if (!g->slots || n == 0 || n > 40) return 0;
    uint64_t k = name_key(s, n);
    uint64_t *e = &hot[(k >> PII_NAME_INFO_BITS) & ((1u << PII_HOT_BITS) - 1)];
    if ((*e & ~PII_NAME_INFO_MASK) == k) return (uint32_t)(*e & PII_NAME_INFO_MASK);
    size_t i = (size_t)(k >> PII_NAME_INFO_BITS) & g->mask;
    uint32_t f = 0;
    for (;;) {
        uint64_t x = g->slots[i];
        if (!x) break;
        if ((x & ~PII_NAME_INFO_MASK) == k) {
            f = (uint32_t)(x & PII_NAME_INFO_MASK);
            break;
        }
        i = (i + 1) & g->mask;
    }
    *e = k | f;
    return f;
}

/* Adds context flags for word s to the small context table (about 100 words in 256
 * slots, so a free slot is always found). */
static void ctx_add(pii_names_t *g, const char *s, uint8_t flags)
{
    size_t n = strlen(s);
    uint64_t k = pii_ctx_key(s, n);
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    uint64_t bit = 1ull << ((h >> 52) & 63);
    g->ctx_filter[h >> 58] |= bit;
    if (flags & PII_CTX_STRONG) g->ctx_filter_strong[h >> 58] |= bit;
    if (flags & (PII_CTX_STRONG | PII_CTX_WEAK)) g->ctx_filter_near[h >> 58] |= bit;
    if (flags & PII_CTX_AFTER) g->ctx_filter_after[h >> 58] |= bit;
    size_t i = (size_t)(h >> (64 - PII_CTX_BITS));
    for (;;) {
        pii_ctx_slot_t *e = &g->ctx[i];
        if (!e->len) {
            *e = (pii_ctx_slot_t){k, (uint8_t)n, flags};
            return;
        }
        if (e->key == k && e->len == n) {
            e->flags |= flags;
            return;
        }
        i = (i + 1) & (PII_CTX_SLOTS - 1);
    }
}

/* Reads one census list (NAME FREQ CUMFREQ RANK per line) from the bytes p[0, n) into
 * the set with flags; names ranked at most max_rank get PII_NAME_COMMON as well.
 * Returns 0, or SY_EPARSE with a message naming the list in err. */
static int load_list(pii_names_t *g, const char *p, size_t n, const char *what, uint8_t flags,
                     long max_rank, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < n) {
        const char *line = p + i;
        const char *nl = memchr(line, '\n', n - i);
        size_t ll = nl ? (size_t)(nl - line) : n - i;
        i += ll + (nl != NULL);
        size_t k = 0;
        while (k < ll && line[k] >= 'A' && line[k] <= 'Z')
            k++;
        if (k == 0) continue;
        /* the rank is the fourth field: skip two numbers, read the third */
        size_t q = k;
        long rank = -1;
        int field = 0;
        while (q < ll && line[q] == ' ') {
            while (q < ll && line[q] == ' ')
                q++;
            size_t d = q;
            long v = 0;
            bool dot = false;
            while (q < ll && ((line[q] >= '0' && line[q] <= '9') || (line[q] == '.' && !dot))) {
                dot |= line[q] == '.';
                if (!dot && v < 100000000) v = v * 10 + (line[q] - '0');
                q++;
            }
            if (q == d) break;
            if (++field == 3 && !dot) rank = v;
        }
        while (q < ll && (line[q] == ' ' || line[q] == '\r'))
            q++;
        if (k > 40 || field != 3 || rank < 0 || q != ll) {
            snprintf(err, errlen, "%s: malformed line '%.*s'", what, (int)(ll < 40 ? ll : 40),
                     line);
            return SY_EPARSE;
        }
        unsigned b = rank <= 100     ? 1
                     : rank <= 500   ? 2
                     : rank <= 2000  ? 3
                     : rank <= 8000  ? 4
                     : rank <= 30000 ? 5
                                     : 6;
        set_add(g, line, k,
                (uint32_t)(flags | (rank <= max_rank ? PII_NAME_COMMON : 0) |
                           b << (flags & PII_NAME_FIRST ? 8 : 11)));
    }
    return 0;
}

const char *const pii_census_files[PII_CENSUS_COUNT] = {
    "census1990_female_first.txt", "census1990_male_first.txt", "census1990_last.txt"};

/* Loads the three census lists from the caller's bytes. 0 or a negative error with
 * err filled. */
int pii_names_load(pii_names_t *g, const pii_census_t *c, char *err, size_t errlen)
{
    static const uint8_t flags[PII_CENSUS_COUNT] = {PII_NAME_FIRST, PII_NAME_FIRST, PII_NAME_LAST};
    static const long common[PII_CENSUS_COUNT] = {3000, 1219, 40000};
    memset(g, 0, sizeof *g);
    for (int i = 0; i < PII_CENSUS_COUNT; i++)
        if (!c->data[i] || !c->len[i]) {
            snprintf(err, errlen, "%s: empty or missing", pii_census_files[i]);
            return SY_EINVAL;
        }
    g->mask = (1u << 18) - 1; /* 262144 slots for ~95k names: load factor < 0.4 */
    g->slots = mem_calloc(g->mask + 1, sizeof *g->slots);
    int rc = 0;
    for (int i = 0; i < PII_CENSUS_COUNT && !rc; i++)
        rc = load_list(g, c->data[i], c->len[i], pii_census_files[i], flags[i], common[i], err,
                       errlen);
    if (rc) {
        pii_names_deinit(g);
        return rc;
    }
    for (size_t i = 0; i < sizeof stop_words / sizeof stop_words[0]; i++)
        set_add(g, stop_words[i], strlen(stop_words[i]), PII_NAME_STOP);
    for (int i = 0; ctx_strong[i]; i++) {
        set_add(g, ctx_strong[i], strlen(ctx_strong[i]), PII_CTX_STRONG);
        ctx_add(g, ctx_strong[i], PII_CTX_STRONG);
    }
    for (int i = 0; ctx_weak[i]; i++) {
        set_add(g, ctx_weak[i], strlen(ctx_weak[i]), PII_CTX_WEAK);
        ctx_add(g, ctx_weak[i], PII_CTX_WEAK);
    }
    for (int i = 0; ctx_after_words[i]; i++) {
        set_add(g, ctx_after_words[i], strlen(ctx_after_words[i]), PII_CTX_AFTER);
        ctx_add(g, ctx_after_words[i], PII_CTX_AFTER);
    }
    for (int i = 0; class_part[i]; i++)
        set_add(g, class_part[i], strlen(class_part[i]), PII_NAME_PART);
    for (int i = 0; class_street[i]; i++)
        set_add(g, class_street[i], strlen(class_street[i]), PII_NAME_STREET);
    for (int i = 0; class_title[i]; i++)
        set_add(g, class_title[i], strlen(class_title[i]), PII_NAME_TITLE);
    for (int i = 0; ctx_id_words[i]; i++)
        ctx_add(g, ctx_id_words[i], PII_CTX_ID);
    for (int i = 0; ctx_rel_words[i]; i++)
        ctx_add(g, ctx_rel_words[i], PII_CTX_REL);
    for (int i = 0; org_place[i]; i++) {
        set_add(g, org_place[i], strlen(org_place[i]), PII_NAME_ORG);
        ctx_add(g, org_place[i], PII_NAME_ORG);
    }
    return 0;
}

void pii_names_deinit(pii_names_t *g)
{
    mem_free(g->slots);
    g->slots = NULL;
    g->count = 0;
}
