/*
 * test_ftpd_service.c - the settings for running sockserv-ftpd as a
 * service: syslog facility names map to their LOG_* values and no other
 * name is accepted, --syslog and --syslog-facility reach the config from
 * the command line and the file, and what --check-config prints
 * (config_print) reads back as a config file that prints the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/config.c"
#include "../../ftpd/secfile.c"

#include <syslog.h>
#include <unistd.h>

static void test_facility_names(void **state)
{
    static const struct {
        const char *name;
        int value;
    } good[] = {
        {"ftp", LOG_FTP},       {"daemon", LOG_DAEMON}, {"user", LOG_USER},
        {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
        {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
        {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };
    static const char *const bad[] = {"",    "kern",   "auth",  "authpriv", "mail",
                                      "FTP", "local8", "local", "ftp ",     "local01"};

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(config_syslog_facility(good[i].name), good[i].value);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_syslog_facility(bad[i]) != -1)
            fail_msg("accepted facility '%s'", bad[i]);
}

static int parse(ftpd_config *c, int argc, const char **argv)
{
    return config_parse_args(c, argc, (char **)argv);
}

static void test_syslog_options(void **state)
{
    static ftpd_config c;
    const char *defaults[] = {"ftpd"};
    const char *set[] = {"ftpd", "--syslog", "--syslog-facility", "local7", "--check-config"};
    const char *bad[] = {"ftpd", "--syslog-facility", "kern"};

    (void)state;
    assert_int_equal(parse(&c, 1, defaults), 0);
    assert_false(c.syslog);
    assert_string_equal(c.syslog_facility, "ftp");
    assert_false(c.check_config);
    assert_int_equal(parse(&c, 5, set), 0);
    assert_true(c.syslog);
    assert_string_equal(c.syslog_facility, "local7");
    assert_true(c.check_config);
    assert_int_equal(parse(&c, 3, bad), -1);
}

/* Print c to a fresh file; returns its contents (static buffer). */
static const char *print_to(const ftpd_config *c, char *path, size_t size)
{
    static char text[16384];
    FILE *f;
    size_t n;

    snprintf(path, size, "/tmp/ftpd-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w+");
    assert_non_null(f);
    config_print(c, f);
    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void test_printed_settings_read_back(void **state)
{
    static ftpd_config c1, c2;
    char path1[64], path2[64], first[16384];
    const char *args[] = {"ftpd",
                          "--pasv-ports",
                          "50000-50010",
                          "--syslog",
                          "--idle-timeout",
                          "99",
                          "--mode",
                          "forking",
                          "--hash-max-size",
                          "0",
                          "--pasv-address",
                          "192.0.2.1",
                          "--syslog-facility",
                          "daemon"};
    const char *again[] = {"ftpd", "-c", path1};

    (void)state;
    assert_int_equal(parse(&c1, (int)(sizeof(args) / sizeof(args[0])), args), 0);
    snprintf(first, sizeof(first), "%s", print_to(&c1, path1, sizeof(path1)));
    assert_non_null(strstr(first, "\npasv-ports = 50000-50010\n"));
    assert_non_null(strstr(first, "\nidle-timeout = 99\n"));
    assert_non_null(strstr(first, "\nmode = forking\n"));
    assert_non_null(strstr(first, "\nsyslog = yes\n"));
    assert_non_null(strstr(first, "\nsyslog-facility = daemon\n"));
    assert_non_null(strstr(first, "\n# users =\n"));
    /* One line per setting. */
    size_t lines = 0;
    for (const char *p = first; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, OPT_COUNT);

    assert_int_equal(parse(&c2, 3, again), 0);
    assert_string_equal(print_to(&c2, path2, sizeof(path2)), first);
    unlink(path1);
    unlink(path2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_facility_names),
        cmocka_unit_test(test_syslog_options),
        cmocka_unit_test(test_printed_settings_read_back),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
