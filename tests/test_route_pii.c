/* test_route_pii.c — PII scanner: validators, detection, adversarial input, redaction,
 * mask/restore, a PCRE2 oracle, and the presidio evaluation targets (shared data). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii.h"
#include "route/pii/pii_internal.h"

/* ================================================================== fixtures */

static char names_dir[4096];

static const char *shared_dir(void)
{
    const char *s = getenv("SY_SHARED");
    return s ? s : "../shared";
}

static bool have_names(void)
{
    snprintf(names_dir, sizeof names_dir, "%s/data/names", shared_dir());
    char p[4200];
    snprintf(p, sizeof p, "%s/census1990_last.txt", names_dir);
    return access(p, R_OK) == 0;
}

/* Reads path whole into an owned string (the test side of "route/ takes bytes"). */
static char *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b;
    buf_init(&b, 64u << 20);
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        assert_int_equal(buf_append(&b, tmp, k), 0);
    fclose(f);
    *n = b.len;
    return buf_steal(&b);
}

/* A scanner with the census lists of names_dir (have_names() first). */
static pii_scanner_t *names_scanner_new(void)
{
    pii_census_t c;
    for (int i = 0; i < PII_CENSUS_COUNT; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", names_dir, pii_census_files[i]);
        c.data[i] = read_whole(p, &c.len[i]);
        assert_non_null(c.data[i]);
    }
    char err[256];
    pii_options_t o = {&c, 0.5f};
    pii_scanner_t *s = pii_scanner_new(&o, err, sizeof err);
    for (int i = 0; i < PII_CENSUS_COUNT; i++)
        mem_free((void *)c.data[i]);
    return s;
}

typedef struct fx {
    pii_scanner_t *s;
    pii_scratch_t *sc;
} fx_t;

