// glog, pulled in by LibTorch headers, defines CHECK/CHECK_EQ/...; the tests mean doctest's.
// Include this after every other header.
#pragma once

#include <doctest/doctest.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#define CHECK DOCTEST_CHECK
#define CHECK_EQ DOCTEST_CHECK_EQ
#define CHECK_NE DOCTEST_CHECK_NE
#define CHECK_LT DOCTEST_CHECK_LT
#define CHECK_LE DOCTEST_CHECK_LE
#define CHECK_GT DOCTEST_CHECK_GT
#define CHECK_GE DOCTEST_CHECK_GE
