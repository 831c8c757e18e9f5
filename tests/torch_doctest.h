// Include this first in test files that use LibTorch: Debian's LibTorch is built with glog, whose
// CHECK/CHECK_EQ/... macros would shadow doctest's, so torch comes first, glog's macros are
// dropped, then doctest defines its own.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#undef CHECK_FALSE
#undef CHECK_THROWS
#undef CHECK_THROWS_AS
#undef CHECK_NOTHROW

#include <doctest/doctest.h>