static int setup_plain(void **state)
{
    fx_t *f = mem_calloc(1, sizeof *f);
    char err[256];
    pii_options_t o = {NULL, 0.5f};
    f->s = pii_scanner_new(&o, err, sizeof err);
    assert_non_null(f->s);
    f->sc = pii_scratch_new(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    pii_scratch_free(f->sc);
    pii_scanner_free(f->s);
    mem_free(f);
    return 0;
}

/* Scans s and returns the number of spans; spans in out (up to 64). */
static size_t scan(fx_t *f, const char *s, size_t len, pii_span_t *out)
{
    size_t n = 0;
    assert_int_equal(pii_scan(f->s, f->sc, s, len, out, 64, &n), 0);
    return n;
}

/* True when a span of type t covers exactly the first occurrence of value in s. */
static bool found(fx_t *f, const char *s, pii_type_t t, const char *value)
{
    pii_span_t sp[64];
    size_t n = scan(f, s, strlen(s), sp);
    const char *v = strstr(s, value);
    assert_non_null(v);
    size_t st = (size_t)(v - s), en = st + strlen(value);
    for (size_t i = 0; i < n && i < 64; i++)
        if (sp[i].type == t && sp[i].start == st && sp[i].end == en) return true;
    return false;
}

static bool any_of(fx_t *f, const char *s, pii_type_t t)
{
    pii_span_t sp[64];
    size_t n = scan(f, s, strlen(s), sp);
    for (size_t i = 0; i < n && i < 64; i++)
        if (sp[i].type == t) return true;
    return false;
}

/* ================================================================== validators */

static void test_luhn_and_cards(void **state)
{
    (void)state;
    assert_true(pii_luhn_valid("79927398713", 11));
    assert_false(pii_luhn_valid("79927398710", 11));
    assert_true(pii_card_valid("4111111111111111", 16));
    assert_true(pii_card_valid("4111 1111 1111 1111", 19));
    assert_true(pii_card_valid("4111-1111-1111-1111", 19));
    assert_false(pii_card_valid("4111-1111 1111-1111", 19)); /* mixed separators */
    assert_false(pii_card_valid("4111111111111112", 16));    /* Luhn */
    assert_true(pii_card_valid("378282246310005", 15));      /* Amex */
    assert_false(pii_card_valid("3782822463100050", 16));    /* Amex length */
    assert_true(pii_card_valid("5555555555554444", 16));     /* Mastercard */
    assert_true(pii_card_valid("2221000000000009", 16));     /* Mastercard 2-series */
    assert_true(pii_card_valid("6011111111111117", 16));     /* Discover */
    assert_false(pii_card_valid("1234567812345670", 16));    /* Luhn ok, no issuer */
    assert_false(pii_card_valid("41111111111", 11));         /* too short */
}

static void test_iban(void **state)
{
    (void)state;
    assert_true(pii_iban_valid("GB82WEST12345698765432", 22));
    assert_true(pii_iban_valid("GB82 WEST 1234 5698 7654 32", 27));
    assert_true(pii_iban_valid("gb82west12345698765432", 22));
    assert_true(pii_iban_valid("DE89370400440532013000", 22));
    assert_true(pii_iban_valid("FR1420041010050500013M02606", 27));
    assert_false(pii_iban_valid("GB83WEST12345698765432", 22)); /* check digits */
    assert_false(pii_iban_valid("GB82WEST1234569876543", 21));  /* length for GB */
    assert_false(pii_iban_valid("ZZ82WEST12345698765432", 22)); /* no such country */
}

static void test_ssn(void **state)
{
    (void)state;
    assert_true(pii_ssn_valid("460-89-9847", 11));
    assert_true(pii_ssn_valid("460 89 9847", 11));
    assert_true(pii_ssn_valid("460899847", 9));
    assert_false(pii_ssn_valid("000-12-3456", 11));
    assert_false(pii_ssn_valid("666-12-3456", 11));
    assert_false(pii_ssn_valid("912-12-3456", 11));
    assert_false(pii_ssn_valid("123-00-3456", 11));
    assert_false(pii_ssn_valid("123-12-0000", 11));
    assert_false(pii_ssn_valid("123-45-6789", 11));
    assert_false(pii_ssn_valid("078-05-1120", 11));
    assert_false(pii_ssn_valid("111-11-1111", 11));
    assert_false(pii_ssn_valid("460-89 9847", 11)); /* inconsistent */
}

static void test_ip_email_phone_validators(void **state)
{
    (void)state;
    assert_true(pii_ipv4_valid("192.168.0.1", 11));
    assert_false(pii_ipv4_valid("256.1.1.1", 9));
    assert_false(pii_ipv4_valid("01.2.3.4", 8));
    assert_false(pii_ipv4_valid("1.2.3", 5));
    assert_true(pii_ipv6_valid("2001:db8::1", 11));
    assert_true(pii_ipv6_valid("6e40:4041:c617:e898:c11:40d2:c669:2eb4", 38));
    assert_false(pii_ipv6_valid("12:20:39", 8));
    assert_false(pii_ipv6_valid("::", 2));
    assert_true(pii_email_valid("a.b+c@example.co.uk", 19));
    assert_true(pii_email_valid("x@y.io", 6));
    assert_false(pii_email_valid("logo@2x.png", 11)); /* not a TLD */
    assert_false(pii_email_valid("a..b@example.com", 16));
    assert_false(pii_email_valid("ab@-example.com", 15));
    assert_true(pii_phone_shape("+1-984-182-0190", 15) >= 0.5f);
    assert_true(pii_phone_shape("(555) 123-4567", 14) >= 0.5f);
    assert_true(pii_phone_shape("+44 20 7946 0958", 16) >= 0.5f);    /* UK */
    assert_true(pii_phone_shape("07700 900123", 12) >= 0.5f);        /* UK mobile */
    assert_true(pii_phone_shape("+49 30 1234567", 14) >= 0.5f);      /* DE */
    assert_true(pii_phone_shape("01.84.17.61.18", 14) >= 0.5f);      /* FR */
    assert_true(pii_phone_shape("+91 98765 43210", 15) >= 0.5f);     /* IN */
    assert_true(pii_phone_shape("345-899-3560x4587", 17) >= 0.5f);   /* extension */
    assert_true(pii_phone_shape("+46 (0)8 928 571 38", 19) >= 0.5f); /* trunk */
    assert_true(pii_phone_shape("12-34 56.78", 11) == 0);            /* mixed separators */
    assert_true(pii_phone_shape("12345", 5) == 0);
    assert_true(pii_phone_shape("9472 7916", 9) < 0.5f); /* needs context */
}

/* ================================================================== detection */

static void test_detects_each_type(void **state)
{
    fx_t *f = *state;
    assert_true(found(f, "mail me at jane.doe@example.com today", PII_EMAIL_ADDRESS,
                      "jane.doe@example.com"));
    assert_true(
        found(f, "card 4111 1111 1111 1111 expired", PII_CREDIT_CARD, "4111 1111 1111 1111"));
    assert_true(found(f, "my ssn is 460-89-9847.", PII_US_SSN, "460-89-9847"));
    assert_true(found(f, "SSN: 460899847", PII_US_SSN, "460899847"));
    assert_true(found(f, "IBAN GB82 WEST 1234 5698 7654 32 thanks", PII_IBAN_CODE,
                      "GB82 WEST 1234 5698 7654 32"));
    assert_true(found(f, "server 10.20.30.40 is down", PII_IP_ADDRESS, "10.20.30.40"));
    assert_true(
        found(f, "v6 2001:db8::8a2e:370:7334 ok", PII_IP_ADDRESS, "2001:db8::8a2e:370:7334"));
    assert_true(found(f, "call me at (555) 123-4567 please", PII_PHONE_NUMBER, "(555) 123-4567"));
    assert_true(found(f, "Phone: 0490 75 40 81", PII_PHONE_NUMBER, "0490 75 40 81"));
    assert_true(found(f, "Mobile: +447700 921 916\n", PII_PHONE_NUMBER, "+447700 921 916"));
    assert_true(found(f, "She was born on 12/05/1980 in Ohio", PII_DATE_OF_BIRTH, "12/05/1980"));
    assert_true(found(f, "Date of birth: March 5, 1980.", PII_DATE_OF_BIRTH, "March 5, 1980"));
    assert_true(found(f, "My driver's license number is F162823540116", PII_US_DRIVER_LICENSE,
                      "F162823540116"));
    assert_true(found(f, "passport number 123456789", PII_US_PASSPORT, "123456789"));
    assert_true(found(f, "key AKIAIOSFODNN7EXAMPLE in env", PII_SECRET, "AKIAIOSFODNN7EXAMPLE"));
    assert_true(found(f, "k=AIzaSyA1234567890abcdefghijklmnopqrstuv;", PII_SECRET,
                      "AIzaSyA1234567890abcdefghijklmnopqrstuv"));
    assert_true(found(f, "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 x", PII_SECRET,
                      "ghp_abcdefghijklmnopqrstuvwxyz0123456789"));
    assert_true(
        found(f, "xoxb-1234567890-abcdefghij here", PII_SECRET, "xoxb-1234567890-abcdefghij"));
    assert_true(found(f, "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def\n", PII_SECRET,
                      "eyJhbGciOiJIUzI1NiJ9.abc.def"));
    assert_true(found(
        f, "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\ny",
        PII_SECRET, "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"));
    assert_true(found(f, "We live at 1755 Nelson Mandela Drive, Apt 4 now", PII_STREET_ADDRESS,
                      "1755 Nelson Mandela Drive, Apt 4"));
}

/* The IPv6 trigger is found in C from colon pairs (64 bytes at a time), and a text
 * without a digit is scanned with the triggers that need none: an address with and
 * without digits, at every offset across the 64-byte steps, after colons that are
 * no address, and keywords that need digits in texts with and without them. */
static void test_ipv6_and_digit_free_texts(void **state)
{
    fx_t *f = *state;
    static const char *const addrs[] = {"dead:beef::cafe", "fe80::1ff:fe23:4567:890a",
                                        "2001:db8::8a2e:370:7334", "a:b:c:d:e:f:a:b"};
    for (size_t a = 0; a < sizeof addrs / sizeof addrs[0]; a++)
        for (size_t off = 0; off < 150; off++) {
            char t[512];
            size_t n = 0;
            for (size_t i = 0; i < off; i++) /* "KING: zz zz" ...: colons, no hex pair */
                t[n++] = "KING: zz\n"[i % 9];
            n += (size_t)snprintf(t + n, sizeof t - n, " host %s ok", addrs[a]);
            for (size_t tail = 0; tail < 70; tail += 23) {
                t[n + tail] = 0;
                memset(t + n, 'z', tail);
                t[n + tail] = 0;
                assert_true(found(f, t, PII_IP_ADDRESS, addrs[a]));
            }
        }
    assert_false(any_of(f, "ROMEO: ab:cd: and then a:b: ok", PII_IP_ADDRESS));
    assert_true(found(f, "passport number 123456789", PII_US_PASSPORT, "123456789"));
    assert_false(
        any_of(f, "passport number unknown, born in a licensed DL office", PII_US_PASSPORT));
}

static void test_rejects_lookalikes_of_pii(void **state)
{
    fx_t *f = *state;
    assert_false(any_of(f, "order 4111111111111112 shipped", PII_CREDIT_CARD)); /* Luhn */
    assert_false(any_of(f, "ref 123-45-6789", PII_US_SSN));
    assert_false(any_of(f, "see logo@2x.png", PII_EMAIL_ADDRESS));
    assert_false(any_of(f, "version 1.2.3 released", PII_IP_ADDRESS));
    assert_false(any_of(f, "999.1.1.1", PII_IP_ADDRESS));
    assert_false(any_of(f, "It happened on 2018-12-13 12:20:39 in the lab", PII_PHONE_NUMBER));
    assert_false(any_of(f, "We sold 1,000,000 copies in 1999 and 2004.", PII_PHONE_NUMBER));
    assert_false(any_of(f, "GB83WEST12345698765432", PII_IBAN_CODE));
    assert_false(any_of(f, "AKIA is a prefix", PII_SECRET));
    assert_false(any_of(f, "-----BEGIN CERTIFICATE-----", PII_SECRET));
    pii_span_t sp[4];
    assert_int_equal(scan(f, "", 0, sp), 0);
    assert_int_equal(scan(f, "The quick brown fox jumps over the lazy dog.", 44, sp), 0);
}

/* Separators, look-alike digits, NUL bytes, invalid UTF-8, huge inputs. */
static void test_adversarial(void **state)
{
    fx_t *f = *state;
    /* Fullwidth digits (U+FF10..) with an ASCII dash: found at the original offsets. */
    const char *fw = "ssn \xEF\xBC\x94\xEF\xBC\x96\xEF\xBC\x90-\xEF\xBC\x98\xEF\xBC\x99-"
                     "\xEF\xBC\x99\xEF\xBC\x98\xEF\xBC\x94\xEF\xBC\x97 end";
    pii_span_t sp[64];
    size_t n = scan(f, fw, strlen(fw), sp);
    assert_int_equal(n, 1);
    assert_int_equal(sp[0].type, PII_US_SSN);
    assert_int_equal(sp[0].start, 4);
    assert_int_equal(sp[0].end, strlen(fw) - 4);
    /* Zero-width spaces inside an email and a card. */
    const char *zw = "a\xE2\x80\x8B"
                     "b@example.com and 4111\xE2\x80\x8B"
                     "111111111111";
    assert_true(any_of(f, zw, PII_EMAIL_ADDRESS));
    assert_true(any_of(f, zw, PII_CREDIT_CARD));
    /* Unicode dashes and no-break spaces as separators. */
    assert_true(any_of(f,
                       "call 555\xE2\x80\x91"
                       "123\xE2\x80\x91"
                       "4567 now, phone",
                       PII_PHONE_NUMBER));
    assert_true(any_of(f,
                       "SSN 460\xC2\xA0"
                       "89\xC2\xA0"
                       "9847",
                       PII_US_SSN));
    /* Arabic-Indic digits. */
    assert_true(any_of(f,
                       "card \xD9\xA4\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1"
                       "\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1\xD9\xA1",
                       PII_CREDIT_CARD));
    /* NUL bytes around a value; invalid UTF-8 before it. */
    const char nul[] = "\0\0x@example.com\0\xff\xfe\xc3";
    n = scan(f, nul, sizeof nul - 1, sp);
    assert_int_equal(n, 1);
    assert_int_equal(sp[0].type, PII_EMAIL_ADDRESS);
    assert_int_equal(sp[0].start, 2);
    const char bad[] = "\xc3\x28\xa0\xa1 460-89-9847 \xf0\x28\x8c\xbc";
    assert_true(any_of(f, bad, PII_US_SSN));
    /* 1 MB of filler with values at both ends and the middle; 1 MB of digits. */
    size_t big = 1u << 20;
    char *b = mem_alloc(big + 1);
    memset(b, 'a', big);
    for (size_t i = 80; i < big; i += 80)
        b[i] = ' ';
    memcpy(b, "x@example.com ", 14);
    memcpy(b + big / 2, " 460-89-9847 ", 13);
    memcpy(b + big - 14, " y@example.org", 14);
    b[big] = 0;
    pii_span_t *many = mem_alloc(16 * sizeof *many);
    size_t nf = 0;
    assert_int_equal(pii_scan(f->s, f->sc, b, big, many, 16, &nf), 0);
    assert_int_equal(nf, 3);
    assert_int_equal(many[2].end, big);
    memset(b, '7', big);
    assert_int_equal(pii_scan(f->s, f->sc, b, big, many, 16, &nf), 0);
    /* a run of digits: separators and checks fail, and the scan stays bounded */
    for (size_t i = 0; i < big; i += 3)
        b[i] = ' ';
    assert_int_equal(pii_scan(f->s, f->sc, b, big, many, 16, &nf), 0);
    mem_free(many);
    mem_free(b);
}

/* ================================================================== redact and mask */

static void test_redact_and_mask(void **state)
{
    fx_t *f = *state;
    const char *t = "mail a@example.com or b@example.com, again a@example.com; ssn 460-89-9847";
    pii_span_t sp[16];
    size_t n = scan(f, t, strlen(t), sp);
    assert_int_equal(n, 4);
    buf_t out;
    buf_init(&out, 4096);
    assert_int_equal(pii_redact(t, strlen(t), sp, n, &out), 0);
    assert_string_equal(
        out.data, "mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>, again <EMAIL_ADDRESS>; ssn <US_SSN>");
    buf_reset(&out);
    pii_mask_t *m = pii_mask_new(0);
    assert_int_equal(pii_mask_apply(m, t, strlen(t), sp, n, &out), 0);
    assert_string_equal(
        out.data,
        "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>, again <EMAIL_ADDRESS_1>; ssn <US_SSN_1>");
    assert_int_equal(pii_mask_count(m), 3);
    const char *answer =
        "I wrote to <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>; <US_SSN_1> ok; <EMAIL_ADDRESS_9> <x";
    buf_t back;
    buf_init(&back, 4096);
    assert_int_equal(pii_mask_restore(m, answer, strlen(answer), &back), 0);
    assert_string_equal(
        back.data,
        "I wrote to b@example.com and a@example.com; 460-89-9847 ok; <EMAIL_ADDRESS_9> <x");
    /* Round trip of the masked request gives the original back. */
    buf_reset(&back);
    assert_int_equal(pii_mask_restore(m, out.data, out.len, &back), 0);
    assert_string_equal(back.data, t);
    /* Caps: a tiny mask refuses new values. */
    pii_mask_t *tiny = pii_mask_new(4);
    buf_reset(&out);
    assert_int_equal(pii_mask_apply(tiny, t, strlen(t), sp, n, &out), SY_ETOOBIG);
    /* Unsorted spans are rejected. */
    pii_span_t rev[2] = {sp[1], sp[0]};
    assert_int_equal(pii_redact(t, strlen(t), rev, 2, &out), SY_EINVAL);
    pii_mask_free(tiny);
    pii_mask_free(m);
    pii_mask_free(NULL);
    buf_deinit(&out);
    buf_deinit(&back);
}

static void test_type_names(void **state)
{
    (void)state;
    for (int t = 0; t < PII_TYPE_COUNT; t++) {
        pii_type_t back;
        assert_int_equal(pii_type_parse(pii_type_name((pii_type_t)t), &back), 0);
        assert_int_equal(back, t);
    }
    pii_type_t x;
    assert_int_equal(pii_type_parse("NOPE", &x), SY_EINVAL);
}

/* ================================================================== PCRE2 oracle */

/* Random texts with emails, SSNs and IPv4s embedded in noise: every match of an
 * independent PCRE2 pattern whose value also passes the validator must be found by
 * the scanner at the same offsets, and the scanner must report nothing of these
 * types that the oracle does not. */
static void test_pcre2_oracle(void **state)
{
    fx_t *f = *state;
    static const struct {
        pii_type_t t;
        const char *re;
    } ora[] = {
        {PII_EMAIL_ADDRESS, "(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(\\.[A-"
                            "Za-z0-9-]+)*\\.(com|org|net|de|uk)(?![A-Za-z0-9.-])"},
        /* digit groups joined by up to 3 separator bytes form one cluster */
        {PII_US_SSN, "(?<![\\w.+()/-])(?<![0-9][ ./()-])(?<![0-9][ ./()-]{2})(?<![0-9][ ./()-]{3})"
                     "\\d{3}-\\d{2}-\\d{4}(?![\\w.-])(?![ ./()-]{1,3}\\d)"},
        {PII_IP_ADDRESS, "(?<![\\w.:])(\\d{1,3}\\.){3}\\d{1,3}(?![\\w.:])"},
    };
    pcre2_code *code[3];
    for (int i = 0; i < 3; i++) {
        int e;
        PCRE2_SIZE off;
        code[i] = pcre2_compile((PCRE2_SPTR)ora[i].re, PCRE2_ZERO_TERMINATED, 0, &e, &off, NULL);
        assert_non_null(code[i]);
    }
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    static const char *const frag[] = {"a@b.com",
                                       "john.smith@mail.example.org",
                                       "460-89-9847",
                                       "123-45-6789",
                                       "10.0.0.1",
                                       "256.1.1.1",
                                       "x",
                                       " ",
                                       "  ",
                                       "foo",
                                       "bar.",
                                       "-",
                                       "@",
                                       "99 ",
                                       "555-12-1234",
                                       "1.2.3.4",
                                       "\n",
                                       "z@q.de",
                                       "e@f.uk",
                                       ", ",
                                       "7"};
    unsigned seed = 12345;
    char text[512];
    pii_span_t sp[64];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0;
        int parts = 4 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
        for (int k = 0; k < parts; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = frag[(seed >> 16) % (sizeof frag / sizeof frag[0])];
            size_t l = strlen(p);
            if (len + l + 1 >= sizeof text) break;
            memcpy(text + len, p, l);
            len += l;
            /* fragments never share a digit cluster: that merging has its own tests */
            text[len++] = (seed >> 8) & 1 ? ';' : '\n';
        }
        text[len] = 0;
        size_t n = scan(f, text, len, sp);
        for (int i = 0; i < 3; i++) {
            size_t want = 0;
            PCRE2_SIZE start = 0;
            while (pcre2_match(code[i], (PCRE2_SPTR)text, len, start, 0, md, NULL) >= 0) {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                const char *v = text + ov[0];
                size_t vl = ov[1] - ov[0];
                bool valid = ora[i].t == PII_EMAIL_ADDRESS ? pii_email_valid(v, vl)
                             : ora[i].t == PII_US_SSN      ? pii_ssn_valid(v, vl)
                                                           : pii_ipv4_valid(v, vl);
                if (valid) {
                    bool hit = false;
                    for (size_t j = 0; j < n && j < 64; j++)
                        hit |= sp[j].type == ora[i].t && sp[j].start == ov[0] && sp[j].end == ov[1];
                    if (!hit) fail_msg("oracle match '%.*s' missed in '%s'", (int)vl, v, text);
                    want++;
                }
                start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
            }
            size_t got = 0;
            for (size_t j = 0; j < n && j < 64; j++)
                got += sp[j].type == ora[i].t;
            if (got != want)
                fail_msg("type %s: scanner %zu, oracle %zu in '%s'", pii_type_name(ora[i].t), got,
                         want, text);
        }
    }
    pcre2_match_data_free(md);
    for (int i = 0; i < 3; i++)
        pcre2_code_free(code[i]);
}

