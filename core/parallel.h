// One thread pool primitive for the whole project: fn(i) for i in [0, n) on worker threads.
// Work is handed out one index at a time, so results that depend only on i (never on which
// thread ran it) are reproducible whatever the thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace cl {

// threads <= 0: one per core. The first exception thrown by fn stops the hand-out of new
// indices and is rethrown on the calling thread once every worker has stopped.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn);

// The thread count parallel_for uses for `threads` (<= 0: hardware concurrency, at least 1).
int resolve_threads(int threads);

}  // namespace cl
