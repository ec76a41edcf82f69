/*
 * test_ftpd_tlsarg.c - the arguments of the FTPS commands: AUTH's
 * mechanism names, PBSZ's decimal size and PROT's level letter, with good
 * and hostile inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/tlsarg.c"

static void test_auth(void **state)
{
    (void)state;
    assert_int_equal(tlsarg_auth("TLS"), 0);
    assert_int_equal(tlsarg_auth("tls"), 0);
    assert_int_equal(tlsarg_auth("TLS-C"), 0);
    assert_int_equal(tlsarg_auth("SSL"), 0);
    assert_int_equal(tlsarg_auth("TLS-P"), -1);
    assert_int_equal(tlsarg_auth("GSSAPI"), -1);
    assert_int_equal(tlsarg_auth("TLS "), -1);
    assert_int_equal(tlsarg_auth(""), -1);
    assert_int_equal(tlsarg_auth(NULL), -1);
}

static void test_pbsz(void **state)
{
    unsigned long v = 7;

    (void)state;
    assert_int_equal(tlsarg_pbsz("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tlsarg_pbsz("16384", &v), 0);
    assert_int_equal(v, 16384);
    assert_int_equal(tlsarg_pbsz("4294967295", &v), 0);
    assert_int_equal(v, 4294967295UL);
    v = 7;
    assert_int_equal(tlsarg_pbsz("4294967296", &v), -1);
    assert_int_equal(tlsarg_pbsz("99999999999999999999", &v), -1);
    assert_int_equal(tlsarg_pbsz("00000000000", &v), -1);
    assert_int_equal(tlsarg_pbsz("-1", &v), -1);
    assert_int_equal(tlsarg_pbsz("+1", &v), -1);
    assert_int_equal(tlsarg_pbsz("1 ", &v), -1);
    assert_int_equal(tlsarg_pbsz(" 1", &v), -1);
    assert_int_equal(tlsarg_pbsz("0x10", &v), -1);
    assert_int_equal(tlsarg_pbsz("", &v), -1);
    assert_int_equal(tlsarg_pbsz(NULL, &v), -1);
    assert_int_equal(v, 7); /* untouched on failure */
}

static void test_prot(void **state)
{
    (void)state;
    assert_int_equal(tlsarg_prot("P"), 'P');
    assert_int_equal(tlsarg_prot("p"), 'P');
    assert_int_equal(tlsarg_prot("C"), 'C');
    assert_int_equal(tlsarg_prot("c"), 'C');
    assert_int_equal(tlsarg_prot("S"), 'S');
    assert_int_equal(tlsarg_prot("E"), 'E');
    assert_int_equal(tlsarg_prot("X"), 0);
    assert_int_equal(tlsarg_prot("PP"), 0);
    assert_int_equal(tlsarg_prot("P "), 0);
    assert_int_equal(tlsarg_prot(""), 0);
    assert_int_equal(tlsarg_prot(NULL), 0);
    assert_int_equal(tlsarg_prot("\xff"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_pbsz),
        cmocka_unit_test(test_prot),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