/* ================================================================== digit scripts */

/* Appends code point cp to b as UTF-8. */
static size_t put_utf8(char *b, uint32_t cp)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | cp >> 18);
    b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The generated Unicode tables against PCRE2's own (same Unicode version): every code
 * point is a decimal digit for the scanner exactly when PCRE2 says \p{Nd}, with a
 * value that puts it in a run of ten; a word character for email domains exactly
 * when it is [\p{L}\p{M}\p{Nd}]. */
static void test_unicode_tables_vs_pcre2(void **state)
{
    (void)state;
    int e;
    PCRE2_SIZE off;
    pcre2_code *nd = pcre2_compile((PCRE2_SPTR) "^\\p{Nd}$", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &e, &off, NULL);
    pcre2_code *wd = pcre2_compile((PCRE2_SPTR) "^[\\p{L}\\p{M}\\p{Nd}]$", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &e, &off, NULL);
    assert_non_null(nd);
    assert_non_null(wd);
    pcre2_match_data *md = pcre2_match_data_create(2, NULL);
    size_t digits = 0;
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char b[4];
        size_t l = put_utf8(b, cp);
        bool want = pcre2_match(nd, (PCRE2_SPTR)b, l, 0, 0, md, NULL) >= 0;
        int v = -1;
        size_t got = pii_utf8_digit((const unsigned char *)b, l, &v);
        if ((got != 0) != want) fail_msg("U+%04X: scanner digit %zu, PCRE2 Nd %d", cp, got, want);
        if (got) {
            assert_int_equal(got, l);
            assert_true(v >= 0 && v <= 9);
            char z[4];
            size_t zl = put_utf8(z, cp - (uint32_t)v), nl = put_utf8(b, cp - (uint32_t)v + 9);
            assert_true(pcre2_match(nd, (PCRE2_SPTR)z, zl, 0, 0, md, NULL) >= 0);
            assert_true(pcre2_match(nd, (PCRE2_SPTR)b, nl, 0, 0, md, NULL) >= 0);
            digits++;
            l = put_utf8(b, cp);
        }
        if (cp >= 0x80) {
            bool w = pcre2_match(wd, (PCRE2_SPTR)b, l, 0, 0, md, NULL) >= 0;
            if ((pii_utf8_word((const unsigned char *)b, l) != 0) != w)
                fail_msg("U+%04X: scanner word %d, PCRE2 %d", cp, !w, w);
        }
    }
    assert_int_equal(digits % 10, 0);
    assert_true(digits >= 600);
    /* malformed UTF-8 is no digit and no word character */
    int v;
    assert_int_equal(pii_utf8_digit((const unsigned char *)"\xE0\xA5", 2, &v), 0);
    assert_int_equal(pii_utf8_word((const unsigned char *)"\xC0\x80", 2), 0);
    assert_int_equal(pii_utf8_word((const unsigned char *)"\xED\xA0\x80", 3), 0);
    pcre2_match_data_free(md);
    pcre2_code_free(nd);
    pcre2_code_free(wd);
}

