/* Forced into the unit tests when clang-tidy reads them (scripts/lint.sh).
 * cmocka's assertions are plain function calls, so the static analyzer
 * follows every failed assertion onwards and reports the garbage a test
 * would have read had it gone on. Here each assertion is a condition and a
 * noreturn failure, which is what it means to a reader. */
#ifndef SOCKSERV_TIDY_CMOCKA_H
#define SOCKSERV_TIDY_CMOCKA_H
#ifdef __clang_analyzer__
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

void _fail(const char *const file, const int line) __attribute__((noreturn));

#define TIDY_CHECK(cond) ((cond) ? (void)0 : _fail(__FILE__, __LINE__))
#undef assert_true
#undef assert_false
#undef assert_non_null
#undef assert_null
#undef assert_return_code
#undef assert_ptr_equal
#undef assert_ptr_not_equal
#undef assert_int_equal
#undef assert_int_not_equal
#undef assert_string_equal
#undef assert_string_not_equal
#undef assert_memory_equal
#undef assert_memory_not_equal
#undef assert_in_range
#undef assert_not_in_range
#define assert_true(c) TIDY_CHECK(c)
#define assert_false(c) TIDY_CHECK(!(c))
#define assert_non_null(c) TIDY_CHECK((c) != NULL)
#define assert_null(c) TIDY_CHECK((c) == NULL)
#define assert_return_code(rc, error) TIDY_CHECK((rc) >= 0)
#define assert_ptr_equal(a, b) TIDY_CHECK((const void *)(a) == (const void *)(b))
#define assert_ptr_not_equal(a, b) TIDY_CHECK((const void *)(a) != (const void *)(b))
#define assert_int_equal(a, b) TIDY_CHECK((a) == (b))
#define assert_int_not_equal(a, b) TIDY_CHECK((a) != (b))
#define assert_string_equal(a, b) TIDY_CHECK(strcmp((a), (b)) == 0)
#define assert_string_not_equal(a, b) TIDY_CHECK(strcmp((a), (b)) != 0)
#define assert_memory_equal(a, b, n) TIDY_CHECK(memcmp((a), (b), (n)) == 0)
#define assert_memory_not_equal(a, b, n) TIDY_CHECK(memcmp((a), (b), (n)) != 0)
#define assert_in_range(v, lo, hi) TIDY_CHECK((v) >= (lo) && (v) <= (hi))
#define assert_not_in_range(v, lo, hi) TIDY_CHECK((v) < (lo) || (v) > (hi))
#endif
#endif