/* Zeros of the digit scripts the property test writes values in: ASCII, Arabic-Indic,
 * Extended Arabic-Indic, N'Ko, Devanagari, Bengali, Gujarati, Tamil, Thai, Lao,
 * Tibetan, Myanmar, Khmer, Mongolian, fullwidth, Osmanya, mathematical bold, double
 * struck, sans-serif, sans-serif bold and monospace. */
static const uint32_t test_zeros[] = {0x30,   0x660,   0x6F0,   0x7C0,   0x966,   0x9E6,   0xAE6,
                                      0xBE6,  0xE50,   0xED0,   0xF20,   0x1040,  0x17E0,  0x1810,
                                      0xFF10, 0x104A0, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6};
#define N_ZEROS (sizeof test_zeros / sizeof test_zeros[0])

static unsigned prop_next(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* Writes the ASCII value v into b with each digit in a script drawn at random (one
 * script for the whole value, or, one time in four, a script per digit). */
static size_t put_digits(char *b, const char *v, unsigned *seed)
{
    bool mixed = prop_next(seed) % 4 == 0;
    uint32_t z = test_zeros[prop_next(seed) % N_ZEROS];
    size_t k = 0;
    for (const char *p = v; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (mixed) z = test_zeros[prop_next(seed) % N_ZEROS];
            k += put_utf8(b + k, z + (uint32_t)(*p - '0'));
        } else {
            b[k++] = *p;
        }
    }
    return k;
}

/* A Luhn-valid 16-digit Visa or Mastercard number into d (17 bytes). */
static void make_card(char *d, unsigned *seed)
{
    d[0] = prop_next(seed) & 1 ? '4' : '5';
    d[1] = d[0] == '5' ? (char)('1' + prop_next(seed) % 5) : (char)('0' + prop_next(seed) % 10);
    for (int i = 2; i < 15; i++)
        d[i] = (char)('0' + prop_next(seed) % 10);
    for (int c = 0; c < 10; c++) {
        d[15] = (char)('0' + c);
        d[16] = 0;
        if (pii_luhn_valid(d, 16)) return;
    }
    fail();
}

/* Property: a card, SSN or IBAN written in random digit scripts, grouped by a random
 * separator (cards: space, dash, dot, slash, a line break), planted at a random offset
 * of random prose, is found at exactly its bytes. PCRE2 (\p{Nd} with UCP) is the
 * oracle for where a digit-group value lies in the text. */
static void test_planted_digit_scripts(void **state)
{
    fx_t *f = *state;
    static const char *const words[] = {"the",     "order", "was",  "sent", "to",     "our",
                                        "office",  "and",   "then", "we",   "called", "back",
                                        "Tuesday", "é",     "—",    "“ok”", "ไทย",    "नमस्ते"};
    static const char *const seps[] = {" ", "-", ".", "/", "\n", " \n", "\r\n"};
    int e;
    PCRE2_SIZE off;
    /* four groups of four digits of any script, joined by the separators above */
    pcre2_code *card_re =
        pcre2_compile((PCRE2_SPTR) "(?<![\\p{Nd}\\w])\\p{Nd}{4}(?:(?:[ ./-]| "
                                   "?\\r?\\n)\\p{Nd}{4}){3}(?![\\p{Nd}\\w])",
                      PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &e, &off, NULL);
    assert_non_null(card_re);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    unsigned seed = 777;
    char text[1024];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0, vst = 0, ven = 0;
        int nw = (int)(prop_next(&seed) % 12),
            at_w = nw ? (int)(prop_next(&seed) % (unsigned)nw) : 0;
        int kind = (int)(prop_next(&seed) % 3);
        for (int w = 0; w <= nw; w++) {
            if (w == at_w) {
                char v[64];
                if (kind == 0) {
                    char d[17];
                    make_card(d, &seed);
                    const char *sp = seps[prop_next(&seed) % (sizeof seps / sizeof seps[0])];
                    snprintf(v, sizeof v, "%.4s%s%.4s%s%.4s%s%.4s", d, sp, d + 4,
                             prop_next(&seed) % 3 ? sp : (sp[0] == '\n' ? " " : sp), d + 8, sp,
                             d + 12);
                    if (strchr(sp, '\n') == NULL && strchr(v, '\n') == NULL) {
                        /* one separator throughout */
                        snprintf(v, sizeof v, "%.4s%s%.4s%s%.4s%s%.4s", d, sp, d + 4, sp, d + 8, sp,
                                 d + 12);
                    }
                } else if (kind == 1) {
                    static const char *const ssn[] = {"460-89-9847", "123-45-6780", "078-05-1121",
                                                      "219-09-9998", "536 90 4399"};
                    snprintf(v, sizeof v, "%s", ssn[prop_next(&seed) % 5]);
                } else {
                    static const char *const iban[] = {"GB82 WEST 1234 5698 7654 32",
                                                       "DE89 3704 0044 0532 0130 00",
                                                       "FR14 2004 1010 0505 0001 3M02 606"};
                    snprintf(v, sizeof v, "%s", iban[prop_next(&seed) % 3]);
                }
                if (len) text[len++] = ' ';
                vst = len;
                len += put_digits(text + len, v, &seed);
                ven = len;
                text[len++] = prop_next(&seed) % 2 ? ' ' : '.';
                continue;
            }
            const char *wd = words[prop_next(&seed) % (sizeof words / sizeof words[0])];
            if (len) text[len++] = ' ';
            memcpy(text + len, wd, strlen(wd));
            len += strlen(wd);
        }
        text[len] = 0;
        pii_type_t want = kind == 0 ? PII_CREDIT_CARD : kind == 1 ? PII_US_SSN : PII_IBAN_CODE;
        pii_span_t sp[64];
        size_t n = scan(f, text, len, sp);
        bool hit = false;
        for (size_t j = 0; j < n && j < 64; j++)
            hit |= sp[j].type == want && sp[j].start == vst && sp[j].end == ven;
        if (!hit) fail_msg("%s at [%zu, %zu) missed in '%s'", pii_type_name(want), vst, ven, text);
        if (kind == 0) {
            /* the oracle finds the same bytes */
            int rc = pcre2_match(card_re, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
            assert_true(rc >= 0);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            assert_int_equal(ov[0], vst);
            assert_int_equal(ov[1], ven);
        }
    }
    pcre2_match_data_free(md);
    pcre2_code_free(card_re);
}

/* Internationalised email addresses: UTF-8 local parts and labels, punycode labels
 * and TLDs, next to punctuation that is not part of them. */
static void test_idn_email(void **state)
{
    fx_t *f = *state;
    assert_true(found(f, "write to jörg@münchen.de today", PII_EMAIL_ADDRESS, "jörg@münchen.de"));
    assert_true(
        found(f, "mail: δοκιμή@παράδειγμα.δοκιμή.", PII_EMAIL_ADDRESS, "δοκιμή@παράδειγμα.δοκιμή"));
    assert_true(found(f, "“user@例え.テスト”", PII_EMAIL_ADDRESS, "user@例え.テスト"));
    assert_true(found(f, "a@xn--mnchen-3ya.de", PII_EMAIL_ADDRESS, "a@xn--mnchen-3ya.de"));
    assert_true(found(f, "(b@example.xn--p1ai)", PII_EMAIL_ADDRESS, "b@example.xn--p1ai"));
    assert_true(found(f, "иван@почта.рф, ok", PII_EMAIL_ADDRESS, "иван@почта.рф"));
    assert_true(found(f, "x@example.com—then", PII_EMAIL_ADDRESS, "x@example.com"));
    assert_false(pii_email_valid("a@b.\xE2\x80\x94\xE2\x80\x94", 9)); /* em dashes: no TLD */
    assert_false(pii_email_valid("a@\xC0\x80x.de", 8));               /* malformed UTF-8 */
}

/* Cards grouped by dots, slashes or wrapped across lines; two phone numbers on two
 * lines stay two phone numbers. */
static void test_card_separators(void **state)
{
    fx_t *f = *state;
    assert_true(found(f, "card 4111.1111.1111.1111 ok", PII_CREDIT_CARD, "4111.1111.1111.1111"));
    assert_true(found(f, "card 4111/1111/1111/1111 ok", PII_CREDIT_CARD, "4111/1111/1111/1111"));
    assert_true(found(f, "card 5200 8282\n8282 8210 ok", PII_CREDIT_CARD, "5200 8282\n8282 8210"));
    assert_true(
        found(f, "card 5200-8282-\r\n8282-8210.", PII_CREDIT_CARD, "5200-8282-\r\n8282-8210"));
    assert_false(any_of(f, "card 4111.1111-1111/1111", PII_CREDIT_CARD)); /* mixed */
    assert_true(found(f, "call 555-123-4567\n555-987-6543 x", PII_PHONE_NUMBER, "555-123-4567"));
    assert_true(found(f, "call 555-123-4567\n555-987-6543 x", PII_PHONE_NUMBER, "555-987-6543"));
    assert_true(found(f, "ip 10.0.0.1 up", PII_IP_ADDRESS, "10.0.0.1"));
}

/* The mask has no limit that lets a value through: thousands of distinct values are
 * all masked and restored, and past its caps it fails (SY_ETOOBIG) instead. */
static void test_mask_no_silent_cap(void **state)
{
    (void)state;
    buf_t text, out, back;
    buf_init(&text, 1u << 24);
    buf_init(&out, 1u << 24);
    buf_init(&back, 1u << 24);
    size_t nv = 5000;
    pii_span_t *sp = mem_calloc(nv, sizeof *sp);
    for (size_t i = 0; i < nv; i++) {
        sp[i].type = i % 2 ? PII_PERSON : PII_EMAIL_ADDRESS;
        sp[i].score = 1;
        sp[i].start = text.len;
        assert_int_equal(buf_printf(&text, "v%zu@x.example", i % 4000), 0);
        sp[i].end = text.len;
        assert_int_equal(buf_append(&text, " and ", 5), 0);
    }
    pii_mask_t *m = pii_mask_new(0);
    assert_int_equal(pii_mask_apply(m, text.data, text.len, sp, nv, &out), 0);
    assert_null(strstr(out.data, "@x.example")); /* no value left in clear */
    assert_int_equal(pii_mask_restore(m, out.data, out.len, &back), 0);
    assert_int_equal(back.len, text.len);
    assert_memory_equal(back.data, text.data, text.len);
    pii_mask_free(m);
    /* the value cap: PII_MASK_MAX_VALUES distinct values, then an error */
    m = pii_mask_new(64u << 20);
    char v[32];
    pii_span_t one = {PII_PERSON, 1, 0, 0};
    int rc = 0;
    size_t i;
    for (i = 0; i <= PII_MASK_MAX_VALUES && !rc; i++) {
        int l = snprintf(v, sizeof v, "n%zu", i);
        one.end = (size_t)l;
        buf_reset(&out);
        rc = pii_mask_apply(m, v, (size_t)l, &one, 1, &out);
    }
    assert_int_equal(rc, SY_ETOOBIG);
    assert_int_equal(i, PII_MASK_MAX_VALUES + 1);
    assert_int_equal(pii_mask_count(m), PII_MASK_MAX_VALUES);
    pii_mask_free(m);
    mem_free(sp);
    buf_deinit(&text);
    buf_deinit(&out);
    buf_deinit(&back);
}

/* pii_scan_all reports every finding of a text however many there are (pii_scan's
 * max only caps what is copied). */
static void test_scan_all_uncapped(void **state)
{
    fx_t *f = *state;
    buf_t t;
    buf_init(&t, 1u << 22);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(buf_printf(&t, "mail u%d@example.com now; ", i), 0);
    const pii_span_t *sp;
    size_t n = 0;
    assert_int_equal(pii_scan_all(f->s, f->sc, t.data, t.len, &sp, &n), 0);
    assert_int_equal(n, 3000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sp[i].type, PII_EMAIL_ADDRESS);
    size_t nf = 0;
    pii_span_t few[4];
    assert_int_equal(pii_scan(f->s, f->sc, t.data, t.len, few, 4, &nf), 0);
    assert_int_equal(nf, 3000);
    buf_deinit(&t);
}

/* ================================================================== shared data */

/* Per-type overlap precision/recall on a presidio-format file (code point offsets). */
typedef struct prc {
    size_t gold, gold_hit, pred, pred_hit;
} prc_t;

static size_t cp_to_byte(const char *s, size_t len, size_t cp)
{
    size_t i = 0;
    while (i < len && cp > 0) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cp--;
    }
    return i;
}

static void eval_file(fx_t *f, const char *path, prc_t c[PII_TYPE_COUNT])
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    buf_t b;
    buf_init(&b, 64u << 20);
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, fp)) > 0)
        assert_int_equal(buf_append(&b, tmp, k), 0);
    fclose(fp);
    cJSON *root = cJSON_ParseWithLength(b.data, b.len);
    buf_deinit(&b);
    assert_true(cJSON_IsArray(root));
    const cJSON *rec;
    pii_span_t sp[64];
    cJSON_ArrayForEach(rec, root)
    {
        const char *t = cJSON_GetObjectItem(rec, "full_text")->valuestring;
        size_t len = strlen(t), n = scan(f, t, len, sp), ng = 0;
        struct {
            pii_type_t t;
            size_t a, b;
        } g[128];
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(rec, "spans"))
        {
            const char *et = cJSON_GetObjectItem(x, "entity_type")->valuestring;
            if (!strcmp(et, "ADDRESS")) et = "STREET_ADDRESS";
            pii_type_t ty;
            if (pii_type_parse(et, &ty) || ng == 128) continue;
            g[ng].t = ty;
            g[ng].a =
                cp_to_byte(t, len, (size_t)cJSON_GetObjectItem(x, "start_position")->valuedouble);
            g[ng].b =
                cp_to_byte(t, len, (size_t)cJSON_GetObjectItem(x, "end_position")->valuedouble);
            ng++;
        }
        for (size_t i = 0; i < ng; i++) {
            c[g[i].t].gold++;
            for (size_t j = 0; j < n && j < 64; j++)
                if (sp[j].type == g[i].t && sp[j].start < g[i].b && g[i].a < sp[j].end) {
                    c[g[i].t].gold_hit++;
                    break;
                }
        }
        for (size_t j = 0; j < n && j < 64; j++) {
            c[sp[j].type].pred++;
            for (size_t i = 0; i < ng; i++)
                if (sp[j].type == g[i].t && sp[j].start < g[i].b && g[i].a < sp[j].end) {
                    c[sp[j].type].pred_hit++;
                    break;
                }
        }
    }
    cJSON_Delete(root);
}

/* Person cues beyond the gazetteer: names announced by a phrase (any case), the
 * subject of a person's verb, repeats of a name already found, lists of people, and
 * capitals of Latin Extended-A ("Ł" starts a word, "ł" does not). A lone given name
 * is a person only with identifying context: a title, a word of a record, a speaker
 * label, a relative of the writer, another entity or a full name in the text. */
static void test_person_cues(void **state)
{
    (void)state;
    if (!have_names()) {
        print_message("name lists absent (SY_SHARED): skipped\n");
        skip();
    }
    fx_t f;
    f.s = names_scanner_new();
    assert_non_null(f.s);
    f.sc = pii_scratch_new(f.s);
    assert_true(found(&f, "hi, my name is lena andersson.", PII_PERSON, "lena andersson"));
    assert_true(found(&f, "What's your last name? Magnusson", PII_PERSON, "Magnusson"));
    assert_false(any_of(&f, "the file name is config and it works", PII_PERSON));
    assert_true(found(&f, "Tomomi is from the north.", PII_PERSON, "Tomomi"));
    assert_true(found(&f, "\"It rains,\" says Hartvigsson.", PII_PERSON, "Hartvigsson"));
    assert_true(found(&f, "As promised, here's Arne's address:", PII_PERSON, "Arne"));
    assert_true(found(&f, "Vide, can I please speak to your boss?", PII_PERSON, "Vide"));
    assert_true(found(&f, "Producer Liviana Palerma explained it.", PII_PERSON, "Liviana Palerma"));
    assert_true(found(&f, "Westgard starred in the film directed by Joakim Westgard.", PII_PERSON,
                      "Westgard"));
    assert_true(found(&f, "Our founders: Eklund, Michael and Hodge.", PII_PERSON, "Hodge"));
    assert_true(found(&f, "Our founders: Eklund, Michael and Hodge.", PII_PERSON, "Eklund"));
    assert_false(any_of(&f, "I worked at Jones, Mitchell and Williams for a year.", PII_PERSON));
    assert_false(any_of(&f, "The Clark, Romero and Hall Orchestra was founded.", PII_PERSON));
    assert_false(any_of(&f, "Words like Wisdom and Discipline are not names.", PII_PERSON));
    assert_false(any_of(&f, "Sarah went to the park with her mom. Sarah was happy.", PII_PERSON));
    assert_false(any_of(&f, "Once upon a time there was a girl named Sarah.", PII_PERSON));
    assert_false(any_of(&f, "\"Tom, can you help me?\" asked Sarah.", PII_PERSON));
    assert_false(any_of(&f, "O, give me leave,\nRetain that dear perfection", PII_PERSON));
    assert_false(any_of(&f, "Provost:\nIt was commanded so.", PII_PERSON));
    assert_true(found(&f, "Please ask Dr. Sarah about the results.", PII_PERSON, "Sarah"));
    assert_true(found(&f, "Best regards,\nSarah", PII_PERSON, "Sarah"));
    assert_true(
        found(&f, "I would like to remove my kid Selma from the will.", PII_PERSON, "Selma"));
    assert_true(found(&f, "Sarah wrote from sarah.k@example.com yesterday.", PII_PERSON, "Sarah"));
    assert_true(found(&f, "Sarah Miller met Tom at noon; Tom paid.", PII_PERSON, "Tom"));
    assert_true(found(&f, "Sometimes people call me Roland", PII_PERSON, "Roland"));
    assert_true(
        found(&f, "Leverett: What a wife.\nDanielle: Remember me?", PII_PERSON, "Leverett"));
    assert_true(found(&f, "If this is not correct, please change it to Ivan King", PII_PERSON,
                      "Ivan King"));
    pii_span_t sp[64];
    /* More lone names than the memo holds before the context that identifies them
     * ("Mr. Ellis" at the end): every one is still found. */
    buf_t many;
    buf_init(&many, 1 << 20);
    for (int i = 0; i < 300; i++)
        assert_int_equal(buf_puts(&many, "Sarah went home. "), 0);
    assert_int_equal(buf_puts(&many, "Ask Mr. Ellis."), 0);
    assert_true(scan(&f, many.data, many.len, sp) == 301);
    buf_deinit(&many);
    /* A capital and 16 lowercase letters ending the text: the word is measured 16
     * bytes at a time and the byte after it must not be read (found by fuzz_pii). */
    char *w16 = mem_alloc(17);
    memcpy(w16, "Abcdefghijklmnopq", 17);
    (void)scan(&f, w16, 17, sp);
    mem_free(w16);
    /* Capitals next to another capital are dropped from the 64-byte mask, and the
     * last partial block of a text is read from its last 64 bytes: a full name is
     * found at every offset after all-capitals words and at the end of texts of
     * every length, across block edges. */
    char txt[256];
    for (int pad = 0; pad < 140; pad++) {
        int n = 0;
        for (int k = 0; k < pad; k++)
            txt[n++] = k % 7 == 6 ? ' ' : (char)('K' + k % 3);
        n += snprintf(txt + n, sizeof txt - (size_t)n, " Sarah Miller wrote. ROMEO:");
        char *dup = mem_alloc((size_t)n);
        memcpy(dup, txt, (size_t)n);
        size_t k = scan(&f, dup, (size_t)n, sp);
        assert_int_equal(k, 1);
        assert_int_equal(sp[0].type, PII_PERSON);
        assert_int_equal(sp[0].start, (size_t)pad + 1);
        assert_int_equal(sp[0].end, (size_t)pad + 13);
        mem_free(dup);
    }
    for (int len = 13; len < 200; len++) {
        int n = 0;
        for (; n < len - 13; n++)
            txt[n] = n % 5 == 4 ? ' ' : 'a';
        memcpy(txt + n, " Sarah Miller", 13);
        n += 13;
        char *dup = mem_alloc((size_t)n);
        memcpy(dup, txt, (size_t)n);
        size_t k = scan(&f, dup, (size_t)n, sp);
        assert_int_equal(k, 1);
        assert_int_equal(sp[0].start, (size_t)n - 12);
        assert_int_equal(sp[0].end, (size_t)n);
        mem_free(dup);
    }
    static const char tail[] = {'B', '\xb6', '\xb9', ' ', 'a', 'n', 'd', ' '}; /* list at the end */
    (void)scan(&f, tail, sizeof tail, sp);
    assert_false(any_of(&f,
                        "The restaurant is at ul. Mi\xc5\x82"
                        "a 57 in town.",
                        PII_PERSON));
    pii_scratch_free(f.sc);
    pii_scanner_free(f.s);
}

/* The targets: recall >= 0.98 and precision >= 0.95 for the validated types, PERSON
 * recall >= 0.80 at precision >= 0.80 (both files together). */
static void test_eval_presidio(void **state)
{
    (void)state;
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/data/pii/synth_dataset_v2.json", shared_dir());
    snprintf(p2, sizeof p2, "%s/data/pii/generated_small.json", shared_dir());
    if (access(p1, R_OK) || access(p2, R_OK) || !have_names()) {
        print_message("shared presidio data or name lists absent (SY_SHARED): skipped\n");
        skip();
    }
    fx_t f;
    f.s = names_scanner_new();
    assert_non_null(f.s);
    f.sc = pii_scratch_new(f.s);
    prc_t c[PII_TYPE_COUNT] = {0};
    /* PERSON on each file alone: the small file must not hide behind the big one. */
    const char *files[] = {p1, p2};
    for (int k = 0; k < 2; k++) {
        prc_t one[PII_TYPE_COUNT] = {0};
        eval_file(&f, files[k], one);
        prc_t *y = &one[PII_PERSON];
        double py = (double)y->pred_hit / (double)y->pred,
               ry = (double)y->gold_hit / (double)y->gold;
        print_message("PERSON (%s) P %.3f R %.3f\n", k ? "generated_small" : "synth", py, ry);
        assert_true(py >= 0.80);
        assert_true(ry >= 0.80);
        for (int t = 0; t < PII_TYPE_COUNT; t++) {
            c[t].gold += one[t].gold;
            c[t].pred += one[t].pred;
            c[t].gold_hit += one[t].gold_hit;
            c[t].pred_hit += one[t].pred_hit;
        }
    }
    static const pii_type_t core[] = {PII_EMAIL_ADDRESS, PII_CREDIT_CARD, PII_US_SSN,
                                      PII_IBAN_CODE,     PII_IP_ADDRESS,  PII_PHONE_NUMBER};
    for (size_t i = 0; i < sizeof core / sizeof core[0]; i++) {
        prc_t *x = &c[core[i]];
        double p = x->pred ? (double)x->pred_hit / (double)x->pred : 0;
        double r = x->gold ? (double)x->gold_hit / (double)x->gold : 0;
        print_message("%-14s P %.3f R %.3f\n", pii_type_name(core[i]), p, r);
        assert_true(x->gold > 0);
        assert_true(r >= 0.98);
        assert_true(p >= 0.95);
    }
    prc_t *x = &c[PII_PERSON];
    double p = (double)x->pred_hit / (double)x->pred, r = (double)x->gold_hit / (double)x->gold;
    print_message("PERSON         P %.3f R %.3f\n", p, r);
    assert_true(p >= 0.80);
    assert_true(r >= 0.80);
    pii_scratch_free(f.sc);
    pii_scanner_free(f.s);
}

/* Clean prose (TinyStories and Shakespeare, split at blank lines), names on: the
 * types other than PERSON flag at most 1 message in 1000; PERSON, which gates lone
 * given names on identifying context, at most 1 in 16 (5.5% measured: fiction full
 * names and lone surnames remain, see docs/pii.md). */
static void test_flag_rate_clean_prose(void **state)
{
    (void)state;
    static const char *const corpora[] = {"tinystories_val_subset.txt",
                                          "tinyshakespeare_input.txt"};
    char path[4200];
    snprintf(path, sizeof path, "%s/data/corpora/%s", shared_dir(), corpora[0]);
    if (access(path, R_OK) || !have_names()) {
        print_message("shared corpora or name lists absent (SY_SHARED): skipped\n");
        skip();
    }
    fx_t f;
    f.s = names_scanner_new();
    assert_non_null(f.s);
    f.sc = pii_scratch_new(f.s);
    size_t msgs = 0, flagged = 0, flagged_np = 0;
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/data/corpora/%s", shared_dir(), corpora[c]);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        buf_t b;
        buf_init(&b, 64u << 20);
        char tmp[65536];
        size_t k;
        while ((k = fread(tmp, 1, sizeof tmp, fp)) > 0)
            assert_int_equal(buf_append(&b, tmp, k), 0);
        fclose(fp);
        const char *p = b.data, *end = b.data + b.len;
        pii_span_t sp[64];
        while (p < end) {
            const char *q = strstr(p, "\n\n");
            if (!q) q = end;
            if (q > p) {
                msgs++;
                size_t n = scan(&f, p, (size_t)(q - p), sp), np = 0;
                for (size_t i = 0; i < n && i < 64; i++)
                    np += sp[i].type != PII_PERSON;
                flagged += n > 0;
                flagged_np += np > 0;
            }
            p = q + (q < end ? 2 : 0);
            while (p < end && *p == '\n')
                p++;
        }
        buf_deinit(&b);
    }
    print_message("clean prose: %zu of %zu messages flagged (%zu by types other than PERSON)\n",
                  flagged, msgs, flagged_np);
    assert_true(msgs > 10000);
    assert_true(flagged_np * 1000 <= msgs);
    assert_true(flagged * 16 <= msgs);
    pii_scratch_free(f.sc);
    pii_scanner_free(f.s);
}

/* The census lists come as bytes: a malformed or missing list is an error naming
 * the list, and well-formed bytes (no file anywhere) give a working gazetteer. */
static void test_census_bytes(void **state)
{
    (void)state;
    static const char female[] =
        "MARY           2.629  2.629      1\nLENA           0.010 40.0     300\n";
    static const char male[] = "JAMES          3.318  3.318      1\n";
    static const char last[] =
        "SMITH          1.006  1.006      1\nANDERSSON      0.001 80.000  20000\n";
    pii_census_t c = {{female, male, last}, {sizeof female - 1, sizeof male - 1, sizeof last - 1}};
    char err[256] = "";
    pii_options_t o = {&c, 0.5f};
    pii_scanner_t *s = pii_scanner_new(&o, err, sizeof err);
    assert_non_null(s);
    fx_t f = {s, pii_scratch_new(s)};
    assert_true(found(&f, "Please call Lena Andersson tomorrow.", PII_PERSON, "Lena Andersson"));
    pii_scratch_free(f.sc);
    pii_scanner_free(s);
    static const char bad[] = "SMITH          1.006  oops      1\n";
    c.data[PII_CENSUS_LAST] = bad;
    c.len[PII_CENSUS_LAST] = sizeof bad - 1;
    assert_null(pii_scanner_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "census1990_last.txt: malformed line"));
    c.data[PII_CENSUS_MALE_FIRST] = NULL;
    assert_null(pii_scanner_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "census1990_male_first.txt"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luhn_and_cards),
        cmocka_unit_test(test_iban),
        cmocka_unit_test(test_ssn),
        cmocka_unit_test(test_ip_email_phone_validators),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_census_bytes),
        cmocka_unit_test_setup_teardown(test_detects_each_type, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_and_digit_free_texts, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_lookalikes_of_pii, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_adversarial, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_redact_and_mask, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_pcre2_oracle, setup_plain, teardown),
        cmocka_unit_test(test_unicode_tables_vs_pcre2),
        cmocka_unit_test_setup_teardown(test_planted_digit_scripts, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_idn_email, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_card_separators, setup_plain, teardown),
        cmocka_unit_test(test_mask_no_silent_cap),
        cmocka_unit_test_setup_teardown(test_scan_all_uncapped, setup_plain, teardown),
        cmocka_unit_test(test_person_cues),
        cmocka_unit_test(test_eval_presidio),
        cmocka_unit_test(test_flag_rate_clean_prose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
